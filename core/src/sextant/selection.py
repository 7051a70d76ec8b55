"""Choosing the best candidate: an objective under constraints, ties broken by lower latency.

``throughput``: the highest throughput at any measured batch size up to ``max_batch`` whose p99
latency fits ``latency_budget_ms``. ``latency``: the lowest p50 latency at batch size 1 (within
the budget). Only candidates that passed correctness (and the user's verify function) and were
profiled compete; the baseline's figure gives each candidate's speedup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OBJECTIVES = ("throughput", "latency")


@dataclass(frozen=True)
class Objective:
    name: str = "throughput"
    latency_budget_ms: float | None = None
    max_batch: int | None = None

    def best_point(self, points: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
        """The point that represents a candidate under this objective, or ``None`` if none fits."""
        fitting = [
            p
            for p in points
            if (self.max_batch is None or p["batch"] <= self.max_batch)
            and (self.latency_budget_ms is None or p["p99_ms"] <= self.latency_budget_ms)
        ]
        if self.name == "latency":
            fitting = [p for p in fitting if p["batch"] == 1]
            return min(fitting, key=lambda p: p["p50_ms"], default=None)
        return max(fitting, key=lambda p: (p["throughput"], -p["p50_ms"]), default=None)

    def score(self, point: Mapping[str, Any]) -> tuple[float, float]:
        """Higher is better; the second member breaks ties by lower latency."""
        if self.name == "latency":
            return (-point["p50_ms"], point["throughput"])
        return (point["throughput"], -point["p50_ms"])

    def speedup(self, point: Mapping[str, Any], baseline: Mapping[str, Any]) -> float:
        if self.name == "latency":
            return baseline["p50_ms"] / point["p50_ms"]
        return point["throughput"] / baseline["throughput"]


def select(
    candidates: Mapping[str, dict[str, Any]],
    objective: Objective,
    baseline: str | None,
    competing: set[str] | None = None,
) -> dict[str, Any]:
    """Rank the candidates in place (``best_point``, ``speedup``) and return the selection record.

    Only ids in ``competing`` (default: all) can be selected; the baseline gives the speedups
    whether or not it competes.
    """
    ranked = []
    for cid, record in candidates.items():
        record.pop("speedup", None)
        points = record.get("profile", {}).get("points", [])
        record["best_point"] = objective.best_point(points) if points else None
        eligible = competing is None or cid in competing
        if eligible and record["status"] == "ok" and record["best_point"] is not None:
            ranked.append(cid)
    ranked.sort(key=lambda cid: objective.score(candidates[cid]["best_point"]), reverse=True)
    base_point = candidates[baseline]["best_point"] if baseline in candidates else None
    if base_point is not None:
        for record in candidates.values():
            if record.get("best_point") is not None:
                record["speedup"] = objective.speedup(record["best_point"], base_point)
    selection: dict[str, Any] = {
        "objective": objective.name,
        "latency_budget_ms": objective.latency_budget_ms,
        "max_batch": objective.max_batch,
        "baseline": baseline,
        "ranking": ranked,
        "best": ranked[0] if ranked else None,
    }
    if not ranked:
        pool = {cid: r for cid, r in candidates.items() if competing is None or cid in competing}
        selection["reason"] = _why_none(pool, objective)
    return selection


def _why_none(candidates: Mapping[str, dict[str, Any]], objective: Objective) -> str:
    statuses = [r["status"] for r in candidates.values()]
    if not statuses:
        return "no candidate could be planned"
    if all(s == "failed" for s in statuses):
        return "every candidate failed to build or run"
    if any(s == "ok" for s in statuses) and objective.latency_budget_ms is not None:
        return f"no candidate meets the latency budget of {objective.latency_budget_ms} ms"
    if any(s == "incorrect" for s in statuses):
        return "every candidate that ran failed correctness or verification"
    return "no candidate was profiled"
