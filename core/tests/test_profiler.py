"""The profiler's decisions, on a fake clock: every call costs a scripted time, so each value is exact.

Real timing (the profiler's own overhead) is measured in benchmarks/profiler_overhead.py."""

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from sextant.memory import MemoryReading
from sextant.profiler import SweepEnd, Point, ProfilerConfig, measure, sweep
from sextant.records import Stop

MS = 1_000_000  # nanoseconds


class FakeClock:
    """Time that stands still except when a fake model runs."""

    def __init__(self) -> None:
        self.now = 0
        self.calls = 0

    def __call__(self) -> int:
        return self.now

    def model(self, cost_ns: Callable[[int], int]) -> Callable[[], None]:
        """An ``infer`` whose n-th call (0-based, over this clock's life) takes ``cost_ns(n)``."""

        def infer() -> None:
            self.now += cost_ns(self.calls)
            self.calls += 1

        return infer


# 20 ms windows of 0.5 ms calls hold exactly 40 calls; a 5 ms warm-up holds 10
CONFIG = ProfilerConfig(window_s=0.02, warmup_s=0.005, batch_budget_s=1.0, max_batch=64, stability=0.25, sparse=False)
#: one call per window, two per warm-up
ONE_CALL = ProfilerConfig(window_s=1e-9, warmup_s=1e-9, min_calls=1, warmup_calls=2, stability=0.1, sparse=False)


