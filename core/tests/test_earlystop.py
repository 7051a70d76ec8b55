"""The early stop of a sweep (sextant.earlystop) on a scripted clock: each candidate is a function
batch -> milliseconds per call, its calls advance the clock by exactly that, and the real profiler
measures it; the rivals' envelope is given. Nothing here waits or depends on the machine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from sextant.earlystop import cannot_judge, growth_per_sample, stop_reason, sweep_cutoff, upper_bound
from sextant.messages import ProfileOrder
from sextant.objective import Objective
from sextant.profiler import Point, ProfilerConfig
from sextant.records import Stop
from sextant.screening import profile_candidate

CONFIG = ProfilerConfig(max_batch=64, window_s=0.02, warmup_s=0.005, batch_budget_s=1.0, sparse=False)
SIZES = CONFIG.batch_sizes()


def envelope(ms: Callable[[int], float]) -> dict[int, float]:
    """The rivals' envelope of one rival whose calls take ``ms(b)`` (its throughput grows with b)."""
    return {b: 1000.0 * b / ms(b) for b in SIZES}


def profile(
    ms: Callable[[int], float],
    rivals: dict[int, float],
    screen=None,
    config: ProfilerConfig = CONFIG,
    cutoff: float = 0.7,
) -> tuple[list[int], Stop, str]:
    now = [0]

    def make_infer(batch: int):
        def infer() -> None:
            now[0] += round(ms(batch) * 1e6)

        return infer

    points: list[Point] = []
    order = ProfileOrder(True, cutoff, rivals, screen)
    outcome = profile_candidate(make_infer, config, order, points.append, lambda p: None, clock=lambda: now[0])
    return [p.batch for p in points], outcome.stop, outcome.stopped


def test_a_candidate_that_cannot_reach_the_best_stops_at_batch_4_saying_by_how_much():
    """At batch 4 (its third point: the fewest a stop comes after) it runs 1,333/s and each added
    sample costs 0.5 ms, so it reaches at most 1,600/s at batch 8 and 1,939/s at 64, under 91 % of
    the rival's 8,889/s and 17,297/s there."""
    rivals = envelope(lambda b: 0.5 + 0.05 * b)
    batches, stop, stopped = profile(lambda b: 1.0 + 0.5 * b, rivals)
    assert (batches, stop) == ([1, 2, 4], Stop.CUTOFF)
    assert stopped == (
        "stopped early: cannot win (1333/s at batch 4; at most 1600/s at batch 8, adding 0.5 ms per sample, "
        "under 91% of the best so far there, 8889/s)"
    )
    # the same candidate against a rival 3x slower everywhere goes on: within reach at batch 8
    batches, stop, _ = profile(lambda b: 1.0 + 0.5 * b, {b: t / 3 for b, t in rivals.items()})
    assert stop is not Stop.CUTOFF and batches[-1] > 4


def test_a_sparse_sweep_stops_as_early_bounding_the_batch_sizes_it_skipped():
    """Sparse, the same candidate measures 1, 4 and 16 first; batch 2, skipped, is bounded from
    batch 1 (667/s, plus 0.5 ms for the added sample): the closest miss, and it stops at 16."""
    rivals = envelope(lambda b: 0.5 + 0.05 * b)
    batches, stop, stopped = profile(lambda b: 1.0 + 0.5 * b, rivals, config=replace(CONFIG, sparse=True))
    assert (batches, stop) == ([1, 4, 16], Stop.CUTOFF)
    assert stopped.startswith("stopped early: cannot win (667/s at batch 1; at most 1000/s at batch 2, adding 0.5 ms")


def test_a_runtime_that_uses_its_cores_better_at_larger_batches_is_not_stopped(monkeypatch):
    """The zoo's SegFormer on OpenVINO, in numbers: 0.035 ms a sample from batch 1 to 4, then
    0.016 ms. From batches 1 and 4 alone it is bounded at 25,000/s at 64, under 91 % of the rival's
    43,600/s (a stop after two points cut it there); the growth from 4 to 16 bounds it at 45,000/s,
    and swept to 64 it is the best of all."""
    import sextant.earlystop

    def segformer(b: int) -> float:
        return 0.355 + 0.035 * (b - 1) if b <= 4 else 0.46 + 0.016 * (b - 4)

    rivals = envelope(lambda b: 0.2 + 0.0198 * b)
    sparse = replace(CONFIG, sparse=True)
    batches, stop, _ = profile(segformer, rivals, config=sparse)
    assert stop is not Stop.CUTOFF and 64 in batches
    assert 64_000 / segformer(64) > rivals[64]  # the winner at 64
    monkeypatch.setattr(sextant.earlystop, "MIN_POINTS", 2)  # the rule before: stopped after 1 and 4
    assert profile(segformer, rivals, config=sparse)[:2] == ([1, 4], Stop.CUTOFF)


