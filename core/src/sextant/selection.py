"""Choosing the best candidate: the run's :class:`~sextant.objective.Objective` under its constraints.

Each candidate is represented by its best profile point under the objective (``throughput``: the
highest throughput at any batch size up to the largest profiled whose p99 fits the latency budget;
``latency``: the lowest p50 at batch 1; ``memory``: the lowest peak memory). Only candidates that
passed correctness (and the user's verify function) and were profiled in full compete (one screened
out has only a short screen: :mod:`sextant.screening`); the baseline's point
gives each candidate's speedup.

Besides the objective's pick, :attr:`Selection.regimes` names the best for each serving regime when
they differ: ``latency`` (the lowest p50 at batch 1: small batches) and ``throughput`` (the highest
throughput up to the largest batch: large ones), under the same constraints. Deploying for a serving
batch size takes the one that fits it (:meth:`sextant.package.Package.best_for_batch`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sextant.objective import PRESETS, Objective
from sextant.records import CandidateRecord, Point, Status

if TYPE_CHECKING:
    from sextant.pairing import Ratio


@dataclass(frozen=True)
class Selection:
    """The ranking (best first), the winner, and why there is none when there is none."""

    objective: Objective
    baseline: str | None
    ranking: tuple[str, ...]
    reason: str | None = None
    #: what the paired re-measurement decided (:func:`sextant.optimizer.paired.apply_pairing`)
    paired: Mapping[str, Any] | None = None
    #: the best for small batches (``latency``) and for large ones (``throughput``), when they
    #: differ; ``None`` when one candidate is both (or there is none)
    regimes: Mapping[str, str] | None = None

    @property
    def best(self) -> str | None:
        return self.ranking[0] if self.ranking else None

    @property
    def paired_speedup(self) -> Ratio | None:
        """The best's speedup over the baseline measured in paired rounds, when it was."""
        speedup = (self.paired or {}).get("speedup")
        if not speedup:
            return None
        from sextant.pairing import Ratio

        return Ratio.from_json(speedup)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "objective": self.objective.name,
            "weights": dict(self.objective.weights),
            "latency_budget_ms": self.objective.max_p99_ms,
            "min_throughput": self.objective.min_throughput,
            "max_memory_mb": self.objective.max_memory_mb,
            "max_batch": self.objective.max_batch,
            "baseline": self.baseline,
            "ranking": list(self.ranking),
            "best": self.best,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.paired is not None:
            out["paired"] = dict(self.paired)
        if self.regimes is not None:
            out["regimes"] = dict(self.regimes)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Selection:
        """What :meth:`to_json` wrote; a selection of an older sextant recorded the objective's name
        only (its preset's weights), and a hand-written one may give ``best`` without a ranking."""
        name = str(data.get("objective", "throughput"))
        weights = data.get("weights") or PRESETS.get(name, ({"throughput": 1.0}, None))[0]
        objective = Objective(
            dict(weights),
            data.get("latency_budget_ms"),
            data.get("min_throughput"),
            data.get("max_memory_mb"),
            data.get("max_batch"),
            name=name,
        )
        ranking = tuple(data.get("ranking") or ())
        best = data.get("best")
        if best is not None and ranking[:1] != (best,):
            ranking = (best, *(r for r in ranking if r != best))
        regimes = data.get("regimes")
        return cls(
            objective,
            data.get("baseline"),
            ranking,
            data.get("reason"),
            data.get("paired"),
            dict(regimes) if regimes else None,
        )


