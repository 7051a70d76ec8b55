"""Paired re-measurement (issue 30): rounds of interleaved windows on a scripted clock, the ratios
the objective gives, close calls decided by them, and the run that keeps, reuses and shows them."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sextant
from sextant.objective import Objective
from sextant.pairing import CLOSE, MIN_ROUNDS, SETTLE_S, Paired, contenders, decide, interleave, settled
from sextant.cli.tables import summary_line
from sextant.testing.fake import NumpyMLP


class Scripted:
    """A clock that each fake call advances by its contender's cost in the current round."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def test_rounds_rotate_the_order_and_measure_each_contender_in_every_round() -> None:
    clock = Scripted()
    order: list[str] = []
    costs_ns = {"a": 1_000_000, "b": 2_000_000}  # a: 1 ms per call, b: 2 ms per call

    def infer(name: str):
        def call() -> None:
            order.append(name)
            clock.now += costs_ns[name]

        return call

    slept: list[float] = []
    windows = interleave(
        [infer("a"), infer("b")], [4, 4], rounds=3, window_s=0.004, min_calls=2, clock=clock, sleep=slept.append
    )
    assert slept == [SETTLE_S] * (2 + 3 * 2)  # after every warm-up and every window: the runtimes' threads settle
    assert len(windows) == 3 and all(len(row) == 2 for row in windows)
    assert windows[0][0]["throughput"] == pytest.approx(4000.0)  # 4 rows per ms
    assert windows[0][1]["throughput"] == pytest.approx(2000.0)
    assert windows[2][1]["p50_ms"] == pytest.approx(2.0)
    # a window is 4 calls of a (1 ms each) or 2 of b (2 ms each): the warm-up (a, b), then round 0
    # a first, round 1 b first, round 2 a first
    assert "".join(order) == "aaaabb" + "aaaabb" + "bbaaaa" + "aaaabb"


def _paired(rows: list[tuple[float, float, float]]) -> Paired:
    """Throughputs per round of best, runner-up and baseline (batch 8 each)."""
    windows = tuple(tuple({"throughput": t, "p50_ms": 8000.0 / t, "p99_ms": 8000.0 / t} for t in row) for row in rows)
    return Paired(("best", "second", "base"), (8, 8, 8), windows)


def test_the_speedup_is_the_median_of_the_paired_ratios_with_their_range() -> None:
    paired = _paired([(100, 90, 10), (50, 45, 10), (120, 100, 12)])  # the second round was loaded
    decision = decide(paired, "best", "base", Objective(), set())
    assert decision.best == "best"
    assert decision.speedup.median == pytest.approx(10.0)
    assert (decision.speedup.low, decision.speedup.high) == (pytest.approx(5.0), pytest.approx(10.0))
    assert decision.speedup.wide
    assert any("is uncertain: the paired ratios range from 5.00× to 10.00×" in n for n in decision.notes)


def test_a_runner_up_that_wins_the_paired_rounds_takes_the_first_place() -> None:
    paired = _paired([(100, 104, 10), (101, 103, 10), (99, 105, 10)])
    decision = decide(paired, "best", "base", Objective(), set())
    assert decision.best == "second"
    assert decision.close[0].of == "second" and decision.close[0].median == pytest.approx(1.04)  # 104/100, 103/101, 105/99
    assert decision.notes[0].startswith("a close call decided by paired measurement: second is 1.04×")
    assert decision.speedup.median == pytest.approx(10.4)


def test_latency_is_compared_by_p50_and_an_unsettled_profile_is_said() -> None:
    paired = _paired([(100, 90, 10), (100, 90, 10), (100, 90, 10)])
    decision = decide(paired, "best", "base", Objective.named("latency"), {"base"})
    assert decision.speedup.median == pytest.approx(10.0)  # p50 80 ms against 800 ms
    assert not decision.speedup.wide
    assert any("base's profile did not settle" in n for n in decision.notes)


def test_contenders_are_the_best_the_close_runners_up_and_the_baseline() -> None:
    ranking = ["a", "b", "c", "d"]
    scores = {"a": 0.0, "b": -0.05, "c": -CLOSE - 0.05, "d": -0.01}
    assert contenders(ranking, scores, "base") == ["a", "b", "base"]  # c is not close; d is third runner-up
    assert contenders(ranking, scores, "a") == ["a", "b"]
    assert contenders([], {}, "base") == []


