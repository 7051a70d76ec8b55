"""Cheap checks (no TensorFlow import): availability, run by ``sextant plugins`` and the planner,
and what loading a Keras artifact unpickles (``RunnerSpec.pickled``)."""

from __future__ import annotations

from pathlib import Path

from sextant.api import installed

CUSTOM_OBJECTS = "custom_objects.pkl"
#: Beside a ``.keras`` file written from a source given with ``--source-option safe_mode=false``:
#: it is read back with Keras' ``safe_mode=False`` (Lambda layers hold Python bytecode).
UNSAFE_MARKER = "sextant-keras-unsafe.txt"


def keras_pickles(artifact: Path) -> str | None:
    """What loading the ``.keras`` artifact runs code from: pickled custom classes, or Lambda
    layers deserialized with ``safe_mode=False``; ``None`` when neither."""
    found = []
    if (artifact.parent / CUSTOM_OBJECTS).exists():
        found.append(f"{CUSTOM_OBJECTS} holds the model's custom Keras classes, pickled with cloudpickle")
    if (artifact.parent / UNSAFE_MARKER).exists():
        found.append(f"{artifact.name} is read with Keras safe_mode=False (Lambda layers hold Python bytecode)")
    return "; ".join(found) or None


def check_tensorflow(device: str) -> str | None:
    """TensorFlow runs on the CPU everywhere; on CUDA only a build with GPU support does."""
    if device == "cuda" and not any(installed(d) for d in ("tensorflow", "tensorflow-gpu", "tf-nightly")):
        return "tensorflow-cpu has no CUDA support (pip install 'sextant-tensorflow[gpu]' instead of [cpu])"
    return None
