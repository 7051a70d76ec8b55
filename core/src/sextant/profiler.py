"""Latency and throughput of one loaded runner across batch sizes.

For each batch size (by default 1, 4, 16, ... up to a plateau, then the sizes beside the best:
:func:`sparse_sweep`; with ``sparse`` off 1, 2, 4, ... up to ``max_batch``) the profiler warms up,
then measures windows of calls, each window lasting at least ``window_s`` (so sub-millisecond
models get many calls per window), until the mean latencies of the last ``stable_windows`` windows
agree within ``stability``, or the batch size's time budget runs out, in which case the point is
marked unstable. The dense sweep stops after ``plateau_steps`` consecutive doublings that each gain
less than ``min_gain`` throughput (the sparse one after a quadrupling that gains less than
``min_gain`` per doubling), or when ``keep_going(point)`` says the candidate cannot win; it says why
as a :class:`SweepEnd` (a :class:`~sextant.records.Stop` and the same in words). A point whose
time per item is over ``outlier`` times its neighbours' (one slow reading on a loaded machine) is
measured again, at most ``remeasure`` times, and marked unstable if it stays off.

Time comes from ``clock`` (integer nanoseconds, ``time.perf_counter_ns`` by default), both for the
windows and for the budget, so tests can script it. With ``synchronize`` (a GPU runner's, see
``sextant.runtime.Synchronizer``) every reading of the clock comes after it: a timed call ends when
the device has finished its work, not when the host has enqueued it. With a memory probe (:mod:`sextant.memory`) each
point also records the peak resident memory while its batch size was measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from sextant.records import Point, Stop

if TYPE_CHECKING:
    from sextant.memory import MemorySource

#: a monotonic clock in integer nanoseconds
Clock = Callable[[], int]


#: how :func:`sweep`'s own reasons for stopping begin (a ``keep_going`` reason is the caller's)
PLATEAU = "throughput stopped improving"
MAX_BATCH = "reached max batch"


@dataclass(frozen=True)
class SweepEnd:
    """How a sweep (or a candidate's screen and sweep) ended: why, in words and in one word."""

    stopped: str
    stop: Stop


@dataclass(frozen=True)
class ProfilerConfig:
    max_batch: int = 64
    window_s: float = 0.05
    min_calls: int = 1  # a window of one call when a call outlasts it: stability is judged across windows
    warmup_s: float = 0.05
    #: the warm-up's fewest calls: a first call at a new batch size can be slower than the rest (a
    #: later slow call, a JIT's second run, makes its window disagree, and the windows go on until the
    #: last ``stable_windows`` agree); 0: no warm-up (the runner has just run this batch size)
    warmup_calls: int = 1
    stable_windows: int = 3
    stability: float = 0.10
    batch_budget_s: float = 3.0
    min_gain: float = 0.05
    plateau_steps: int = 2
    #: a point whose time per item is over this many times its neighbours' is off the trend
    outlier: float = 10.0
    #: how many times an off-trend point is measured again before it is kept, marked unstable
    remeasure: int = 2
    #: the smallest batch size swept; ``min_batch == max_batch`` for a model that fixes its batch size
    min_batch: int = 1
    #: sweep every other batch size first (1, 4, 16, ... and the largest), then beside the best
    #: (:func:`sparse_sweep`); off: 1, 2, 4, ... up to the plateau (``--dense-sweep``)
    sparse: bool = True

    def batch_sizes(self) -> list[int]:
        """Powers of two from ``min_batch`` up to ``max_batch``, then ``max_batch`` itself."""
        sizes, size = [], 1
        while size <= self.max_batch:
            if size >= self.min_batch:
                sizes.append(size)
            size *= 2
        if not sizes or sizes[-1] != self.max_batch:
            sizes.append(self.max_batch)
        return sizes

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.min_batch == 1:  # the default stays out, so profiles keyed before it existed still match
            del data["min_batch"]
        return data

    def coarse_sizes(self) -> list[int]:
        """The batch sizes a sparse sweep measures first: every other one of :meth:`batch_sizes`
        from the smallest (1, 4, 16, 64), and the largest."""
        sizes = self.batch_sizes()
        coarse = sizes[::2]
        return coarse if coarse[-1] == sizes[-1] else [*coarse, sizes[-1]]


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)


def synced(clock: Clock, synchronize: Callable[[], None] | None) -> Clock:
    """``clock``, read only after ``synchronize()`` returned; ``clock`` itself without one."""
    if synchronize is None:
        return clock

    def read() -> int:
        synchronize()
        return clock()

    return read