def test_a_run_pairs_its_best_with_the_baseline_and_a_rerun_reuses_the_windows(
    fake_catalog, options, samples, monkeypatch
):
    monkeypatch.setattr("sextant.pairing.CLOSE", 100.0)  # every runner-up is close: a pairing whoever wins
    options = replace(options, paired_rounds=3)
    status = sextant.optimize(NumpyMLP(), samples, options=options, catalog=fake_catalog).status
    paired, selection = status["paired"], status["selection"]
    best, baseline = selection["best"], status["baseline"]
    assert best in paired["contenders"]
    assert baseline in paired["contenders"] and len(paired["contenders"]) >= 2
    assert len(paired["windows"]) == 3 and all(len(row) == len(paired["contenders"]) for row in paired["windows"])
    speedup = selection["paired"]["speedup"]
    assert (speedup is None) == (best == baseline)
    if speedup is not None:
        assert speedup["of"] == best and speedup["over"] == baseline and speedup["rounds"] == 3
        assert speedup["low"] <= speedup["median"] <= speedup["high"]
        assert "over 3 paired rounds) the baseline" in summary_line(status, "ws")
    log = options.workspace / "logs" / "paired.log"
    written = log.stat().st_mtime_ns
    again = sextant.optimize(NumpyMLP(), samples, options=options, catalog=fake_catalog).status
    assert again["paired"] == paired and log.stat().st_mtime_ns == written  # nothing measured again
    assert again["selection"]["best"] == best


def test_no_pairing_when_turned_off(fake_catalog, options, samples):
    status = sextant.optimize(
        NumpyMLP(), samples, options=replace(options, paired_rounds=0), catalog=fake_catalog
    ).status
    assert "paired" not in status and "paired" not in status["selection"]



def test_the_rounds_stop_once_no_runner_up_can_overtake_the_best() -> None:
    clock = Scripted()
    costs_ns = {"best": 1_000_000, "second": 1_100_000, "base": 3_000_000}  # per call
    swapped = 1  # the round in which the best and the second trade costs (a burst of load, say)
    taken: list[int] = []

    def infer(name: str):
        def call() -> None:
            trade = len(taken) == swapped and name != "base"
            clock.now += costs_ns[{"best": "second", "second": "best"}[name]] if trade else costs_ns[name]

        return call

    def stop(rows) -> bool:
        taken.append(len(rows))
        return settled(rows, 7, [1], Objective())

    windows = interleave(
        [infer("best"), infer("second"), infer("base")],
        [8, 8, 8],
        rounds=7,
        window_s=0.004,
        min_calls=1,
        clock=clock,
        sleep=lambda seconds: None,
        stop=stop,
    )
    # a majority of 7 is 4: after 4 rounds the best led in 3 (the second may still win), after 5 in 4
    assert taken == [1, 2, 3, 4, 5] and len(windows) == 5
    paired = Paired(("best", "second", "base"), (8, 8, 8), tuple(tuple(row) for row in windows))
    decision = decide(paired, "best", "base", Objective(), set())
    assert decision.best == "best" and decision.speedup is not None and decision.speedup.rounds == 5


def test_the_rounds_go_on_to_the_minimum_and_while_a_runner_up_can_still_win() -> None:
    fast = {"throughput": 110.0, "p50_ms": 1.0, "p99_ms": 1.0}
    slow = {"throughput": 100.0, "p50_ms": 1.1, "p99_ms": 1.1}
    led = [fast, slow, slow]  # one round: best, runner-up, baseline
    trailed = [slow, fast, slow]
    assert not settled([led] * (MIN_ROUNDS - 1), 5, [1], Objective())  # clear, but under the minimum
    assert settled([led] * MIN_ROUNDS, 5, [1], Objective())
    assert settled([led] * 2, 2, [1], Objective())  # fewer rounds asked for than the minimum: all of them
    assert not settled([led, trailed, led], 5, [1], Objective())  # the best led 2 of 5: not yet decided
    assert settled([led, trailed, led, led], 5, [1], Objective())
    faster = {"throughput": 120.0, "p50_ms": 0.9, "p99_ms": 0.9}
    assert not settled([[fast, slow, faster]] * 3, 5, [1, 2], Objective())  # a second runner-up ahead each round
    assert settled([led] * MIN_ROUNDS, 5, [], Objective())  # the best and the baseline only: the minimum
    latency = Objective.named("latency")
    assert settled([led] * MIN_ROUNDS, 5, [1], latency)  # by p50: the best's 1.0 ms against 1.1 ms
