"""Splitting one batch into parts that OpenVINO's streams run at once, and joining their outputs.

Under the throughput hint OpenVINO creates several streams, each with a share of the threads; one
synchronous request keeps only one of them busy. The runner therefore cuts a batch along its batch
axis (axis 0 of every batched input, ``sextant.api.Signature``) into as many parts as OpenVINO
asks for requests, runs them together, and concatenates the outputs in order. A batch is split
only when every output follows the batch axis, as the reference's outputs record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sextant.api import Signature

Batch = Mapping[str, np.ndarray]


def splittable(signature: Signature) -> bool:
    """Whether a batch's outputs can be joined from its parts': some input and every output batched."""
    return (
        any(spec.batched for spec in signature.inputs)
        and bool(signature.outputs)
        and all(spec.batched for spec in signature.outputs)
    )


def split(batch: Batch, parts: int, signature: Signature) -> list[dict[str, np.ndarray]]:
    """``batch`` cut into at most ``parts`` parts of nearly equal rows; unbatched inputs go whole to each."""
    batched = {spec.name for spec in signature.inputs if spec.batched}
    rows = next((int(batch[name].shape[0]) for name in batch if name in batched), 1)
    bounds = np.linspace(0, rows, min(parts, rows) + 1).round().astype(int)
    return [
        {name: array[start:stop] if name in batched else array for name, array in batch.items()}
        for start, stop in zip(bounds[:-1], bounds[1:])
    ]


def join(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The parts' outputs concatenated along axis 0, in the parts' order."""
    if len(parts) == 1:
        return dict(parts[0])
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
