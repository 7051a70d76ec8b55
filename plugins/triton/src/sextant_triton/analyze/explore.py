"""The search itself: measure points of a :class:`~sextant_triton.analyze.space.Space` on a server,
through the store, in the order a strategy asks for them.

- :class:`Session` measures one point: the stored result if there is one; another worker's if it
  holds the claim; else load the point's configurations, run perf_analyzer on every unit (at once,
  for units analyzed concurrently; a streaming model, ``--model-type llm``, with
  :mod:`sextant_triton.llmperf`), add the server's memory, store it. A server that died is
  recorded, restarted (local mode) and the point measured again; nothing stored is lost.
- :func:`search` asks a strategy (brute, quick, optuna: ``sextant.api.search_strategy``) for points
  until it finishes or the budget runs out; the default configuration is measured first.
- :func:`sweep` walks one configuration's concurrency upward (doubling) and stops after
  ``patience`` steps gaining under ``min_gain``; at a constraint edge (a feasible value followed by
  an infeasible one) it bisects between the two. Brute search sweeps every configuration this way;
  the top N of any search are swept for the curves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sextant.api import Objective, SextantError

from sextant_triton import llmperf, perf
from sextant_triton.analyze.control import ServerControl, gpu_memory_mb
from sextant_triton.analyze.space import Point, Space, Unit
from sextant_triton.analyze.store import Record, Store

Metrics = dict[str, float]


@dataclass
class Counters:
    measured: int = 0  # measurements made by this run
    reused: int = 0  # found in the store (an earlier run, or another worker)
    events: list[str] = field(default_factory=list)  # server restarts and other incidents


class Session:
    """Measures points of ``space`` on ``control``, keeping every result in ``store``."""

    def __init__(
        self,
        space: Space,
        control: ServerControl,
        store: Store,
        *,
        key: str,
        hardware: str,
        windows: perf.Windows,
        inputs: Mapping[str, tuple[Path | str, Mapping[str, Sequence[int]]]],
        workdir: Path,
        counters: Counters | None = None,
        on_measured: Callable[[Point, Record], None] | None = None,
        give_up: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.space, self.control, self.store = space, control, store
        self.key, self.hardware, self.windows = key, hardware, windows
        self.inputs, self.workdir = inputs, workdir
        self.on_measured = on_measured
        self.give_up = give_up  # why to stop waiting for another worker (the budget is spent), or None
        self.counters = counters or Counters()  # shared by the run's groups

    def measure(self, point: Point) -> Record:
        """``point``'s stored measurement, another worker's (waited for until :attr:`give_up` says
        why not: then a failed record that is not stored), or a new one; none once :attr:`give_up`
        says the budget is spent (then a failed record saying so, not stored: the cap caps)."""
        found = self.store.get(self.key, point, self.hardware)
        if found is not None:
            self.counters.reused += 1
            return found
        spent = self.give_up()
        if spent is not None:
            return Record(dict(point), None, f"not measured: {spent}", time.time())
        while not self.store.claim(self.key, point, self.hardware):
            theirs = self.store.wait(self.key, point, self.hardware, give_up=lambda: self.give_up() is not None)
            if theirs is not None:
                self.counters.reused += 1
                return theirs
            why = self.give_up()
            if why is not None:
                holder = self.store.holder(self.key, point, self.hardware)
                return Record(dict(point), None, f"not measured: {holder} was measuring it when {why}", time.time())
        metrics, error = self._measure(point)
        self.store.put(self.key, point, self.hardware, metrics, error)
        self.counters.measured += 1
        record = Record(dict(point), metrics, error, time.time())
        if self.on_measured is not None:
            self.on_measured(point, record)
        return record

    def remeasure(self, point: Point) -> Metrics | None:
        """``point`` measured again now, whatever the store holds (the result is not stored: it is
        one window of a paired comparison); ``None`` when it failed or the budget is spent."""
        if self.give_up() is not None:
            return None
        metrics, _ = self._measure(point)
        self.counters.measured += 1
        return metrics

    def _measure(self, point: Point) -> tuple[Metrics | None, str | None]:
        for attempt in range(2):
            try:
                self.control.apply(self.space.configs(point))
                return self._load_test(point), None
            except SextantError as exc:
                if self.control.alive():
                    return None, exc.message
                self.counters.events.append(
                    f"the server died while measuring {self.space.describe(point)} ({exc.message.splitlines()[0]})"
                    + (
                        "; restarted, measuring it again"
                        if attempt == 0
                        else "; restarted again, point recorded as failed"
                    )
                )
                self.control.restart()
        return None, "the server died twice while measuring this point"

    def _load_test(self, point: Point) -> Metrics:
        units = self.space.units

        def one(unit: Unit) -> Metrics:
            data, shapes = self.inputs[unit.name]
            load = self.space.load(unit, point)
            meter = llmperf.measure if self.space.settings.model_type == "llm" else perf.measure
            found = meter(
                unit.name,
                self.control.grpc_url,
                load,
                windows=self.windows,
                input_data=data,
                shapes=shapes,
                workdir=self.workdir,
            )
            return {**found, "concurrency": float(load.concurrency or 0), "request_rate": float(load.request_rate or 0)}

        with ThreadPoolExecutor(len(units)) as pool:
            futures = [pool.submit(one, unit) for unit in units]
            try:
                results = [future.result() for future in futures]
            except KeyboardInterrupt:  # stopped: the pool would wait for perf_analyzer's windows to end
                perf.stop_all()
                raise
        memory = self.control.memory_mb()
        if len(units) == 1:
            metrics = dict(results[0])
        else:  # the joint view: every request served, the worst tail, each unit's own numbers
            metrics = {
                "throughput": sum(r["throughput"] for r in results),
                "p50_ms": max(r.get("p50_ms", 0.0) for r in results),
                "p99_ms": max(r.get("p99_ms", 0.0) for r in results),
                "stable": min(r["stable"] for r in results),
            }
            if all("ttft_ms" in r for r in results):  # streaming models (llmperf): the worst time to first token
                metrics["ttft_ms"] = max(r["ttft_ms"] for r in results)
                metrics["requests_per_s"] = sum(r.get("requests_per_s", 0.0) for r in results)
            for unit, result in zip(units, results):
                metrics.update({f"{unit.name}/{k}": v for k, v in result.items()})
        if memory is not None:
            metrics["memory_mb"] = memory
        gpu = gpu_memory_mb()
        if gpu is not None:
            metrics["gpu_memory_mb"] = gpu
        return metrics


@dataclass
class Outcome:
    """What a search measured (every point in ask order), why it stopped, and its baseline."""

    history: list[tuple[Point, Record]]
    baseline: Record
    stopped: str


class Budget:
    """Measurements and seconds a search may still spend (``None``: unlimited)."""

    def __init__(
        self,
        max_measurements: int | None,
        budget_s: float | None,
        counters: Counters,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_measurements, self.budget_s, self.counters, self.clock = max_measurements, budget_s, counters, clock
        self.start = clock()

    def left(self) -> int | None:
        """Measurements this run may still make (``None``: no cap)."""
        return None if self.max_measurements is None else max(self.max_measurements - self.counters.measured, 0)

    def spent(self) -> str | None:
        if self.max_measurements is not None and self.counters.measured >= self.max_measurements:
            return f"the budget of {self.max_measurements} measurements ran out"
        if self.budget_s is not None and self.clock() - self.start > self.budget_s:
            return f"the time budget of {self.budget_s:g} s ran out"
        return None


def search(
    strategy: Any,
    session: Session,
    objective: Objective,
    budget: Budget,
    *,
    expand: Callable[[Point], list[tuple[Point, Record]]] | None = None,
) -> Outcome:
    """Measure the defaults, then what ``strategy`` asks for until it is done or ``budget`` is spent.
    ``expand`` (brute search) measures more loads of each point; the strategy sees the best of them."""
    measure = expand or (lambda p: [(p, session.measure(p))])
    history: list[tuple[Point, Record]] = []
    seen: list[Point] = []

    def visit(point: Point) -> float | None:
        results = measure(point)
        history.extend(results)
        seen.append(point)
        scores = [objective.score(r.metrics, baseline_metrics()) for _, r in results]
        feasible = [s for s in scores if s is not None]
        return max(feasible) if feasible else None

    def baseline_metrics() -> Metrics:
        return history[0][1].metrics or {} if history else {}

    scored: list[tuple[Point, float | None]] = []
    defaults = {p.name: p.default for p in strategy.space}
    stopped = budget.spent()
    if stopped is not None:  # an earlier group spent the budget: the stored default, or nothing
        record = session.measure(defaults)
        return Outcome([] if record.metrics is None else [(defaults, record)], record, stopped)
    scored.append((defaults, visit(defaults)))
    baseline = history[0][1] if history else Record(defaults, None, f"not measured: {budget.spent()}", time.time())
    stopped = budget.spent()
    while stopped is None:
        proposals = [c for c in strategy.ask(scored) if c not in seen]
        if not proposals:
            stopped = "the strategy finished"
        for point in proposals:
            stopped = budget.spent()
            if stopped:
                break
            scored.append((point, visit(point)))
    return Outcome(history, baseline, stopped)


def sweep(
    session: Session,
    point: Point,
    objective: Objective,
    values: Sequence[int],
    budget: Budget,
    *,
    min_gain: float = 0.05,
    patience: int = 4,
) -> list[tuple[Point, Record]]:
    """``point`` at each concurrency of ``values`` (ascending), with early exit and a bisection at a
    constraint edge (see the module's docstring)."""
    out: list[tuple[Point, Record]] = []

    def at(concurrency: int) -> Record:
        p = {**point, "concurrency": concurrency}
        record = session.measure(p)
        out.append((p, record))
        return record

    stalled, previous, last_ok = 0, None, None
    for value in values:
        if budget.spent():  # the cap caps (brute search checks it before each point's first load)
            break
        record = at(value)
        metrics = record.metrics
        if metrics is None:
            break
        if not objective.feasible(metrics):
            if last_ok is not None:
                low, high = last_ok, value
                while high - low > 1 and not budget.spent():
                    middle = (low + high) // 2
                    found = at(middle).metrics
                    low, high = (middle, high) if found is not None and objective.feasible(found) else (low, middle)
            break
        last_ok = value
        if previous is not None:
            stalled = stalled + 1 if objective.gain(metrics, previous) < min_gain else 0
            if stalled >= patience:
                break
        previous = metrics
    return out


def exponential(low: int, high: int) -> list[int]:
    out, value = [], max(low, 1)
    while value <= high:
        out.append(value)
        value *= 2
    return out