def test_sweep_stops_when_throughput_plateaus():
    clock, points = FakeClock(), []
    # cost proportional to batch: throughput never improves, so the sweep stops after 2 doublings
    reason = sweep(lambda b: clock.model(lambda n: MS // 2 * b), CONFIG, points.append, clock=clock)
    assert reason == SweepEnd("throughput stopped improving at batch 4", Stop.PLATEAU)
    assert [p.batch for p in points] == [1, 2, 4]
    assert [p.throughput for p in points] == [2000.0, 2000.0, 2000.0]
    assert [p.mean_ms for p in points] == [0.5, 1.0, 2.0]


def test_sweep_runs_to_max_batch_when_batching_pays():
    clock, points = FakeClock(), []
    config = ProfilerConfig(max_batch=8, sparse=False)
    reason = sweep(lambda b: clock.model(lambda n: MS // 2), config, points.append, clock=clock)
    assert reason == SweepEnd("reached max batch 8", Stop.MAX_BATCH)
    assert [p.batch for p in points] == [1, 2, 4, 8]
    assert [p.throughput for p in points] == [2000.0, 4000.0, 8000.0, 16000.0]


def test_a_small_gain_counts_as_a_plateau():
    clock, points = FakeClock(), []
    # doubling the batch gains 4 % (under min_gain, 5 %): two such doublings end the sweep
    cost = {1: 1_000_000, 2: 1_923_077, 4: 3_698_225}
    reason = sweep(lambda b: clock.model(lambda n: cost[b]), CONFIG, points.append, clock=clock)
    assert reason == SweepEnd("throughput stopped improving at batch 4", Stop.PLATEAU)
    assert [p.throughput for p in points] == pytest.approx([1000.0, 1040.0, 1081.6], rel=1e-6)


def test_keep_going_can_stop_a_candidate_that_cannot_win():
    clock, points = FakeClock(), []
    reason = sweep(
        lambda b: clock.model(lambda n: MS // 5),
        CONFIG,
        points.append,
        lambda p: "cannot win" if p.batch == 2 else None,
        clock=clock,
    )
    assert reason == SweepEnd("cannot win", Stop.CUTOFF)  # keep_going's words, a cut-off
    assert [p.batch for p in points] == [1, 2]


def test_a_steady_model_gives_exact_windows_and_percentiles():
    clock = FakeClock()
    point = measure(clock.model(lambda n: MS // 2), 1, CONFIG, clock=clock)
    assert point.stable is True and point.window_spread == 0.0
    assert point.windows == 3 and point.calls == 3 * 40
    assert clock.calls == 10 + 3 * 40  # warm-up, then three windows
    assert (point.p50_ms, point.p90_ms, point.p95_ms, point.p99_ms) == (0.5, 0.5, 0.5, 0.5)
    assert point.mean_ms == 0.5 and point.std_ms == 0.0 and point.throughput == 2000.0


def test_a_window_lasts_at_least_window_s_and_min_calls():
    # 3 ms calls: a 10 ms window needs 4 of them, unless min_calls asks for more
    config = ProfilerConfig(window_s=0.01, warmup_s=0.004, min_calls=3)
    clock = FakeClock()
    assert measure(clock.model(lambda n: 3 * MS), 1, config, clock=clock).calls == 3 * 4
    assert clock.calls == 2 + 3 * 4  # a 4 ms warm-up: two calls
    clock = FakeClock()
    assert (
        measure(clock.model(lambda n: 3 * MS), 1, ProfilerConfig(window_s=0.01, min_calls=5), clock=clock).calls
        == 3 * 5
    )


def test_only_the_last_windows_count_once_the_model_settles():
    clock = FakeClock()
    costs = [10, 10, 5, 4, 1, 1, 1]  # warm-up 2 calls, then one call per window
    point = measure(clock.model(lambda n: costs[n] * MS), 1, ONE_CALL, clock=clock)
    # means 5,4,1 and 4,1,1 disagree; 1,1,1 agree after the fifth window
    assert point.stable is True and point.windows == 5 and clock.calls == 7
    assert point.calls == 3 and point.p99_ms == 1.0 and point.mean_ms == 1.0


def test_one_warm_up_call_by_default_and_a_slow_second_call_only_delays_the_agreement():
    config = ProfilerConfig(window_s=1e-9, warmup_s=1e-9, min_calls=1, stability=0.1)
    clock = FakeClock()
    point = measure(clock.model(lambda n: MS), 1, config, clock=clock)
    assert clock.calls == 1 + 3 and point.windows == 3 and point.stable  # a steady model: one call of warm-up
    clock = FakeClock()
    costs = [30, 20] + [1] * 10  # a JIT's: the first call compiles, the second optimizes, then steady
    point = measure(clock.model(lambda n: costs[n] * MS), 1, config, clock=clock)
    # the 20 ms window disagrees with the next two, so a fourth is measured: the calls of a
    # two-call warm-up and three windows, and the same point
    assert clock.calls == 1 + 4 and point.windows == 4 and point.stable
    assert point.calls == 3 and point.mean_ms == point.p99_ms == 1.0


def test_unstable_measurements_are_reported_not_hidden():
    clock = FakeClock()
    # every call 1 ms slower than the last: windows never agree. The warm-up takes 1 + 2 ms, then
    # windows of 3, 4, ... ms; the 100 ms budget runs out after the 14 ms window (12 windows, 105 ms)
    config = ProfilerConfig(
        window_s=1e-9, warmup_s=1e-9, min_calls=1, warmup_calls=2, stability=0.01, batch_budget_s=0.1
    )
    point = measure(clock.model(lambda n: (n + 1) * MS), 1, config, clock=clock)
    assert point.stable is False
    assert point.windows == 12 and clock.now == 105 * MS
    kept = [12.0, 13.0, 14.0]
    assert point.calls == 3 and point.mean_ms == 13.0 and point.p50_ms == 13.0
    assert point.window_spread == pytest.approx(14 / 12 - 1, rel=1e-12)
    assert [point.p90_ms, point.p95_ms, point.p99_ms] == pytest.approx(np.percentile(kept, [90, 95, 99]), rel=1e-12)
    assert [point.p90_ms, point.p95_ms, point.p99_ms] == pytest.approx([13.8, 13.9, 13.98], rel=1e-12)
    assert point.std_ms == pytest.approx(np.std(kept), rel=1e-12)
    assert point.throughput == pytest.approx(1000 / 13, rel=1e-12)


def test_the_budget_counts_the_warm_up():
    clock = FakeClock()
    # a 50 ms warm-up call already spends the 40 ms budget: one window, then stop, unstable
    config = ProfilerConfig(window_s=1e-9, warmup_s=1e-9, min_calls=1, batch_budget_s=0.04)
    point = measure(clock.model(lambda n: 50 * MS if n < 1 else MS), 1, config, clock=clock)
    assert point.windows == 1 and point.stable is False and point.window_spread == float("inf")
    assert point.calls == 1 and point.mean_ms == 1.0


def test_max_batch_is_always_measured():
    assert ProfilerConfig(max_batch=12).batch_sizes() == [1, 2, 4, 8, 12]


def test_a_fixed_batch_size_is_the_only_one_swept():
    assert ProfilerConfig(max_batch=4, min_batch=4).batch_sizes() == [4]
    assert ProfilerConfig(max_batch=12, min_batch=12).batch_sizes() == [12]
    assert ProfilerConfig(max_batch=12, min_batch=3).batch_sizes() == [4, 8, 12]
    # the default stays out of the record (and of profile keys made before it existed)
    assert "min_batch" not in ProfilerConfig().to_dict()
    assert ProfilerConfig(**ProfilerConfig(max_batch=4, min_batch=4).to_dict()).batch_sizes() == [4]


def test_stage_times_are_counted_after_the_warm_up_and_recorded():
    clock = FakeClock()
    reads = []
    infer = clock.model(lambda n: MS // 2)

    def stages():
        reads.append(clock.calls)
        return {"compute": 0.2, "calls": float(clock.calls)}

    point = measure(infer, 1, CONFIG, stages, clock=clock)
    assert reads == [10, 10 + 3 * 40]  # reset once warm, read at the end
    assert point.stages_ms == {"compute": 0.2, "calls": 130.0}
    assert measure(infer, 1, CONFIG, clock=clock).stages_ms is None


class FakeProbe:
    """Peaks that grow with the calls made since the last reset: 1 MB per call, plus 100 MB."""

    def __init__(self, clock: FakeClock, device: bool) -> None:
        self.clock, self.device = clock, device
        self.resets: list[int] = []

    def reset(self) -> None:
        self.resets.append(self.clock.calls)

    def read(self) -> MemoryReading:
        since = float(self.clock.calls - self.resets[-1])
        return MemoryReading(
            rss_mb=100.0,
            peak_mb=100.0 + since,
            peak_since_start=False,
            device_peak_mb=2 * since if self.device else None,
        )


def test_memory_peak_is_reset_after_the_warm_up_and_read_at_the_end():
    clock = FakeClock()
    probe = FakeProbe(clock, device=True)
    point = measure(clock.model(lambda n: MS // 2), 1, CONFIG, memory=probe, clock=clock)
    assert probe.resets == [10]
    assert point.memory_mb == 100.0 + 120 and point.device_memory_mb == 240.0
    plain = measure(clock.model(lambda n: MS // 2), 1, CONFIG, clock=clock)
    assert plain.memory_mb is None and plain.device_memory_mb is None


def test_sweep_passes_the_memory_probe_to_every_batch_size():
    clock, points = FakeClock(), []
    probe = FakeProbe(clock, device=False)
    sweep(lambda b: clock.model(lambda n: MS // 2 * b), CONFIG, points.append, memory=probe, clock=clock)
    # windows of 40, 20 and 10 calls: a reset after each warm-up, a read after each batch size's 3 windows
    assert probe.resets == [10, 130 + 5, 130 + 65 + 3]
    assert [p.memory_mb for p in points] == [100.0 + 120, 100.0 + 60, 100.0 + 30]
    assert [p.device_memory_mb for p in points] == [None, None, None]


def test_points_cross_a_process_boundary_as_dicts():
    clock = FakeClock()
    point = measure(clock.model(lambda n: MS), 4, CONFIG, memory=FakeProbe(clock, device=True), clock=clock)
    assert Point.from_json(point.to_json()) == point
    assert list(point.to_json())[:3] == ["batch", "p50_ms", "p90_ms"] and "new_tokens" not in point.to_json()
    old = point.to_json()
    for key in ("memory_mb", "device_memory_mb", "stages_ms", "remeasured"):  # written before these fields existed
        del old[key]
    loaded = Point.from_json({**old, "later": [1]})  # and a key a later sextant wrote
    assert loaded.memory_mb is None and loaded.device_memory_mb is None and loaded.stages_ms is None
    assert loaded.throughput == point.throughput == 4000.0
    assert loaded.to_json() == {**old, "later": [1]} and list(loaded.to_json())[-1] == "later"  # written back as read


def test_the_real_clock_is_the_default():
    calls = []
    point = measure(lambda: calls.append(1), 1, ProfilerConfig(window_s=0.001, warmup_s=0.001, batch_budget_s=0.05))
    assert point.calls >= 3 and point.windows >= 1 and len(calls) >= point.calls + 2
    assert point.memory_mb is None


SPARSE = replace(CONFIG, sparse=True)


def _sparse_run(ms: Callable[[int], float]) -> tuple[SweepEnd, list[int], dict[int, float]]:
    clock, points = FakeClock(), []
    reason = sweep(lambda b: clock.model(lambda n: round(ms(b) * MS)), SPARSE, points.append, clock=clock)
    return reason, [p.batch for p in points], {p.batch: p.throughput for p in points}


def test_a_sparse_sweep_measures_every_other_batch_size_then_beside_the_best():
    """Throughput that doubles with the batch: 1, 4, 16, 64 (the coarse sizes), then 32 beside the
    best; 5 points where the dense sweep takes 7, and the same best."""
    assert SPARSE.coarse_sizes() == [1, 4, 16, 64] and replace(SPARSE, max_batch=8).coarse_sizes() == [1, 4, 8]
    reason, batches, throughput = _sparse_run(lambda b: 0.5)
    assert reason == SweepEnd("reached max batch 64", Stop.MAX_BATCH)
    assert batches == [1, 4, 16, 64, 32]  # reported as measured
    assert max(throughput, key=throughput.get) == 64
    assert SPARSE.to_dict()["sparse"] is True and CONFIG.to_dict()["sparse"] is False  # the child gets either


def test_a_sparse_sweep_refines_to_a_peak_between_its_coarse_sizes():
    """Fastest at batch 8 (10,000/s), 6,900/s at 16: the coarse ascent stops at 16 (a quadrupling
    gaining under 10.25 %), then 8 and 32 are measured beside 16, and 8's neighbours are measured
    already: the dense sweep's best, in 5 points instead of 6."""

    def peak(b: int) -> float:
        return 0.4 + 0.05 * b if b <= 8 else 0.4 + 0.12 * b

    reason, batches, throughput = _sparse_run(peak)
    assert reason == SweepEnd("throughput stopped improving at batch 16", Stop.PLATEAU)
    assert batches == [1, 4, 16, 8, 32]
    assert max(throughput, key=throughput.get) == 8
    clock, dense = FakeClock(), []
    sweep(lambda b: clock.model(lambda n: round(peak(b) * MS)), CONFIG, dense.append, clock=clock)
    assert [p.batch for p in dense] == [1, 2, 4, 8, 16, 32]
    assert max(dense, key=lambda p: p.throughput).batch == 8
