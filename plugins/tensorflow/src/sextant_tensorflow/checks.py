"""Cheap availability checks (no TensorFlow import): run by ``sextant plugins`` and the planner."""

from __future__ import annotations

import importlib.metadata


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def check_tensorflow(device: str) -> str | None:
    """TensorFlow runs on the CPU everywhere; on CUDA only a build with GPU support does."""
    if device == "cuda" and not any(_installed(d) for d in ("tensorflow", "tensorflow-gpu", "tf-nightly")):
        return "tensorflow-cpu has no CUDA support (pip install 'sextant-tensorflow[gpu]' instead of [cpu])"
    return None
