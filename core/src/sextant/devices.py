"""Cheap answers about this machine's devices: no framework is imported to give them."""

from __future__ import annotations

import functools
import os
from pathlib import Path


@functools.cache
def cuda_unavailable_reason() -> str | None:
    """Why no CUDA device can be used here, or ``None`` when an NVIDIA GPU is visible.

    Reads the NVIDIA driver's files only; a runner still confirms with its own framework when it
    loads. ``CUDA_VISIBLE_DEVICES`` set to an empty string or ``-1`` hides every device.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return "no CUDA device (CUDA_VISIBLE_DEVICES hides them)"
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return None
    if any(Path("/dev").glob("nvidia[0-9]*")):
        return None
    return "no CUDA device (no NVIDIA driver or GPU found)"


def cpu_threads() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def unavailable_reason(device: str) -> str | None:
    """Why ``device`` cannot be used here, or ``None``."""
    if device == "cpu":
        return None
    if device == "cuda":
        return cuda_unavailable_reason()
    return f"unknown device {device!r}"
