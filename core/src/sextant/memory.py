"""How much memory this process holds: resident now, the peak since a reset, and the GPU's peak.

On Linux the resident size now and its peak are ``VmRSS`` and ``VmHWM`` in ``/proc/self/status``;
writing ``5`` to ``/proc/self/clear_refs`` resets the peak to the current size (Linux 4.0 and
later). Where the peak cannot be reset, readings carry the peak since the process started and say so
(``peak_since_start``). Elsewhere the peak comes from ``resource.getrusage`` (since start) and the
current size is unknown. The device peak is torch's ``max_memory_allocated``, read only when the
process has already imported torch and initialised CUDA: this module never imports torch.
Sizes are in MB of 2**20 bytes.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

MB = 2**20


@dataclass(frozen=True)
class MemoryReading:
    """One reading of the process's memory, in MB; ``None`` where it cannot be measured."""

    #: resident memory now
    rss_mb: float | None
    #: peak resident memory since the last reset (since start when ``peak_since_start``)
    peak_mb: float | None
    #: the peak could not be reset: ``peak_mb`` covers the whole life of the process
    peak_since_start: bool
    #: peak memory allocated on the current CUDA device since the last reset; ``None`` off-GPU
    device_peak_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MemorySource(Protocol):
    """What the profiler needs: reset the peaks, then read them."""

    def reset(self) -> None: ...

    def read(self) -> MemoryReading: ...


class MemoryProbe:
    """Reads this process's memory; ``reset`` starts a new peak.

    :param proc: the process's procfs directory (a fake one in tests).
    """

    def __init__(self, proc: Path | str = "/proc/self") -> None:
        self._status = Path(proc) / "status"
        self._clear_refs = Path(proc) / "clear_refs"
        self._since_start = True

    def reset(self) -> None:
        """Reset the resident peak to the current size, and torch's device peak when CUDA is in use.

        Never raises: when the resident peak cannot be reset, later readings say
        ``peak_since_start``."""
        self._since_start = not self._reset_resident_peak()
        torch = _cuda_torch()
        if torch is not None:
            torch.cuda.reset_peak_memory_stats()

    def read(self) -> MemoryReading:
        status = self._proc_status()
        if status is not None:
            rss, peak = status.get("VmRSS"), status.get("VmHWM")
        else:
            rss, peak = None, _rusage_peak_mb()
        torch = _cuda_torch()
        device = torch.cuda.max_memory_allocated() / MB if torch is not None else None
        return MemoryReading(
            rss_mb=rss,
            peak_mb=peak,
            peak_since_start=self._since_start or status is None,
            device_peak_mb=device,
        )

    def _reset_resident_peak(self) -> bool:
        try:
            fd = os.open(self._clear_refs, os.O_WRONLY)
        except OSError:
            return False
        try:
            os.write(fd, b"5")
            return True
        except OSError:
            return False
        finally:
            os.close(fd)

    def _proc_status(self) -> dict[str, float] | None:
        """``VmRSS`` and ``VmHWM`` in MB, or ``None`` without procfs."""
        try:
            text = self._status.read_text()
        except OSError:
            return None
        sizes = {}
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM") and value.split():
                sizes[key] = float(value.split()[0]) / 1024  # procfs reports kB (KiB)
        return sizes


def _rusage_peak_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def _cuda_torch() -> Any:
    """The torch module when this process already imported it and initialised CUDA, else ``None``."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is None:
        return None
    try:
        return torch if cuda.is_initialized() else None
    except Exception:  # a partly imported or stubbed torch
        return None
