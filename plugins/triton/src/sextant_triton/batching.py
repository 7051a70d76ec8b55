"""Running a list of Triton requests as few model calls: one call per group of requests whose inputs
have the same shapes past the batch axis and the same dtypes, the outputs split back by request.

Used by the Python-backend models (``python_model``, ``ort_backend``, ``ov_backend``) inside Triton's
Python stub, where Triton's dynamic batcher hands ``execute`` several requests at once
(:func:`respond`), and by ``sextant serve``. Needs numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Arrays = Mapping[str, np.ndarray]


def groups(feeds: Sequence[Arrays], batching: bool) -> list[list[int]]:
    """Indices of ``feeds`` that can run as one call (each alone when not ``batching``)."""
    if not batching:
        return [[i] for i in range(len(feeds))]
    found: dict[tuple, list[int]] = {}
    for index, feed in enumerate(feeds):
        key = tuple((name, array.shape[1:], array.dtype.str) for name, array in sorted(feed.items()))
        found.setdefault(key, []).append(index)
    return list(found.values())


def run_batched(
    feeds: Sequence[Arrays], infer: Callable[[Arrays], Arrays], batching: bool
) -> list[dict[str, np.ndarray] | Exception]:
    """Each request's outputs, or the exception its group's call raised (the other groups still run)."""
    results: list[dict[str, np.ndarray] | Exception] = [RuntimeError("not run")] * len(feeds)
    for members in groups(feeds, batching):
        try:
            if len(members) == 1:
                outputs = infer(feeds[members[0]])
            else:
                names = list(feeds[members[0]])
                outputs = infer({n: np.concatenate([feeds[i][n] for i in members]) for n in names})
        except Exception as exc:  # the error answers this group's requests
            for i in members:
                results[i] = exc
            continue
        start = 0
        for i in members:
            if len(members) == 1:
                results[i] = {n: np.asarray(o) for n, o in outputs.items()}
                continue
            size = len(next(iter(feeds[i].values())))
            results[i] = {n: np.asarray(o)[start : start + size] for n, o in outputs.items()}
            start += size
    return results


def respond(
    requests: Sequence[Any],
    inputs: Sequence[str],
    outputs: Mapping[str, Any],
    infer: Callable[[Arrays], Arrays],
    batching: bool,
    pb_utils: Any,
) -> list[Any]:
    """A Python-backend model's ``execute``: the ``inputs`` of ``requests`` run by ``infer`` in as few
    calls as :func:`run_batched` allows; each response holds the ``outputs`` (name → numpy dtype of
    the config) or its call's error. ``pb_utils`` is the stub's ``triton_python_backend_utils``."""
    feeds = [{n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in inputs} for r in requests]
    responses = []
    for result in run_batched(feeds, infer, batching):
        if isinstance(result, Exception):
            error = pb_utils.TritonError(f"{type(result).__name__}: {result}")
            responses.append(pb_utils.InferenceResponse(error=error))
            continue
        tensors = [pb_utils.Tensor(n, np.ascontiguousarray(result[n], dtype)) for n, dtype in outputs.items()]
        responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
    return responses