def test_a_candidate_that_wins_at_a_large_batch_is_not_stopped():
    """``late`` runs 813/s at batch 2, under 30 % of the rival's 2,857/s there (the older cut-off
    stopped it there), but its latency grows by 0.03 ms a sample: the bound at 64, 14,815/s, is over
    91 % of the rival's 9,275/s, so it is swept to 64, where it wins."""
    rivals = envelope(lambda b: 0.5 + 0.1 * b)
    batches, stop, _ = profile(lambda b: 2.4 + 0.03 * b, rivals)
    assert (batches, stop) == (SIZES, Stop.MAX_BATCH)
    assert 64_000 / (2.4 + 0.03 * 64) > rivals[64]  # it is the winner


def test_the_screens_point_at_the_largest_batch_keeps_a_kernel_switch_in_the_race():
    """Latency that grows 2 ms a sample up to batch 4, then almost not at all (another kernel):
    extrapolated from batches 1-4 it cannot reach the rival, and unscreened it is stopped at 4; the
    screen measured 6,667/s at 64, which the bound counts, so screened it is swept in full."""

    def switch(b: int) -> float:
        return 1.0 + 2.0 * b if b <= 4 else 9.0 + 0.01 * (b - 4)

    rivals = envelope(lambda b: 1.0 + 0.5 * b)  # 1,939/s at 64
    batches, stop, _ = profile(switch, rivals)
    assert (batches, stop) == ([1, 2, 4], Stop.CUTOFF)
    batches, stop, _ = profile(switch, rivals, screen="throughput")
    assert (batches, stop) == (SIZES, Stop.MAX_BATCH)


def test_the_current_best_at_some_batch_size_is_never_stopped():
    """Best so far at batch 1 (1,000/s against 488/s), hopeless at larger batches: swept until its
    own plateau, never stopped early (its profile stays complete)."""
    rivals = envelope(lambda b: 2.0 + 0.05 * b)
    batches, stop, _ = profile(lambda b: 0.5 + 0.5 * b, rivals)
    assert (batches, stop) == (SIZES, Stop.PLATEAU)


def point(batch: int, mean_ms: float) -> Point:
    return Point(batch, mean_ms, mean_ms, 1000.0 * batch / mean_ms, mean_ms=mean_ms, calls=10, windows=2, stable=True)


def test_the_bound_and_the_rule_in_numbers():
    points = [point(1, 2.0), point(2, 2.5), point(4, 4.5)]  # growth per sample: 0.5 then 1.0 ms
    assert growth_per_sample(points) == 0.5  # the smallest: the optimistic one
    assert upper_bound(points, 8) == 8000.0 / (4.5 + 4 * 0.5)
    assert upper_bound(points, 8, {8: 5000.0}) == 5000.0  # a screen's measurement counts
    assert growth_per_sample([point(1, 2.0), point(2, 1.9)]) == 0.0  # latency fell: throughput grows with b
    assert upper_bound([point(1, 2.0), point(2, 1.9)], 8) == 8000.0 / 1.9
    rivals = {1: 2000.0, 2: 4000.0, 4: 8000.0, 8: 16000.0}
    assert stop_reason(points, [8], rivals, 0.7).startswith("stopped early: cannot win (889/s at batch 4;")
    assert stop_reason(points, [8], rivals, 0.0) is None  # --cutoff 0: never
    assert stop_reason(points, [8], {}, 0.7) is None  # no rival yet
    assert stop_reason(points[:1], [2, 4, 8], rivals, 0.7) is None  # one point: no growth measured
    assert stop_reason(points[:2], [4, 8], rivals, 0.7) is None  # two: one growth, not enough to stop on
    close = {**rivals, 2: 800.0 * 1.09}  # within 10 % of the best at batch 2: paired measurement may pick it
    assert stop_reason(points, [8], close, 0.7) is None
    slower = {1: 600.0, 2: 1000.0, 4: 1500.0, 8: 1300.0}
    assert stop_reason(points, [8], slower, 0.7) is None  # its bound at 8, 1,231/s, is over 91 % of 1,300/s
    assert stop_reason(points, [8], {**slower, 8: 1400.0}, 0.7) is not None  # and under 91 % of 1,400/s
    # the sweep's share is the paired margin's, 1 / 1.1, or the cut-off when that is higher
    assert stop_reason(points, [8], slower, 0.95).endswith("under 95% of the best so far there, 1300/s)")