def _window(infer: Callable[[], Any], window_s: float, min_calls: int, clock: Clock) -> list[float]:
    limit = _ns(window_s)
    times: list[int] = []
    append = times.append
    start = clock()
    while True:
        t0 = clock()
        infer()
        t1 = clock()
        append(t1 - t0)
        if t1 - start >= limit and len(times) >= min_calls:
            return [t / 1e6 for t in times]


def measure(
    infer: Callable[[], Any],
    batch: int,
    config: ProfilerConfig,
    stages: Callable[[], Mapping[str, float]] | None = None,
    *,
    memory: MemorySource | None = None,
    clock: Clock = time.perf_counter_ns,
    synchronize: Callable[[], None] | None = None,
) -> Point:
    """Measure one batch size: warm-up, then windows until stable or out of budget.

    ``stages`` (a runner's ``stage_times``) is read after the warm-up, to start its count, and at
    the end. ``memory`` (a :class:`sextant.memory.MemoryProbe`) is reset after the warm-up and read
    at the end. ``clock`` times the calls and the budget, each reading after ``synchronize()``
    when it is given."""
    clock = synced(clock, synchronize)
    deadline = clock() + _ns(config.batch_budget_s)
    if config.warmup_calls:
        _window(infer, config.warmup_s, config.warmup_calls, clock)
    if stages is not None:
        stages()
    if memory is not None:
        memory.reset()
    windows: list[list[float]] = []
    stable = False
    spread = float("inf")
    while True:
        windows.append(_window(infer, config.window_s, config.min_calls, clock))
        if len(windows) >= config.stable_windows:
            means = [float(np.mean(w)) for w in windows[-config.stable_windows :]]
            spread = max(means) / min(means) - 1.0
            if spread <= config.stability:
                stable = True
                break
        if clock() >= deadline:
            break
    reading = memory.read() if memory is not None else None
    kept = windows[-config.stable_windows :]
    latencies = np.concatenate([np.asarray(w) for w in kept])
    p50, p90, p95, p99 = np.percentile(latencies, [50, 90, 95, 99])
    mean = float(latencies.mean())
    return Point(
        batch=batch,
        p50_ms=float(p50),
        p90_ms=float(p90),
        p95_ms=float(p95),
        p99_ms=float(p99),
        mean_ms=mean,
        std_ms=float(latencies.std()),
        throughput=batch * 1000.0 / mean,
        calls=int(latencies.size),
        windows=len(windows),
        stable=stable,
        window_spread=float(spread),
        stages_ms=dict(stages()) if stages is not None else None,
        memory_mb=reading.peak_mb if reading is not None else None,
        device_memory_mb=reading.device_peak_mb if reading is not None else None,
    )


def sweep(
    make_infer: Callable[[int], Callable[[], Any]],
    config: ProfilerConfig,
    report: Callable[[Point], None],
    keep_going: Callable[[Point], str | None] = lambda point: None,
    stages: Callable[[], Mapping[str, float]] | None = None,
    *,
    memory: MemorySource | None = None,
    clock: Clock = time.perf_counter_ns,
    synchronize: Callable[[], None] | None = None,
) -> SweepEnd:
    """Profile batch sizes in order (each with :func:`measure`); returns why the sweep stopped
    (``Stop.CUTOFF`` with ``keep_going``'s words when it said to stop).

    A point off the trend of its neighbours (see :func:`off_trend`) is measured again, at most
    ``config.remeasure`` times, before it is reported and before anything is decided on it; one
    that stays off is kept, marked unstable. A point is checked against the one before it when it
    is measured, and batch 1 (which has none) once batch 2 is measured, so batch 1 is reported
    then. ``synchronize`` goes to :func:`measure`.

    With ``config.sparse`` the batch sizes are not all measured in order: see :func:`sparse_sweep`."""
    timing: dict[str, Any] = {"memory": memory, "clock": clock, "synchronize": synchronize}
    if config.sparse:
        return sparse_sweep(make_infer, config, report, keep_going, stages, **timing)

    def again(points: list[Point], index: int) -> None:
        _settle(points, index, make_infer, config, stages, timing)

    points: list[Point] = []
    best = 0.0
    low_gain = 0
    for batch in config.batch_sizes():
        points.append(measure(make_infer(batch), batch, config, stages, **timing))
        if len(points) > 1:
            again(points, len(points) - 1)
        if len(points) == 2:
            again(points, 0)
            report(points[0])
        if len(points) > 1:
            report(points[-1])
        point = points[-1]
        reason = keep_going(point)
        if reason:
            return _report_first(points, report, SweepEnd(reason, Stop.CUTOFF))
        low_gain = low_gain + 1 if point.throughput < best * (1 + config.min_gain) else 0
        best = max(best, point.throughput)
        if low_gain >= config.plateau_steps:
            return _report_first(points, report, SweepEnd(f"{PLATEAU} at batch {batch}", Stop.PLATEAU))
    return _report_first(points, report, SweepEnd(f"{MAX_BATCH} {config.max_batch}", Stop.MAX_BATCH))


