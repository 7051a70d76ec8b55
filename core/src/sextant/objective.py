"""What "best" means: metric weights under constraints, one value object for every decision.

Selection (which candidate wins), runner-option search and serving analysis all rank
measurements with an :class:`Objective`. A measurement is a mapping of metric name to value
(:data:`METRICS`), or a profile point (:class:`sextant.records.Point`, read through its
``metrics``; ``memory_mb`` is the peak resident memory measured at that batch size). A
measurement that meets the constraints always beats one that does not; among those, the score is
the weighted relative gain over a reference (the baseline, or the default configuration), so a
summary can say "X % better than the defaults".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from sextant.errors import UsageError

if TYPE_CHECKING:
    from sextant.records import Point

Metrics = Mapping[str, float]
#: what the objective ranks: metrics, or a profile point
Measurement: TypeAlias = "Metrics | Point"


def _metrics(measurement: Measurement) -> Metrics:
    return measurement if isinstance(measurement, Mapping) else measurement.metrics

#: metric → True when higher is better
METRICS: dict[str, bool] = {"throughput": True, "p50_ms": False, "p99_ms": False, "memory_mb": False, "ttft_ms": False}

#: the objectives users name (``--objective``): metric weights, and the batch size a point must have
PRESETS: dict[str, tuple[dict[str, float], int | None]] = {
    "throughput": ({"throughput": 1.0}, None),
    "latency": ({"p50_ms": 1.0}, 1),  # single-request latency: batch 1
    "memory": ({"memory_mb": 1.0}, None),
    # text generation (``sextant.generation``): a point's throughput is output tokens/s, its
    # p50/p99 the inter-token latency, ``ttft_ms`` the time to first token
    "tokens-per-second": ({"throughput": 1.0}, None),
    "ttft": ({"ttft_ms": 1.0}, 1),
    "itl": ({"p50_ms": 1.0}, 1),
}

#: the presets that only a text-generation run measures
GENERATION_ONLY = ("tokens-per-second", "ttft", "itl")


@dataclass(frozen=True)
class Objective:
    """Metric weights, constraints, and which profile points may represent a candidate.

    :param weights: metric → weight; the score is the weighted sum of relative gains.
    :param max_p99_ms: largest p99 latency a feasible measurement may have.
    :param min_throughput: smallest throughput a feasible measurement may have.
    :param max_memory_mb: largest peak resident memory a feasible measurement may have.
    :param max_batch: only points at or below this batch size count.
    :param batch: only points at exactly this batch size count (the latency objective: 1).
    :param name: the preset this came from (``throughput``, ``latency``, ``memory``, ...) or ``custom``.
    :param max_ttft_ms: largest time to first token a feasible measurement may have (generation).
    """

    weights: Mapping[str, float] = field(default_factory=lambda: {"throughput": 1.0})
    max_p99_ms: float | None = None
    min_throughput: float | None = None
    max_memory_mb: float | None = None
    max_batch: int | None = None
    batch: int | None = None
    name: str = "throughput"
    max_ttft_ms: float | None = None

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(METRICS)
        if unknown:
            raise UsageError(f"unknown metric {sorted(unknown)}", hint=f"Known metrics: {', '.join(METRICS)}.")
        for label, flag, value in (
            ("latency budget", "--latency-budget-ms", self.max_p99_ms),
            ("minimum throughput", "--min-throughput", self.min_throughput),
            ("memory budget", "--max-memory-mb", self.max_memory_mb),
            ("time to first token budget", "--max-ttft-ms", self.max_ttft_ms),
        ):
            if value is not None and value <= 0:
                raise UsageError(
                    f"the {label} must be positive, got {value:g} ({flag} {value:g})",
                    hint=f"Give {flag} a number above 0, or leave it out for no limit.",
                )

    @classmethod
    def named(
        cls,
        name: str,
        *,
        max_p99_ms: float | None = None,
        min_throughput: float | None = None,
        max_memory_mb: float | None = None,
        max_batch: int | None = None,
        max_ttft_ms: float | None = None,
    ) -> Objective:
        """A preset objective (:data:`PRESETS`) with constraints."""
        if name not in PRESETS:
            raise UsageError(f"unknown objective {name!r}", hint=f"Choose one of {', '.join(PRESETS)}.")
        weights, batch = PRESETS[name]
        return cls(dict(weights), max_p99_ms, min_throughput, max_memory_mb, max_batch, batch, name, max_ttft_ms)

    # -- one measurement ------------------------------------------------------------------------

    def feasible(self, metrics: Measurement) -> bool:
        """Whether the measurement meets every constraint (a metric not measured does not fail one)."""
        metrics = _metrics(metrics)
        return not (
            (self.max_p99_ms is not None and metrics.get("p99_ms", 0.0) > self.max_p99_ms)
            or (self.min_throughput is not None and metrics.get("throughput", float("inf")) < self.min_throughput)
            or (self.max_memory_mb is not None and (metrics.get("memory_mb") or 0.0) > self.max_memory_mb)
            or (self.max_ttft_ms is not None and metrics.get("ttft_ms", 0.0) > self.max_ttft_ms)
        )

    def gain(self, metrics: Measurement, reference: Measurement) -> float:
        """Weighted relative gain over ``reference`` (0.1: 10 % better); unmeasured metrics count 0."""
        total, metrics, reference = 0.0, _metrics(metrics), _metrics(reference)
        for metric, weight in self.weights.items():
            value, base = metrics.get(metric), reference.get(metric)
            if not value or not base:
                continue
            total += weight * ((value / base) if METRICS[metric] else (base / value)) - weight
        return total

    def score(self, metrics: Measurement | None, reference: Measurement) -> float | None:
        """A search strategy's view: the gain, or ``None`` for a failed or infeasible measurement."""
        if metrics is None or not self.feasible(metrics):
            return None
        return self.gain(metrics, reference)

    def speedup(self, metrics: Measurement, reference: Measurement) -> float:
        """How many times better than ``reference`` (throughput ratio for the throughput objective,
        inverse p50 ratio for latency): the gain normalised by the weights, plus one."""
        total = sum(self.weights.values()) or 1.0
        return 1.0 + self.gain(metrics, reference) / total

    def constraints_text(self) -> str:
        """The constraints in words (``none`` without any)."""
        parts = []
        if self.max_p99_ms is not None:
            parts.append(f"latency budget of {self.max_p99_ms:g} ms p99")
        if self.min_throughput is not None:
            parts.append(f"at least {self.min_throughput:g}/s")
        if self.max_memory_mb is not None:
            parts.append(f"at most {self.max_memory_mb:g} MB of memory")
        if self.max_ttft_ms is not None:
            parts.append(f"time to first token of at most {self.max_ttft_ms:g} ms")
        return ", ".join(parts) or "none"

    # -- ranking --------------------------------------------------------------------------------

    def fits(self, point: Measurement) -> bool:
        """Whether a profile point may represent a candidate: its batch size is allowed and it is feasible."""
        batch = _metrics(point).get("batch")
        if self.max_batch is not None and batch is not None and batch > self.max_batch:
            return False
        if self.batch is not None and batch != self.batch:
            return False
        return self.feasible(point)

    def best_point(self, points: Sequence[Point]) -> Point | None:
        """The point that represents a candidate under this objective, or ``None`` if none fits."""
        fitting = [p for p in points if self.fits(p)]
        if not fitting:
            return None
        return fitting[self.rank(fitting, fitting[0])[0]]

    def rank(self, measurements: Sequence[Measurement], reference: Measurement | None = None) -> list[int]:
        """Indexes of ``measurements``, best first: feasible before infeasible, then by gain over
        ``reference`` (default: the first), ties broken by lower p50 latency."""
        if not measurements:
            return []
        ref = reference if reference is not None else measurements[0]

        def key(i: int) -> tuple[bool, float, float]:
            m = measurements[i]
            return (self.feasible(m), self.gain(m, ref), -_metrics(m).get("p50_ms", 0.0))

        return sorted(range(len(measurements)), key=key, reverse=True)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weights": dict(self.weights),
            "max_p99_ms": self.max_p99_ms,
            "min_throughput": self.min_throughput,
            "max_memory_mb": self.max_memory_mb,
            "max_batch": self.max_batch,
            "batch": self.batch,
            "max_ttft_ms": self.max_ttft_ms,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Objective:
        return cls(
            dict(data.get("weights") or {"throughput": 1.0}),
            data.get("max_p99_ms"),
            data.get("min_throughput"),
            data.get("max_memory_mb"),
            data.get("max_batch"),
            data.get("batch"),
            data.get("name", "custom"),
            data.get("max_ttft_ms"),
        )