def test_the_stop_judges_only_objectives_decided_by_throughput():
    """The candidate of the first test, stopped at batch 4 under the throughput objective, is swept
    to the end under the memory objective (where it may well win: it is not judged on throughput)
    and under custom weights; the latency objective is decided at batch 1, measured before any
    stop, and keeps the stop, as does a constrained throughput objective."""
    rivals = envelope(lambda b: 0.5 + 0.05 * b)
    slow = lambda b: 1.0 + 0.5 * b  # noqa: E731
    for name in ("throughput", "latency"):
        assert cannot_judge(Objective.named(name)) is None
        assert profile(slow, rivals, cutoff=sweep_cutoff(Objective.named(name), 0.7))[:2] == ([1, 2, 4], Stop.CUTOFF)
    memory = Objective.named("memory")
    assert cannot_judge(memory) == (
        "the memory objective (memory_mb 1) is not decided by throughput, the only thing the stop bounds"
    )
    assert sweep_cutoff(memory, 0.7) == 0.0
    batches, stop, _ = profile(slow, rivals, cutoff=sweep_cutoff(memory, 0.7))
    assert stop is not Stop.CUTOFF and batches[:4] == [1, 2, 4, 8]
    budget = Objective.named("throughput", max_memory_mb=512)  # judged against rivals' points within it
    assert cannot_judge(budget) is None and sweep_cutoff(budget, 0.7) == 0.7
    mixed = Objective({"throughput": 1.0, "memory_mb": -0.5}, name="custom")
    assert sweep_cutoff(mixed, 0.7) == 0.0 and "custom objective" in cannot_judge(mixed)


def test_a_run_under_the_memory_objective_says_no_sweep_stops_early(fake_catalog, options, samples):
    """The rule, in a run: under the memory objective with the screen's cut-off on, no candidate is
    cut off, and the run's notes say why."""
    import sextant
    from sextant.testing.fake import NumpyMLP

    options = replace(options, objective="memory", cutoff=0.7, paired_rounds=0, runners=("numpy-eager", "fake-graph"))
    document = sextant.optimize(NumpyMLP(), samples, options=options, catalog=fake_catalog).document
    assert (
        "no sweep stops early: the memory objective (memory_mb 1) is not decided by throughput, the only thing the "
        "stop bounds; each is swept to its plateau or largest batch size"
    ) in document.notes
    profiles = [r.profile for r in document.candidates.values() if r.profile is not None]
    assert profiles and all(p.stop is not Stop.CUTOFF for p in profiles)


def test_under_a_latency_budget_the_best_so_far_is_what_rivals_reach_within_it():
    """A rival reaches 16,000/s at batch 8, but only 4,000/s within a 1 ms p99 budget (batch 2): a
    candidate bounded at 4,706/s at batch 8 is stopped against the first, not against the second."""
    from types import SimpleNamespace

    from sextant.optimizer.candidates import rivals
    from sextant.records import CandidateRecord, Point, Profile, Status

    points = tuple(Point(batch=b, throughput=2000.0 * b, p50_ms=0.4 * b, p99_ms=0.5 * b) for b in (1, 2, 4, 8))
    rival = CandidateRecord("s", "f", "r", "p 1", "cpu", "fp32", status=Status.OK, profile=Profile(points, 1))
    ledger = SimpleNamespace(run_candidates=["rival"], candidates={"rival": rival})

    def envelope_under(objective: Objective) -> dict[int, float]:
        run = SimpleNamespace(ledger=ledger, reference_only=frozenset(), objective=objective, profiler=CONFIG)
        return {b: t for b, t in rivals(run).items() if b <= 8}

    free = envelope_under(Objective.named("throughput"))
    budget = envelope_under(Objective.named("throughput", max_p99_ms=1.0))
    assert free == {1: 2000.0, 2: 4000.0, 4: 8000.0, 8: 16000.0}
    assert budget == {1: 2000.0, 2: 4000.0, 4: 4000.0, 8: 4000.0}
    mine = [point(1, 1.0), point(2, 1.1), point(4, 1.3)]  # 1,000/s, 1,818/s, 3,077/s: at most 4,706/s at 8
    assert stop_reason(mine, [8], free, 0.7) is not None
    assert stop_reason(mine, [8], budget, 0.7) is None  # 4,706/s is over 91 % of 4,000/s
