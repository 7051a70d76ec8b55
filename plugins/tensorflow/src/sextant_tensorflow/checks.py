"""Cheap availability checks (no TensorFlow import): run by ``sextant plugins`` and the planner."""

from __future__ import annotations

from sextant.api import installed


def check_tensorflow(device: str) -> str | None:
    """TensorFlow runs on the CPU everywhere; on CUDA only a build with GPU support does."""
    if device == "cuda" and not any(installed(d) for d in ("tensorflow", "tensorflow-gpu", "tf-nightly")):
        return "tensorflow-cpu has no CUDA support (pip install 'sextant-tensorflow[gpu]' instead of [cpu])"
    return None
