"""The one search loop of runtime-option search and serving analysis (:func:`run_search`: the
defaults first, the baseline configurations are ranked against, then what a strategy plugin asks
for until it finishes or the :class:`~sextant.optimizer.budget.Budget` is spent), the :class:`Store`
each configuration goes through (:func:`fetch`; a store shared by workers adds :class:`Claims`),
and :class:`ResultsStore`, one in SQLite (the runtime-option search's checkpoint)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from sextant.objective import Objective
from sextant.runtime import SearchStrategy

if TYPE_CHECKING:
    from sextant.optimizer.budget import Budget

Config = dict[str, Any]
Metrics = dict[str, float]
#: measures a configuration: its metrics, or ``None`` and why it failed
Measure = Callable[[Config], tuple["Metrics | None", "str | None"]]


@dataclass(frozen=True)
class Record:
    """One stored measurement: the configuration, its metrics (``None``: it failed, ``error`` says why)."""

    point: dict[str, Any]
    metrics: Metrics | None
    error: str | None
    measured: float


class Store(Protocol):
    """Finished measurements keyed by what was measured (``key``), the configuration and the
    hardware; ``all`` lists them oldest first."""

    def get(self, key: str, config: Mapping[str, Any], hardware: str) -> Record | None: ...

    def put(
        self, key: str, config: Mapping[str, Any], hardware: str, metrics: Metrics | None, error: str | None
    ) -> None: ...

    def all(self, key: str, hardware: str) -> list[Record]: ...


@runtime_checkable
class Claims(Protocol):
    """What a store shared by workers adds: ``claim`` (whether this worker may measure a configuration
    now), ``wait`` (another worker's measurement once done; ``None`` when its claim went or
    ``give_up()``), ``holder`` (who holds a claim, in words), ``release`` (drop this worker's claims)."""

    def claim(self, key: str, config: Mapping[str, Any], hardware: str) -> bool: ...

    def wait(
        self, key: str, config: Mapping[str, Any], hardware: str, *, give_up: Callable[[], bool]
    ) -> Record | None: ...

    def holder(self, key: str, config: Mapping[str, Any], hardware: str) -> str: ...

    def release(self) -> None: ...


@dataclass
class Tally:
    """Measurements made (``measured``) and found in the store (``reused``), shared by a run's
    searches, and what happened along the way (``events``: a server restarted, ...)."""

    measured: int = 0
    reused: int = 0
    events: list[str] = field(default_factory=list)


def fetch(
    store: Store,
    key: str,
    hardware: str,
    config: Config,
    measure: Measure,
    *,
    tally: Tally,
    give_up: Callable[[], str | None] = lambda: None,
    on_measured: Callable[[Config, Record], None] | None = None,
) -> Record:
    """``config``'s stored measurement, another worker's (waited for until ``give_up()`` says why
    not: then a failed record that is not stored), or a new one, stored; none once ``give_up()``
    says the budget is spent (then a failed record saying so, not stored: the cap caps)."""
    found = store.get(key, config, hardware)
    if found is not None:
        tally.reused += 1
        return found
    spent = give_up()
    if spent is not None:
        return Record(dict(config), None, f"not measured: {spent}", time.time())
    while isinstance(store, Claims) and not store.claim(key, config, hardware):
        theirs = store.wait(key, config, hardware, give_up=lambda: give_up() is not None)
        if theirs is not None:
            tally.reused += 1
            return theirs
        why = give_up()
        if why is not None:
            holder = store.holder(key, config, hardware)
            return Record(dict(config), None, f"not measured: {holder} was measuring it when {why}", time.time())
    metrics, error = measure(config)
    store.put(key, config, hardware, metrics, error)
    tally.measured += 1
    record = Record(dict(config), metrics, error, time.time())
    if on_measured is not None:
        on_measured(config, record)
    return record


@dataclass(frozen=True)
class SearchResult:
    """What a search measured (every configuration in ask order), its baseline, why it stopped, how
    many measurements it made (not found in the store), and its best (feasible, largest gain)."""

    history: tuple[tuple[Config, Record], ...]
    baseline: Record
    stopped: str
    measured: int
    best: Config | None = None
    best_metrics: Metrics | None = None


def run_search(
    strategy: SearchStrategy,
    measure: Measure,
    objective: Objective,
    store: Store,
    budget: Budget,
    *,
    key: str,
    hardware: str,
    tally: Tally | None = None,
    expand: Callable[[Config], list[tuple[Config, Record]]] | None = None,
    on_measured: Callable[[Config, Record], None] | None = None,
) -> SearchResult:
    """Measure the defaults, then what ``strategy`` asks for until it is done or ``budget`` is spent
    (its measurements counted in ``tally``, which several searches of one run may share). Each
    configuration goes through ``store`` (:func:`fetch`). ``expand`` (the serving analysis's brute
    search) measures more loads of each configuration instead; the strategy sees the best of them."""
    tally = tally if tally is not None else Tally()
    before = tally.measured

    def give_up() -> str | None:
        return budget.stop(tally.measured)

    def one(config: Config) -> list[tuple[Config, Record]]:
        record = fetch(store, key, hardware, config, measure, tally=tally, give_up=give_up, on_measured=on_measured)
        return [(config, record)]

    visit_all = expand or one
    history: list[tuple[Config, Record]] = []
    seen: list[Config] = []
    scored: list[tuple[Config, float | None]] = []

    def visit(config: Config) -> None:
        results = visit_all(config)
        history.extend(results)
        seen.append(config)
        base = history[0][1].metrics or {}
        scores = [s for s in (objective.score(r.metrics, base) for _, r in results) if s is not None]
        scored.append((config, max(scores) if scores else None))

    def result(stopped: str, baseline: Record) -> SearchResult:
        best = _best(history, objective, baseline)
        return SearchResult(tuple(history), baseline, stopped, tally.measured - before, *best)

    start = {p.name: p.default for p in strategy.space}
    stopped = give_up()
    if stopped is not None:  # an earlier search spent the budget: the stored default, or nothing
        record = one(start)[0][1]
        history.extend([] if record.metrics is None else [(start, record)])
        return result(stopped, record)
    visit(start)
    baseline = history[0][1] if history else Record(start, None, f"not measured: {give_up()}", time.time())
    stopped = give_up()
    while stopped is None:
        proposals = [c for c in strategy.ask(scored) if c not in seen]
        if not proposals:
            stopped = "the strategy finished"
        for config in proposals:
            stopped = give_up()
            if stopped:
                break
            visit(config)
    return result(stopped, baseline)


def ranked(
    history: Sequence[tuple[Config, Record]], objective: Objective, baseline: Record | None
) -> list[tuple[Config, Record]]:
    """Successful measurements, best first (feasible before infeasible), by gain over the baseline."""
    done = [(c, r) for c, r in history if r.metrics is not None]
    reference = (baseline.metrics if baseline else None) or (done[0][1].metrics if done else None)
    return [done[i] for i in objective.rank([r.metrics or {} for _, r in done], reference)]


def _best(
    history: Sequence[tuple[Config, Record]], objective: Objective, baseline: Record | None
) -> tuple[Config | None, Metrics | None]:
    first = next(iter(ranked(history, objective, baseline)), None)
    return (first[0], first[1].metrics) if first and objective.feasible(first[1].metrics or {}) else (None, None)


def rerank(store: Store, *, key: str, hardware: str, objective: Objective) -> tuple[Config | None, Metrics | None]:
    """The best stored configuration under another objective: changing objectives or constraints
    re-ranks what was measured, measuring nothing."""
    history = [(r.point, r) for r in store.all(key, hardware)]
    return _best(history, objective, history[0][1] if history else None)


class ResultsStore:
    """A :class:`Store` in SQLite (errors are not kept: the package's candidate records hold them)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), timeout=30)
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS measurements (candidate TEXT, config TEXT, hardware TEXT, metrics TEXT, "
            "measured REAL, PRIMARY KEY (candidate, config, hardware))"
        )

    def get(self, key: str, config: Mapping[str, Any], hardware: str) -> Record | None:
        row = self.db.execute(
            "SELECT metrics, measured FROM measurements WHERE candidate=? AND config=? AND hardware=?",
            (key, json.dumps(config, sort_keys=True), hardware),
        ).fetchone()
        return None if row is None else Record(dict(config), json.loads(row[0]), None, row[1])

    def put(
        self, key: str, config: Mapping[str, Any], hardware: str, metrics: Metrics | None, error: str | None
    ) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO measurements VALUES (?, ?, ?, ?, ?)",
                (key, json.dumps(config, sort_keys=True), hardware, json.dumps(metrics), time.time()),
            )

    def all(self, key: str, hardware: str) -> list[Record]:
        rows = self.db.execute(
            "SELECT config, metrics, measured FROM measurements WHERE candidate=? AND hardware=? ORDER BY measured",
            (key, hardware),
        ).fetchall()
        return [Record(json.loads(c), json.loads(m), None, t) for c, m, t in rows]

    def close(self) -> None:
        self.db.close()
