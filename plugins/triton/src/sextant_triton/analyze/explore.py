"""The search itself: measure points of a :class:`~sextant_triton.analyze.space.Space` on a server,
through the store, in the order a strategy asks for them.

- :class:`Session` measures one point: the stored result if there is one; another worker's if it
  holds the claim; else load the point's configurations, run perf_analyzer on every unit (at once,
  for units analyzed concurrently; a streaming model, ``--model-type llm``, with
  :mod:`sextant_triton.llmperf`), add the server's memory, store it. A server that died is
  recorded, restarted (local mode) and the point measured again; nothing stored is lost.
- The search itself is the core's (``sextant.api.run_search``): the defaults first, then what a
  strategy (brute, quick, optuna) asks for until it finishes or the budget runs out.
- :func:`sweep` walks one configuration's concurrency upward (doubling) and stops after
  ``patience`` steps gaining under ``min_gain``; at a constraint edge (a feasible value followed by
  an infeasible one) it bisects between the two. Brute search sweeps every configuration this way;
  the top N of any search are swept for the curves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sextant.api import Objective, SextantError, Tally, fetch

from sextant_triton import llmperf, perf
from sextant_triton.analyze.control import ServerControl, gpu_memory_mb
from sextant_triton.analyze.space import Coordinates, ServedModel, Space
from sextant_triton.analyze.store import Record, Store

Metrics = dict[str, float]
Counters = Tally  # measurements made by this run, found in the store (an earlier run, another worker), incidents


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
        on_measured: Callable[[Coordinates, Record], None] | None = None,
        give_up: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.space, self.control, self.store = space, control, store
        self.key, self.hardware, self.windows = key, hardware, windows
        self.inputs, self.workdir = inputs, workdir
        self.on_measured = on_measured
        self.give_up = give_up  # why to stop waiting for another worker (the budget is spent), or None
        self.counters = counters or Counters()  # shared by the run's groups

    def measure(self, point: Coordinates) -> Record:
        """``point`` through the store (``sextant.api.fetch``): stored, another worker's, or measured now."""
        return fetch(
            self.store,
            self.key,
            self.hardware,
            point,
            self.load,
            tally=self.counters,
            give_up=self.give_up,
            on_measured=self.on_measured,
        )

    def remeasure(self, point: Coordinates) -> Metrics | None:
        """``point`` measured again now, whatever the store holds (the result is not stored: it is
        one window of a paired comparison); ``None`` when it failed or the budget is spent."""
        if self.give_up() is not None:
            return None
        metrics, _ = self.load(point)
        self.counters.measured += 1
        return metrics

    def load(self, point: Coordinates) -> tuple[Metrics | None, str | None]:
        """``point`` measured on the server now (restarted once if it died): its metrics, or why not."""
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

    def _load_test(self, point: Coordinates) -> Metrics:
        units = self.space.units

        def one(unit: ServedModel) -> Metrics:
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


def sweep(
    session: Session,
    point: Coordinates,
    objective: Objective,
    values: Sequence[int],
    give_up: Callable[[], str | None],
    *,
    min_gain: float = 0.05,
    patience: int = 4,
) -> list[tuple[Coordinates, Record]]:
    """``point`` at each concurrency of ``values`` (ascending), with early exit and a bisection at a
    constraint edge (see the module's docstring); none once ``give_up()`` says the budget is spent."""
    out: list[tuple[Coordinates, Record]] = []

    def at(concurrency: int) -> Record:
        p = {**point, "concurrency": concurrency}
        record = session.measure(p)
        out.append((p, record))
        return record

    stalled, previous, last_ok = 0, None, None
    for value in values:
        if give_up():  # the cap caps (brute search checks it before each point's first load)
            break
        record = at(value)
        metrics = record.metrics
        if metrics is None:
            break
        if not objective.feasible(metrics):
            if last_ok is not None:
                low, high = last_ok, value
                while high - low > 1 and not give_up():
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
