"""Searching an option space: a results store, and the loop that asks a strategy for configurations
and measures them.

Configurations are ranked by an :class:`~sextant.objective.Objective` against the baseline (the
default configuration, measured first), so a summary can say "X % better than the default".
Strategies come from plugins (``sextant_register_search_strategies``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sextant.objective import Objective
from sextant.runtime import SearchStrategy
from sextant.specs import Param

Config = dict[str, Any]
Metrics = dict[str, float]


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
    objective: Objective,
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
        scored = [(c, objective.score(m, baseline or {})) for c, m in history]
        proposals = [c for c in strategy.ask(scored) if all(c != h for h, _ in history)]
        if not proposals:
            stopped = "the strategy finished"
        for config in proposals:
            stopped = out_of_budget()
            if stopped:
                break
            history.append((config, get(config)))
    best, best_metrics = _best(history, objective, baseline)
    return SearchResult(best, best_metrics, baseline, measured, history, stopped)


def _best(
    history: Sequence[tuple[Config, Metrics | None]], objective: Objective, baseline: Metrics | None
) -> tuple[Config | None, Metrics | None]:
    """The feasible configuration with the largest gain over the baseline."""
    measured = [(c, m) for c, m in history if m is not None and objective.feasible(m)]
    if not measured:
        return None, None
    order = objective.rank([m for _, m in measured], baseline or measured[0][1])
    return measured[order[0]]


def rerank(
    store: ResultsStore, *, candidate: str, hardware: str, objective: Objective
) -> tuple[Config | None, Metrics | None]:
    """The best stored configuration under another objective: changing objectives or constraints
    re-ranks what was measured, measuring nothing."""
    history = store.all(candidate, hardware)
    return _best(history, objective, history[0][1] if history else None)
