"""Screening with candidates of known speeds, on a scripted clock: nothing here waits or depends on
the machine. Each candidate is a function batch → milliseconds per call; its calls advance the
clock by that much, and the profiler (the real one) measures exactly that."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

import pytest
from sextant.messages import ProfileOrder
from sextant.objective import Objective
from sextant.profiler import Point, ProfilerConfig
from sextant.records import Stop
from sextant.screening import (
    profile_candidate,
    rival_envelope,
    screen_batches,
    screen_mode,
    screen_verdict,
)

CONFIG = ProfilerConfig(max_batch=64, window_s=0.02, warmup_s=0.005, batch_budget_s=1.0, min_calls=3, sparse=False)
SPARSE = replace(CONFIG, sparse=True, min_calls=1)

#: milliseconds per call at batch b
SPEEDS: dict[str, Callable[[int], float]] = {
    "eager": lambda b: 2.0 + 0.5 * b,  # the reference: slow everywhere
    "flat": lambda b: 0.5 + 0.1 * b,  # good at batch 1, 9,300/s at 64
    "late": lambda b: 8.0 + 0.02 * b,  # slow at batch 1 (125/s), 4,700/s at 64
    "steady": lambda b: 0.3 + 0.2 * b,  # best at batch 1, 4,900/s at 64
    # the winner, at batch 8 (10,000/s), 1.26x the better end of its range (7,900/s at 64)
    "peak": lambda b: 0.4 + 0.05 * b if b <= 8 else 0.4 + 0.12 * b,
    "sleepy": lambda b: 20.0 + 2.0 * b,  # hopeless
}


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def profile(
    ms: Callable[[int], float],
    order: ProfileOrder,
    clock: Clock,
    config: ProfilerConfig = CONFIG,
    warm: Callable[[int], bool] = lambda size: False,
) -> tuple[list[Point], list[Point], Stop]:

    def make_infer(batch: int):
        def infer() -> None:
            clock.now += round(ms(batch) * 1e6)

        return infer

    full: list[Point] = []
    screen: list[Point] = []
    outcome = profile_candidate(make_infer, config, order, full.append, screen.append, clock=clock, warm=warm)
    return full, screen, outcome.stop


def best_of(profiles: dict[str, list[Point]]) -> str:
    return max(profiles, key=lambda name: max(p.throughput for p in profiles[name]))


def race(
    order_of_names: list[str],
    screen: str | None,
    cutoff: float = 0.7,
    speeds: dict = SPEEDS,
    config: ProfilerConfig = CONFIG,
) -> tuple[str, dict[str, Stop], float]:
    """Evaluate candidates one after another as the pipeline does (eager first, in full); returns
    the pick, how each ended, and the seconds of scripted clock spent profiling."""
    clock = Clock()
    full: dict[str, list[Point]] = {}
    stops: dict[str, Stop] = {}
    for name in ["eager", *order_of_names]:
        envelope = rival_envelope(full.values(), CONFIG.batch_sizes())
        order = ProfileOrder(True, cutoff, envelope, screen if full else None)
        points, _, stops[name] = profile(speeds[name], order, clock, config)
        if points:
            full[name] = points
    return best_of(full), stops, clock.now / 1e9


@pytest.mark.parametrize("config", [CONFIG, SPARSE], ids=["dense", "sparse"])
def test_screening_never_changes_the_pick_in_any_order(config):
    names = [n for n in SPEEDS if n != "eager"]
    everything, _, _ = race(names, screen=None, cutoff=0.0, config=config)  # every candidate swept in full
    assert everything == "peak"
    for order in itertools.permutations(names):
        pick, stops, _ = race(list(order), screen="throughput", config=config)
        assert pick == everything, order
        assert stops[pick] in (Stop.MAX_BATCH, Stop.PLATEAU)  # the winner's profile is a full sweep
        assert stops["sleepy"] is Stop.SCREENED


def test_screening_saves_profiling_time_once_a_strong_rival_is_measured():
    names = [n for n in SPEEDS if n != "eager"]
    _, _, everything = race(names, screen=None, cutoff=0.0)
    best_first = sorted(names, key=lambda n: -max(1000 * b / SPEEDS[n](b) for b in CONFIG.batch_sizes()))
    _, stops, screened = race(best_first, screen="throughput")
    assert sum(s is Stop.SCREENED for s in stops.values()) >= 2
    assert screened < 0.6 * everything  # scripted seconds, not a timing


def test_with_no_rival_to_screen_against_the_first_candidate_is_swept_without_a_screen():
    full, screen, stop = profile(SPEEDS["flat"], ProfileOrder(True, 0.7, {}, "throughput"), Clock())
    assert screen == [] and stop in (Stop.MAX_BATCH, Stop.PLATEAU) and full


def test_a_candidate_fastest_only_at_large_batches_is_kept():
    """``late`` is 16x slower than ``flat`` at batch 2, and wins at 64. The older cut-off (checked at
    each batch size against the best so far there) stopped it at batch 2; the early stop's bound
    (its latency grows by 0.002 ms a sample: 15,500/s at 64) keeps it, screened or not."""
    speeds = {"eager": SPEEDS["eager"], "flat": SPEEDS["flat"], "late": lambda b: 4.0 + 0.002 * b}  # 15,500/s at 64
    assert race(["flat", "late"], screen=None, cutoff=0.0, speeds=speeds)[0] == "late"
    for screen in (None, "throughput"):
        pick, stops, _ = race(["flat", "late"], screen=screen, speeds=speeds)
        assert pick == "late" and stops["late"] is Stop.MAX_BATCH, screen


def test_the_rivals_envelope_carries_each_throughput_to_every_larger_batch():
    """A rival that reached X/s at batch b reaches it at any larger batch (served as batches of b),
    so one cut off at batch 2 still counts at 64; nothing counts below the batch it was reached at."""
    cut_off = [point(1, 900.0), point(2, 1200.0)]
    full = [point(b, t) for b, t in ((1, 500.0), (2, 800.0), (4, 1000.0), (8, 2500.0), (16, 2400.0))]
    envelope = rival_envelope([cut_off, full], [1, 2, 4, 8, 16, 32, 64])
    assert envelope == {1: 900.0, 2: 1200.0, 4: 1200.0, 8: 2500.0, 16: 2500.0, 32: 2500.0, 64: 2500.0}
    assert rival_envelope([[point(8, 100.0)]], [1, 2, 4, 8, 16]) == {8: 100.0, 16: 100.0}
    assert rival_envelope([], [1, 2]) == {}


def point(batch: int, throughput: float) -> Point:
    return Point(batch, 1.0, 1.0, throughput, mean_ms=1.0, std_ms=0.0, calls=10, windows=2, stable=True, window_spread=0.0)


def test_the_verdict_names_the_estimate_and_the_best():
    rivals = {1: 500.0, 8: 2000.0, 64: 3000.0}
    reason = screen_verdict([point(1, 100.0), point(64, 1500.0)], rivals, 0.7, "throughput")
    assert reason == (
        "screened out: estimate 1500/s (batch 1: 100/s, batch 64: 1500/s) is under 70% of the best so far, 3000/s"
    )
    assert screen_verdict([point(1, 100.0), point(64, 2200.0)], rivals, 0.7, "throughput") is None  # 73 %: may win
    assert screen_verdict([point(1, 300.0)], rivals, 0.7, "latency").startswith("screened out: 300/s at batch 1")
    assert screen_verdict([point(1, 400.0)], rivals, 0.7, "latency") is None
    assert screen_verdict([point(1, 1.0)], rivals, 0.0, "throughput") is None  # cut-off 0: never
    assert screen_verdict([point(1, 1.0)], {}, 0.7, "throughput") is None  # nothing measured yet


def test_a_candidate_faster_at_batch_1_than_every_rival_is_swept_for_the_latency_regime():
    """Under the throughput objective the screen keeps a candidate whose batch 1 beats every rival's
    there, however far its estimate is below the best: only a swept candidate can be the latency
    regime's pick (ONNX Runtime at 3 ms a ResNet-18 image beside OpenVINO's throughput hint at 6 ms
    was screened out, and the batch-1 pick was the throughput one). One slower at batch 1 is not kept."""
    rivals = {1: 500.0, 64: 3000.0}
    assert screen_verdict([point(1, 600.0), point(64, 1500.0)], rivals, 0.7, "throughput") is None
    assert screen_verdict([point(1, 450.0), point(64, 1500.0)], rivals, 0.7, "throughput").startswith("screened out")
    speeds = {
        "eager": SPEEDS["eager"],
        "wide": lambda b: 2.0 + 0.05 * b,  # 490/s at batch 1, 12,300/s at 64: the throughput pick
        "quick": lambda b: 0.3 + 0.3 * b,  # 1,670/s at batch 1, 3,300/s at 64: the latency pick
        "lagging": lambda b: 0.8 + 0.3 * b,  # 910/s at batch 1, 3,200/s at 64: neither
    }
    for order in itertools.permutations(["wide", "quick", "lagging"]):
        pick, stops, _ = race(list(order), screen="throughput", speeds=speeds)
        assert pick == "wide" and stops["quick"] is not Stop.SCREENED, order
        if order.index("lagging") > max(order.index("wide"), order.index("quick")):
            assert stops["lagging"] is Stop.SCREENED, order


@pytest.mark.parametrize(
    ("objective", "mode"),
    [
        (Objective.named("throughput"), "throughput"),
        (Objective.named("latency"), "latency"),
        (Objective.named("memory"), None),
        (Objective.named("throughput", max_p99_ms=5.0), None),
        (Objective({"throughput": 0.5, "p99_ms": 0.5}, name="custom"), None),
    ],
)
def test_only_unconstrained_speed_objectives_are_screened(objective, mode):
    assert screen_mode(objective) == mode


def test_screen_batches_are_the_ends_of_the_range():
    assert screen_batches(ProfilerConfig(max_batch=64), "throughput") == [1, 64]
    assert screen_batches(ProfilerConfig(max_batch=48), "throughput") == [1, 48]
    assert screen_batches(ProfilerConfig(max_batch=64), "latency") == [1]
    assert screen_batches(ProfilerConfig(max_batch=2), "throughput") == []  # the sweep costs as much
    assert screen_batches(ProfilerConfig(max_batch=8, min_batch=8), "throughput") == []


def test_a_screen_of_calls_that_outlast_its_windows_times_three_calls_per_batch_size():
    """A large model at the largest batch size: a second a call. The screen warms up with one call
    and times one, its half-second budget spent (it made four calls), and still screens out what is
    too slow."""
    second_at_64 = lambda b: 1000.0 * b / 64  # noqa: E731  1,000 ms at 64: 64/s everywhere
    rivals = {b: 200.0 for b in CONFIG.batch_sizes()}  # a rival at 200/s
    clock = Clock()
    full, screen, stop = profile(second_at_64, ProfileOrder(True, 0.7, rivals, "throughput"), clock, SPARSE)
    assert stop is Stop.SCREENED and not full and [p.batch for p in screen] == [1, 64]
    assert [p.calls for p in screen] == [4, 1]  # timed, the warm-up's not counted: 0.03-s windows fill with 2 at batch 1
    # scripted time: 1 + 4 calls of 15.6 ms at batch 1 (a 5-ms warm-up), 1 + 1 calls of 1 s at 64 (it was 2 + 2)
    assert clock.now == pytest.approx((5 * 1000.0 / 64 + 2 * 1000.0) * 1e6, rel=0.001)

    # the correctness inputs have just run batch 64 in the same shapes: no warm-up call there
    clock = Clock()
    profile(second_at_64, ProfileOrder(True, 0.7, rivals, "throughput"), clock, SPARSE, warm=lambda b: b == 64)
    assert clock.now == pytest.approx((5 * 1000.0 / 64 + 1000.0) * 1e6, rel=0.001)
