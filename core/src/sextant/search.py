"""Searching a runner's option space: goals (objectives and constraints), a results store, and the
loop that asks a strategy for configurations and measures them.

A configuration that meets the constraints always beats one that does not; among those, the score
is the weighted relative gain over the baseline (the default configuration), so a summary can say
"X % better than the default". Strategies come from plugins (``sextant_register_search_strategies``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sextant.runtime import SearchStrategy
from sextant.specs import Param

Config = dict[str, Any]
Metrics = dict[str, float]
#: metric → True when higher is better
METRICS = {"throughput": True, "p99_ms": False, "p50_ms": False, "memory_mb": False}


@dataclass(frozen=True)
class Goal:
    """What to optimise (metric weights) under which constraints."""

    weights: Mapping[str, float] = field(default_factory=lambda: {"throughput": 1.0})
    max_p99_ms: float | None = None
    min_throughput: float | None = None
    max_memory_mb: float | None = None

    def feasible(self, metrics: Mapping[str, float]) -> bool:
        return not (
            (self.max_p99_ms is not None and metrics.get("p99_ms", 0.0) > self.max_p99_ms)
            or (self.min_throughput is not None and metrics.get("throughput", 0.0) < self.min_throughput)
            or (self.max_memory_mb is not None and metrics.get("memory_mb", 0.0) > self.max_memory_mb)
        )

    def gain(self, metrics: Mapping[str, float], baseline: Mapping[str, float]) -> float:
        """Weighted relative gain over the baseline (0.1: 10 % better)."""
        total = 0.0
        for metric, weight in self.weights.items():
            value, base = metrics.get(metric), baseline.get(metric)
            if not value or not base:
                continue
            total += weight * ((value / base) if METRICS[metric] else (base / value)) - weight
        return total

    def score(self, metrics: Mapping[str, float] | None, baseline: Mapping[str, float]) -> float | None:
        """The strategy's view: the gain, or ``None`` for a failed or infeasible configuration."""
        if metrics is None or not self.feasible(metrics):
            return None
        return self.gain(metrics, baseline)


class ResultsStore:
    """Every measurement, keyed by candidate, configuration and hardware, in SQLite."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), timeout=30)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS measurements (candidate TEXT, config TEXT, hardware TEXT, metrics TEXT, "
            "measured REAL, PRIMARY KEY (candidate, config, hardware))"
        )

    @staticmethod
    def _key(config: Mapping[str, Any]) -> str:
        return json.dumps(config, sort_keys=True)

    def get(self, candidate: str, config: Mapping[str, Any], hardware: str) -> Metrics | None:
        row = self.db.execute(
            "SELECT metrics FROM measurements WHERE candidate=? AND config=? AND hardware=?",
            (candidate, self._key(config), hardware),
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def has(self, candidate: str, config: Mapping[str, Any], hardware: str) -> bool:
        return (
            self.db.execute(
                "SELECT 1 FROM measurements WHERE candidate=? AND config=? AND hardware=?",
                (candidate, self._key(config), hardware),
            ).fetchone()
            is not None
        )

    def put(self, candidate: str, config: Mapping[str, Any], hardware: str, metrics: Metrics | None) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO measurements VALUES (?, ?, ?, ?, ?)",
                (candidate, self._key(config), hardware, json.dumps(metrics), time.time()),
            )

    def all(self, candidate: str, hardware: str) -> list[tuple[Config, Metrics | None]]:
        rows = self.db.execute(
            "SELECT config, metrics FROM measurements WHERE candidate=? AND hardware=? ORDER BY measured",
            (candidate, hardware),
        ).fetchall()
        return [(json.loads(c), json.loads(m)) for c, m in rows]

    def close(self) -> None:
        self.db.close()


@dataclass
class SearchResult:
    best: Config | None
    best_metrics: Metrics | None
    baseline: Metrics | None
    measured: int  # measurements this search made (not found in the store)
    history: list[tuple[Config, Metrics | None]]
    stopped: str


def defaults(space: Sequence[Param]) -> Config:
    return {p.name: p.default for p in space}


def run_search(
    strategy: SearchStrategy,
    measure: Callable[[Config], Metrics | None],
    *,
    goal: Goal,
    store: ResultsStore,
    candidate: str,
    hardware: str,
    budget_s: float | None = None,
    max_measurements: int | None = None,
) -> SearchResult:
    """Ask ``strategy`` for configurations until it stops or the budget runs out; measure each one
    the store does not already hold. The default configuration is measured first: it is the baseline."""
    space = strategy.space
    start = time.monotonic()
    measured = 0
    history: list[tuple[Config, Metrics | None]] = []

    def get(config: Config) -> Metrics | None:
        nonlocal measured
        if store.has(candidate, config, hardware):
            return store.get(candidate, config, hardware)
        metrics = measure(config)
        store.put(candidate, config, hardware, metrics)
        measured += 1
        return metrics

    def out_of_budget() -> str | None:
        if budget_s is not None and time.monotonic() - start > budget_s:
            return f"the time budget of {budget_s:g} s ran out"
        if max_measurements is not None and measured >= max_measurements:
            return f"the budget of {max_measurements} measurements ran out"
        return None

    baseline = get(defaults(space))
    history.append((defaults(space), baseline))
    stopped = None
    while stopped is None:
        scored = [(c, goal.score(m, baseline or {})) for c, m in history]
        proposals = [c for c in strategy.ask(scored) if all(c != h for h, _ in history)]
        if not proposals:
            stopped = "the strategy finished"
        for config in proposals:
            stopped = out_of_budget()
            if stopped:
                break
            history.append((config, get(config)))
    best, best_metrics = _best(history, goal, baseline)
    return SearchResult(best, best_metrics, baseline, measured, history, stopped)


def _best(
    history: Sequence[tuple[Config, Metrics | None]], goal: Goal, baseline: Metrics | None
) -> tuple[Config | None, Metrics | None]:
    """The feasible configuration with the largest gain over the baseline."""
    ranked = [(c, m) for c, m in history if m is not None and goal.feasible(m)]
    return max(ranked, key=lambda cm: goal.gain(cm[1], baseline or cm[1]), default=(None, None))


def rerank(store: ResultsStore, *, candidate: str, hardware: str, goal: Goal) -> tuple[Config | None, Metrics | None]:
    """The best stored configuration under another goal: changing objectives or constraints
    re-ranks what was measured, measuring nothing."""
    history = store.all(candidate, hardware)
    return _best(history, goal, history[0][1] if history else None)
