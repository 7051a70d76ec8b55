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


@functools.cache
def device_identity(device: str) -> str:
    """What an artifact built for ``device`` depends on, for cache keys: for CUDA, the GPU models
    and the driver version (an engine built on one GPU or driver is not valid on another)."""
    if device != "cuda":
        return device
    models = []
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("Model:"):
                models.append(line.split(":", 1)[1].strip())
    version = Path("/proc/driver/nvidia/version")
    driver = version.read_text(errors="replace").splitlines()[0] if version.exists() else "unknown driver"
    return f"cuda: {', '.join(models) or 'unknown GPU'}; {driver}"


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``); empty where they cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


#: CPU features that compute a reduced precision natively (else it is emulated, slower than fp32)
NATIVE_CPU = {
    "bf16": ("amx_bf16", "avx512_bf16"),
    "fp16": ("amx_fp16", "avx512_fp16"),
}


def precision_unavailable_reason(precision: str, device: str, flags: frozenset[str] | None = None) -> str | None:
    """Why ``precision`` is not worth measuring on ``device`` here (no hardware computes it
    natively), or ``None``. Used by ``--precision auto`` only: a precision asked for by name is
    always tried. On a GPU every precision is left to measurement; int8 is too (integer dot
    products help without VNNI)."""
    if device != "cpu" or precision == "fp32":
        return None
    if precision == "tf32":
        return "tf32 is a GPU format (NVIDIA Ampere and later); the CPU computes fp32"
    needed = NATIVE_CPU.get(precision)
    if needed is None:
        return None
    have = cpu_flags() if flags is None else flags
    if any(f in have for f in needed):
        return None
    return (
        f"this CPU ({cpu_model()}) has no native {precision} ({' or '.join(f.upper() for f in needed)}), "
        f"so {precision} would be emulated and slower than fp32; name it in --precision to measure it anyway"
    )


def cpu_threads() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; elsewhere ``platform.processor()``)."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float | None:
    """The machine's 1-minute load average (``os.getloadavg``), ``None`` where there is none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def busy_reason(load: float | None, cores: int | None) -> str | None:
    """Why timings taken now may not be trusted: more runnable processes on average over the last
    minute than the machine has cores; ``None`` when the machine is not busy (or cannot say)."""
    if load is None or not cores or load <= cores:
        return None
    return (
        f"the machine was busy when the run started (1-minute load average {load:g} on {cores} cores): "
        "timings may be slower and noisier than on an idle machine; points far off their neighbours "
        "were measured again or marked unstable"
    )


def host_record(threads: int, devices: list[str]) -> dict[str, object]:
    """What a package records of the machine it measured on."""
    import platform

    host: dict[str, object] = {
        "threads": threads,
        "devices": devices,
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 1,
        "python": platform.python_version(),
        "load_1min": load_average(),
    }
    if "cuda" in devices:
        host["gpu"] = device_identity("cuda")
    return host


def unavailable_reason(device: str) -> str | None:
    """Why ``device`` cannot be used here, or ``None``."""
    if device == "cpu":
        return None
    if device == "cuda":
        return cuda_unavailable_reason()
    return f"unknown device {device!r}"
