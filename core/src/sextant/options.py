"""Every knob of one optimize run, validated once where it is built (the CLI or the API)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sextant.devices import cuda_unavailable_reason
from sextant.errors import UsageError
from sextant.profiler import ProfilerConfig
from sextant.selection import OBJECTIVES
from sextant.specs import PRECISIONS


@dataclass(frozen=True)
class OptimizeOptions:
    """Every knob of one optimize run (the CLI's options, the API's keyword arguments)."""

    workspace: Path | None = None
    name: str | None = None
    device: str = "auto"
    formats: tuple[str, ...] | None = None
    runners: tuple[str, ...] | None = None
    precisions: tuple[str, ...] = ("fp32",)
    step_timeout: float = 600.0
    fresh: bool = False
    objective: str = "throughput"
    latency_budget_ms: float | None = None
    max_batch_size: int = 64
    atol: float | None = None
    rtol: float | None = None
    tolerances: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    source_options: Mapping[str, str] = field(default_factory=dict)
    unbatched: tuple[str, ...] = ()
    comparator: str = "allclose"
    threads: int | None = None
    cutoff: float = 0.7
    search: str | None = None
    search_budget_s: float | None = None
    profiler: ProfilerConfig = field(default_factory=ProfilerConfig)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise UsageError(f"unknown objective {self.objective!r}", hint=f"Choose one of {', '.join(OBJECTIVES)}.")
        if self.device not in ("auto", "cpu", "cuda"):
            raise UsageError(f"unknown device {self.device!r}", hint="Choose cpu, cuda or auto.")
        unknown = set(self.precisions) - set(PRECISIONS)
        if unknown:
            raise UsageError(f"unknown precision {sorted(unknown)}", hint=f"Known: {', '.join(PRECISIONS)}, auto.")
        if self.max_batch_size < 1:
            raise UsageError("--max-batch-size must be at least 1")

    def devices(self) -> list[str]:
        if self.device == "auto":
            return ["cpu"] if cuda_unavailable_reason() else ["cpu", "cuda"]
        return [self.device]

    def to_record(self) -> dict[str, Any]:
        """The options as JSON-able data, for status.json."""
        record = {k: v for k, v in self.__dict__.items() if k != "profiler"}
        record["profiler"] = self.profiler.to_dict()
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in record.items()}
