"""A pipeline's end results as numpy arrays, and judging one run's results against another's.

Whatever the user's function returns is walked, framework-free: arrays and tensors of any
framework (their ``.numpy()``), images (``numpy.asarray``), numbers, strings, and lists, tuples,
dicts and dataclass-like outputs of those (a Hugging Face ``ModelOutput`` or a diffusers
``ImagePipelineOutput`` included). The result is a flat dict of path to array (or to a string).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

#: ``(outputs, reference) -> bool`` over one dataloader item's results (the function's return values)
PipelineVerify = Callable[[Any, Any], bool]

Flat = dict[str, Any]


def flatten(value: Any, path: str = "out") -> Flat:
    """The arrays (and strings) of a pipeline result, by path (``out.images.0``)."""
    if value is None:
        return {}
    if isinstance(value, (str, bytes)):
        return {path: value}
    if isinstance(value, (bool, int, float, complex, np.ndarray, np.generic)):
        return {path: np.asarray(value)}
    if hasattr(value, "detach"):  # torch
        value = value.detach().cpu()
        return {
            path: value.float().numpy() if str(value.dtype) in ("torch.bfloat16", "torch.float16") else value.numpy()
        }
    if hasattr(value, "numpy") and not isinstance(value, (Mapping, Sequence)):
        return {path: np.asarray(value.numpy())}
    if hasattr(value, "__array_interface__") or hasattr(value, "__array__"):  # PIL images
        return {path: np.asarray(value)}
    items: list[tuple[str, Any]]
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
    elif isinstance(value, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        raise TypeError(f"cannot compare a pipeline result of type {type(value).__name__} at {path}")
    out: Flat = {}
    for key, item in items:
        out.update(flatten(item, f"{path}.{key}"))
    return out


def difference(got: Flat, want: Flat, atol: float, rtol: float) -> str | None:
    """``None`` when ``got`` matches ``want`` within ``|got - want| <= atol + rtol * |want|``; else
    what differs first, in words."""
    if list(got) != list(want):
        return f"the results' structure changed: {sorted(got)} instead of {sorted(want)}"
    for path, expected in want.items():
        actual = got[path]
        if isinstance(expected, (str, bytes)) or isinstance(actual, (str, bytes)):
            if actual != expected:
                return f"{path}: {actual!r} instead of {expected!r}"
            continue
        if actual.shape != expected.shape:
            return f"{path}: shape {actual.shape} instead of {expected.shape}"
        if expected.dtype.kind in "biu" and actual.dtype.kind in "biu" and expected.dtype != bool:
            if not np.array_equal(actual, expected):  # token ids, uint8 images: exact, or off by atol
                worst = int(np.abs(actual.astype(np.int64) - expected.astype(np.int64)).max())
                if worst > atol:
                    return (
                        f"{path}: integers differ by up to {worst} ({int((actual != expected).sum())} of {actual.size})"
                    )
            continue
        a, e = actual.astype(np.float64), expected.astype(np.float64)
        bad = ~np.isclose(a, e, atol=atol, rtol=rtol, equal_nan=True)
        if bad.any():
            worst = float(np.nanmax(np.abs(a - e)))
            return f"{path}: {int(bad.sum())} of {bad.size} values off, max |diff| {worst:.3g} (atol {atol:g}, rtol {rtol:g})"
    return None


def judge(
    results: Sequence[Any],
    reference: Sequence[Any],
    reference_flat: Sequence[Flat],
    atol: float,
    rtol: float,
    verify_func: PipelineVerify | None,
) -> str | None:
    """``None`` when every item's results match the reference (and ``verify_func`` accepts them);
    else why not, naming the dataloader item."""
    for index, (result, flat_reference) in enumerate(zip(results, reference_flat)):
        problem = difference(flatten(result), flat_reference, atol, rtol)
        if problem is None and verify_func is not None:
            try:
                accepted = verify_func(result, reference[index])
            except Exception as exc:  # the user's function: its failure is the verdict
                problem = f"verify_func raised {type(exc).__name__}: {exc}"
            else:
                problem = None if accepted else "verify_func rejected the results"
        if problem is not None:
            return f"item {index}: {problem}"
    return None
