import time

from sextant.profiler import ProfilerConfig, measure, sweep


def busy(ms: float):
    def run():
        end = time.perf_counter() + ms / 1000
        while time.perf_counter() < end:
            pass

    return run


CONFIG = ProfilerConfig(window_s=0.02, warmup_s=0.005, batch_budget_s=1.0, max_batch=64, stability=0.25)


def test_sweep_stops_when_throughput_plateaus():
    points = []
    # cost proportional to batch: throughput never improves, so the sweep stops after 2 doublings
    reason = sweep(lambda b: busy(0.5 * b), CONFIG, points.append)
    assert [p.batch for p in points] == [1, 2, 4]
    assert "stopped improving at batch 4" in reason


def test_sweep_runs_to_max_batch_when_batching_pays():
    points = []
    reason = sweep(
        lambda b: busy(0.5), ProfilerConfig(window_s=0.01, warmup_s=0.002, max_batch=8, stability=0.5), points.append
    )
    assert [p.batch for p in points] == [1, 2, 4, 8]
    assert reason == "reached max batch 8"
    assert points[-1].throughput > points[0].throughput * 4


def test_keep_going_can_stop_a_candidate_that_cannot_win():
    points = []
    reason = sweep(lambda b: busy(0.2), CONFIG, points.append, lambda p: "cannot win" if p.batch == 2 else None)
    assert reason == "cannot win" and len(points) == 2


def test_unstable_measurements_are_reported_not_hidden():
    calls = iter(range(10**9))  # every call slower than the last: windows never agree
    point = measure(
        lambda: busy(0.05 + 0.005 * next(calls))(),
        1,
        ProfilerConfig(window_s=0.01, warmup_s=0.001, batch_budget_s=0.3, stability=0.01),
    )
    assert point.windows >= 3
    assert point.stable is False
    assert point.p99_ms >= point.p50_ms > 0


def test_max_batch_is_always_measured():
    assert ProfilerConfig(max_batch=12).batch_sizes() == [1, 2, 4, 8, 12]


def test_stage_times_are_counted_after_the_warm_up_and_recorded():
    calls = {"n": 0, "reads": []}

    def infer():
        busy(0.2)()
        calls["n"] += 1

    def stages():
        calls["reads"].append(calls["n"])
        return {"compute": 0.2, "calls": float(calls["n"])}

    point = measure(infer, 1, CONFIG, stages)
    first, last = calls["reads"]
    assert first >= 2 and last > first  # reset once warm, read at the end
    assert point.stages_ms == {"compute": 0.2, "calls": float(last)}
    assert measure(infer, 1, CONFIG).stages_ms is None