def sparse_sweep(
    make_infer: Callable[[int], Callable[[], Any]],
    config: ProfilerConfig,
    report: Callable[[Point], None],
    keep_going: Callable[[Point], str | None] = lambda point: None,
    stages: Callable[[], Mapping[str, float]] | None = None,
    **timing: Any,
) -> SweepEnd:
    """:func:`sweep` over fewer batch sizes: first the coarse ones (:meth:`ProfilerConfig.coarse_sizes`:
    1, 4, 16, 64) upwards until one gains under ``min_gain`` per doubling it spans over the best
    before it (``(1 + min_gain)**2 - 1`` for a quadrupling: the dense sweep's plateau of two
    doublings), or the largest is reached; then, while the best point so far has a neighbour in
    :meth:`ProfilerConfig.batch_sizes` that is not measured, those neighbours. On a throughput curve
    with one peak this finds the best batch size of the dense sweep. Points are reported as they are
    measured (not in batch order), each once it is checked against its measured neighbours
    (``off_trend``); ``keep_going`` may stop it after any point."""
    grid = config.batch_sizes()
    measured: dict[int, Point] = {}

    def take(batch: int) -> str | None:
        measured[batch] = measure(make_infer(batch), batch, config, stages, **timing)
        points = [measured[b] for b in sorted(measured)]
        if len(points) > 1:
            _settle(points, points.index(measured[batch]), make_infer, config, stages, timing)
            if len(points) == 2:  # the first point had no neighbour to be checked against until now
                first = 1 if points[0].batch == batch else 0
                _settle(points, first, make_infer, config, stages, timing)
                report(points[first])
            measured.update((p.batch, p) for p in points)
            report(measured[batch])
        return keep_going(measured[batch])

    def finish(outcome: SweepEnd) -> SweepEnd:
        if len(measured) == 1:
            report(next(iter(measured.values())))
        return outcome

    ended = SweepEnd(f"{MAX_BATCH} {config.max_batch}", Stop.MAX_BATCH)
    best, previous = 0.0, None
    for batch in config.coarse_sizes():
        stop = take(batch)
        if stop:
            return finish(SweepEnd(stop, Stop.CUTOFF))
        point = measured[batch]
        doublings = grid.index(batch) - grid.index(previous) if previous is not None else 0
        if previous is not None and point.throughput < best * (1 + config.min_gain) ** doublings:
            ended = SweepEnd(f"{PLATEAU} at batch {batch}", Stop.PLATEAU)
            break
        best, previous = max(best, point.throughput), batch
    while True:
        top = grid.index(max(measured, key=lambda b: measured[b].throughput))
        beside = [grid[i] for i in (top - 1, top + 1) if 0 <= i < len(grid) and grid[i] not in measured]
        if not beside:
            return finish(ended)
        for batch in beside:
            stop = take(batch)
            if stop:
                return finish(SweepEnd(stop, Stop.CUTOFF))


def _settle(
    points: list[Point],
    index: int,
    make_infer: Callable[[int], Callable[[], Any]],
    config: ProfilerConfig,
    stages: Callable[[], Mapping[str, float]] | None,
    timing: Mapping[str, Any],
) -> None:
    """Measure ``points[index]`` again while it is off the trend of its measured neighbours (at
    most ``config.remeasure`` times); one that stays off is kept, marked unstable."""
    point = points[index]
    for count in range(1, config.remeasure + 1):
        if not off_trend(points, index, config.outlier):
            return
        point = measure(make_infer(point.batch), point.batch, config, stages, **timing)
        points[index] = replace(point, remeasured=count)
    if off_trend(points, index, config.outlier):
        points[index] = replace(points[index], stable=False)


def _report_first(points: list[Point], report: Callable[[Point], None], outcome: SweepEnd) -> SweepEnd:
    """Report batch 1 when the sweep ends before batch 2 could check it; returns ``outcome``."""
    if len(points) == 1:
        report(points[0])
    return outcome


def off_trend(points: list[Point], index: int, factor: float) -> bool:
    """Whether ``points[index]`` takes over ``factor`` times the time per item of each measured
    neighbour (the batch sizes before and after it): one slow reading, such as a burst of load
    while it was measured, rather than a property of the model."""
    neighbours = [points[i] for i in (index - 1, index + 1) if 0 <= i < len(points) and i != index]
    per_item = points[index].per_item_ms
    return bool(neighbours) and all(per_item > factor * n.per_item_ms for n in neighbours)
