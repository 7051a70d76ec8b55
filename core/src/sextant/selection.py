"""Choosing the best candidate: the run's :class:`~sextant.objective.Objective` under its constraints.

Each candidate is represented by its best profile point under the objective (``throughput``: the
highest throughput at any batch size up to the largest profiled whose p99 fits the latency budget;
``latency``: the lowest p50 at batch 1; ``memory``: the lowest peak memory). Only candidates that
passed correctness (and the user's verify function) and were profiled in full compete (one screened
out has only a short screen: :mod:`sextant.screening`); the baseline's point
gives each candidate's speedup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sextant.objective import PRESETS, Objective
from sextant.records import CandidateRecord, Status

if TYPE_CHECKING:
    from sextant.pairing import Ratio


@dataclass(frozen=True)
class Selection:
    """The ranking (best first), the winner, and why there is none when there is none."""

    objective: Objective
    baseline: str | None
    ranking: tuple[str, ...]
    reason: str | None = None
    #: what the paired re-measurement decided (:func:`sextant.pipeline.paired.apply_pairing`)
    paired: Mapping[str, Any] | None = None

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
        return cls(objective, data.get("baseline"), ranking, data.get("reason"), data.get("paired"))


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
    return Selection(objective, baseline, ranking, reason), ranked


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
