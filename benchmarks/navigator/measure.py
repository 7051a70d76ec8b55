"""What both sides of benchmarks/vs_navigator.py measure alike, in their own fresh processes (sextant's
environment and Navigator's): the example model, inputs it never saw, eager torch's outputs on
them, the error of a tool's outputs against those, and seconds per call in timed windows.

Needs numpy and torch only, so that it imports in either environment.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

Inputs = np.ndarray | dict[str, np.ndarray]


def example(name: str) -> ModuleType:
    """``examples/NAME.py`` as a module (it has ``build`` and ``samples``)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fresh_inputs(sample: Inputs, batch: int, seed: int) -> Inputs:
    """Inputs shaped like one of the example's samples (per-row shape, dtype, names) at ``batch``
    rows, drawn anew: floats from a standard normal; an ``attention_mask`` all ones for the first
    row and padded from a random point past the middle for the others; other integers uniform
    over the range the sample used."""
    rng = np.random.default_rng(seed)

    def one(name: str, array: np.ndarray) -> np.ndarray:
        shape = (batch, *array.shape[1:])
        if np.issubdtype(array.dtype, np.floating):
            return rng.standard_normal(shape).astype(array.dtype)
        if "mask" in name:
            mask = np.ones(shape, array.dtype)
            for row in range(1, batch):
                mask[row, rng.integers(shape[1] // 2, shape[1]) :] = 0
            return mask
        return rng.integers(int(array.min()), int(array.max()) + 1, shape).astype(array.dtype)

    if isinstance(sample, Mapping):
        return {name: one(name, array) for name, array in sample.items()}
    return one("input", sample)


def eager(model: Any, inputs: Inputs) -> list[np.ndarray]:
    """The torch model's outputs on ``inputs``, flattened in order (:func:`flatten`)."""
    import torch

    with torch.inference_mode():
        if isinstance(inputs, Mapping):
            out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
        else:
            out = model(torch.from_numpy(inputs))
    return flatten(out)


def flatten(outputs: Any) -> list[np.ndarray]:
    """A tensor, an array, or a dict, tuple or list of them as a list of arrays, in order."""
    if isinstance(outputs, Mapping):
        return [a for v in outputs.values() for a in flatten(v)]
    if isinstance(outputs, (tuple, list)):
        return [a for v in outputs for a in flatten(v)]
    if hasattr(outputs, "detach"):
        return [outputs.detach().cpu().numpy()]
    return [np.asarray(outputs)]


def max_abs_error(got: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """The largest absolute difference over all outputs (infinite when their count or shapes differ,
    or an output is NaN where the reference is not)."""
    if len(got) != len(reference) or any(g.shape != r.shape for g, r in zip(got, reference)):
        return float("inf")
    worst = 0.0
    for g, r in zip(got, reference):
        diff = np.abs(g.astype(np.float64) - r.astype(np.float64))
        if np.isnan(diff).any():
            return float("inf")
        worst = max(worst, float(diff.max(initial=0.0)))
    return worst


def within(got: list[np.ndarray], reference: list[np.ndarray], atol: float = 1e-4, rtol: float = 1e-3) -> bool:
    """Every element within ``atol`` or ``rtol * |reference|`` (sextant's fp32 default tolerance)."""
    if len(got) != len(reference) or any(g.shape != r.shape for g, r in zip(got, reference)):
        return False
    return all(np.allclose(g, r, atol=atol, rtol=rtol) for g, r in zip(got, reference))


def result(got: list[np.ndarray], reference: list[np.ndarray], seconds: list[float]) -> dict:
    """What a timing process prints (one JSON document): its windows' seconds per call and its
    outputs' error against eager."""
    return {"seconds": seconds, "max_abs_error": max_abs_error(got, reference), "within_fp32": within(got, reference)}


def seconds_per_call(call: Callable[[], Any], windows: int, window_s: float) -> list[float]:
    """Warm up for one window, then the mean seconds per call in each of ``windows`` windows of at
    least ``window_s`` seconds and 3 calls."""
    end = time.perf_counter() + window_s
    while time.perf_counter() < end:
        call()
    seconds = []
    for _ in range(windows):
        calls, start = 0, time.perf_counter()
        while calls < 3 or time.perf_counter() - start < window_s:
            call()
            calls += 1
        seconds.append((time.perf_counter() - start) / calls)
    return seconds
