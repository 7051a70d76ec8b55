"""What an engine build derives from the run, with no TensorRT or GPU needed: optimisation profiles
from the samples' shapes, builder flags per precision, and the timing cache's place.

Profiles: one per engine. For the batch axis, min 1, max the largest batch the run profiles, opt
the largest batch among the samples (clipped to max). For any other axis that varies between
samples (a sequence length), min and max are the smallest and largest sizes seen and opt the
median. Fixed axes are fixed. An input without a batch axis keeps its shape.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from sextant.api import Signature, StepError, cache_dir, digest

Shape = tuple[int, ...]

#: builder flags set for each precision (names of ``tensorrt.BuilderFlag``); TensorRT allows TF32
#: by default, so strict fp32 clears it
PRECISION_FLAGS: Mapping[str, tuple[str, ...]] = {
    "fp32": (),
    "tf32": ("TF32",),
    "fp16": ("FP16",),
    "bf16": ("BF16",),
    "int8": ("INT8", "FP16"),  # layers without an int8 kernel fall back to fp16, not fp32
}
CLEARED_FLAGS: Mapping[str, tuple[str, ...]] = {"fp32": ("TF32",)}


def derive_profile(
    signature: Signature, batches: Sequence[Mapping[str, np.ndarray]], max_batch: int
) -> dict[str, tuple[Shape, Shape, Shape]]:
    """``{input name: (min, opt, max)}`` (see module doc)."""
    if not batches:
        raise StepError("no samples to derive the engine's shape profile from")
    profile = {}
    for spec in signature.inputs:
        shapes = [tuple(int(d) for d in batch[spec.name].shape) for batch in batches]
        low, opt, high = [], [], []
        for axis in range(len(spec.shape)):
            sizes = sorted(shape[axis] for shape in shapes)
            if axis == 0 and spec.batched:
                top = max(max_batch, 1)
                low.append(1)
                opt.append(min(sizes[-1], top))
                high.append(top)
            else:
                low.append(sizes[0])
                opt.append(int(statistics.median_low(sizes)))
                high.append(sizes[-1])
        profile[spec.name] = (tuple(low), tuple(opt), tuple(high))
    return profile


def builder_flags(precision: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(flags to set, flags to clear)`` for a precision."""
    if precision not in PRECISION_FLAGS:
        raise StepError(f"TensorRT builds no {precision!r} engines", hint=f"Known: {', '.join(PRECISION_FLAGS)}.")
    return PRECISION_FLAGS[precision], CLEARED_FLAGS.get(precision, ())


def timing_cache_path(tensorrt_version: str, gpu: str) -> Path:
    """Where the timing cache for this TensorRT version on this GPU and driver lives: timings
    measured on one GPU or version mean nothing on another."""
    key = digest({"tensorrt": tensorrt_version, "gpu": gpu})[:16]
    return cache_dir() / "tensorrt" / f"timing-{key}.cache"


def pick_profile(shapes: Mapping[str, Shape], ranges: Sequence[Mapping[str, tuple[Shape, Shape, Shape]]]) -> int:
    """The first profile whose ranges hold every input shape; an error naming the ranges otherwise."""
    for index, profile in enumerate(ranges):
        if all(_within(shapes[name], *profile[name]) for name in shapes if name in profile):
            return index
    described = "; ".join(
        ", ".join(f"{name} {low}..{high}" for name, (low, _, high) in profile.items()) for profile in ranges
    )
    raise StepError(
        f"input shapes {dict(shapes)} fit none of the engine's profiles ({described})",
        hint="Rebuild the engine with samples that cover these shapes, or a larger --max-batch-size.",
    )


def _within(shape: Shape, low: Shape, _opt: Shape, high: Shape) -> bool:
    return len(shape) == len(low) and all(lo <= s <= hi for s, lo, hi in zip(shape, low, high))