def select(
    candidates: Mapping[str, CandidateRecord],
    objective: Objective,
    baseline: str | None,
    competing: set[str] | None = None,
) -> tuple[Selection, dict[str, CandidateRecord]]:
    """Rank the candidates; returns the selection and the records with ``best_point`` and
    ``speedup`` set. Only ids in ``competing`` (default: all) can be selected; the baseline gives
    the speedups whether or not it competes."""
    ranked: dict[str, CandidateRecord] = {}
    for cid, record in candidates.items():
        point = objective.best_point(record.points) if record.points else None
        ranked[cid] = replace(record, best_point=point, speedup=None)
    eligible = [
        cid
        for cid, r in ranked.items()
        if (competing is None or cid in competing) and r.profiled_in_full and r.best_point is not None
    ]
    base = ranked[baseline].best_point if baseline in ranked else None
    order = objective.rank([ranked[cid].best_point for cid in eligible], base)
    ranking = tuple(eligible[i] for i in order)
    if base is not None:
        for cid, record in ranked.items():
            if record.best_point is not None:
                ranked[cid] = replace(record, speedup=objective.speedup(record.best_point, base))
    reason = None
    if not ranking:
        pool = {cid: r for cid, r in ranked.items() if competing is None or cid in competing}
        reason = why_none(pool, objective)
    return Selection(objective, baseline, ranking, reason, regimes=regime_picks(ranked, eligible, objective)), ranked


#: the serving regimes and the preset objective that picks for each
REGIMES = {"latency": "latency", "throughput": "throughput"}
#: each regime in words, for the tables and the report
REGIME_WORDS = {
    "latency": "small batches: the lowest p50 at batch 1",
    "throughput": "large batches: the highest throughput",
}


def regime_picks(
    records: Mapping[str, CandidateRecord], eligible: list[str], objective: Objective
) -> dict[str, str] | None:
    """The best of ``eligible`` for each regime (:data:`REGIMES`) under ``objective``'s constraints,
    when they are not one candidate; ``None`` otherwise."""
    picks = {}
    for regime, preset in REGIMES.items():
        goal = Objective.named(
            preset,
            max_p99_ms=objective.max_p99_ms,
            min_throughput=objective.min_throughput,
            max_memory_mb=objective.max_memory_mb,
            max_batch=objective.max_batch,
        )
        points = {cid: goal.best_point(records[cid].points) for cid in eligible if records[cid].points}
        fitting = [cid for cid, point in points.items() if point is not None]
        if not fitting:
            return None
        picks[regime] = fitting[goal.rank([points[cid] for cid in fitting])[0]]  # type: ignore[misc]
    return picks if len(set(picks.values())) > 1 else None


def throughput_at(points: Sequence[Point], batch: int) -> tuple[int, float] | None:
    """The throughput a candidate serving batches of at most ``batch`` gets: (the largest profiled
    batch size up to ``batch``, its throughput); ``None`` with no such point. A batch of 0 (no
    batching) is served one request at a time, as batch 1."""
    usable = [p for p in points if p.batch <= max(batch, 1)]
    if not usable:
        return None
    point = max(usable, key=lambda p: p.batch)
    return point.batch, float(point.throughput or 0.0)


def settle_regimes(selection: Selection, before: Selection) -> Selection:
    """The regime picks agreeing with a best that a later decision changed (the paired
    re-measurement; ``before``: the selection it changed): the objective's own regime takes the
    best, the others keep their picks, which were ``before``'s best where it was best in every
    regime (the paired rounds measure at the best batch sizes, not at batch 1)."""
    if selection.best is None or before.best is None or selection.objective.name not in REGIMES:
        return selection
    regimes = dict(before.regimes or {regime: before.best for regime in REGIMES})
    regimes[selection.objective.name] = selection.best
    return replace(selection, regimes=regimes if len(set(regimes.values())) > 1 else None)


def why_none(candidates: Mapping[str, CandidateRecord], objective: Objective) -> str:
    """Why no candidate could be selected, in one line."""
    statuses = [r.status for r in candidates.values()]
    if not statuses:
        return "no candidate could be planned"
    if all(s == Status.FAILED for s in statuses):
        return "every candidate failed to build or run"
    constrained = any(
        v is not None
        for v in (objective.max_p99_ms, objective.min_throughput, objective.max_memory_mb, objective.max_ttft_ms)
    )
    if any(s == Status.OK for s in statuses) and constrained:
        return f"no candidate meets the constraints ({objective.constraints_text()})"
    if any(s.judged_wrong for s in statuses):
        return "every candidate that ran failed correctness or verification"
    return "no candidate was profiled"
