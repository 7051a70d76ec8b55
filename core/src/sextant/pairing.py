"""Paired re-measurement: the decisive comparisons measured A B A B, not read off two sweeps.

A sweep measures each candidate once, at its own time. On a shared machine a burst of load during
one sweep makes that candidate look slower, and when it is the baseline every speedup looks larger
(a loaded run once printed 776× because eager's sweep never settled). So once every candidate is
measured, the contenders (the best; the runners-up within :data:`CLOSE` of it under the objective;
the baseline) are loaded in one child and measured in rounds: in each round every contender runs one
window at its best batch size, in an order that rotates from round to round, so load that comes and
goes falls on all of them alike. From round ``r``'s windows the objective gives each contender's
ratio over another (:meth:`Paired.ratios`): the speedup is their median, shown with their range.

A runner-up whose median ratio over the best is above 1 takes its place (a close call decided by
paired windows, not by one sweep each); a range wider than :data:`WIDE`, or a best point that did
not settle, is said in a note. The rounds stop early once they cannot change that decision
(:func:`settled`): after :data:`MIN_ROUNDS`, when every runner-up was no faster than the best in a
majority of all the rounds asked for, its median ratio stays at or under 1 whatever the rest would
show. The speedup over the baseline is then the median of the rounds taken, and says how many.
``clock`` is injectable, as in :mod:`sextant.profiler`, and so is the ``sleep`` that lets each
runtime's threads settle between windows (:data:`SETTLE_S`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sextant.objective import Metrics, Objective
from sextant.profiler import Clock, _window

#: runners-up within this share of the best's score (its gain over the best) are paired with it
CLOSE = 0.10
#: at most this many runners-up are paired
RUNNERS_UP = 2
#: the fewest rounds measured, however clear the outcome: the speedup over the baseline is their median
MIN_ROUNDS = 3
#: a ratio range wider than this share of its median is reported as wide
WIDE = 0.25
#: seconds between two windows: the runtimes in one process (torch's OpenMP threads, ONNX Runtime's
#: and OpenVINO's pools) spin for a while after a call, and on a machine with as many cores as
#: threads measured, one's spinning halved the next one's throughput (eager torch read 3x slower
#: right after ONNX Runtime than alone)
SETTLE_S = 0.05


def window_metrics(latencies_ms: Sequence[float], batch: int) -> dict[str, float]:
    """One window's measurement, in the objective's metrics."""
    values = np.asarray(latencies_ms, dtype=float)
    p50, p99 = np.percentile(values, [50, 99])
    return {"throughput": batch * 1000.0 / float(values.mean()), "p50_ms": float(p50), "p99_ms": float(p99)}


def interleave(
    infers: Sequence[Callable[[], Any]],
    batches: Sequence[int],
    rounds: int,
    window_s: float,
    min_calls: int,
    *,
    clock: Clock = time.perf_counter_ns,
    sleep: Callable[[float], None] = time.sleep,
    stop: Callable[[list[list[dict[str, float]]]], bool] | None = None,
) -> list[list[dict[str, float]]]:
    """``rounds`` rounds of one window per contender, the order rotated by one each round, or fewer
    when ``stop(rows so far)`` says so after a round (:func:`settled`); returns
    ``result[round][contender]``, each a :func:`window_metrics`. Each contender is warmed up first.
    After each window the process sleeps :data:`SETTLE_S`, so that the threads of the runtime just
    measured stop spinning before the next one's window starts."""

    def window(i: int) -> list[float]:
        latencies = _window(infers[i], window_s, min_calls, clock)
        sleep(SETTLE_S)
        return latencies

    for infer in infers:
        _window(infer, window_s, 2, clock)
        sleep(SETTLE_S)
    result: list[list[dict[str, float]]] = []
    count = len(infers)
    for r in range(rounds):
        row: list[dict[str, float]] = [{} for _ in infers]
        for step in range(count):
            i = (r + step) % count
            row[i] = window_metrics(window(i), batches[i])
        result.append(row)
        if stop is not None and stop(result):
            break
    return result


def settled(rows: Sequence[Sequence[Metrics]], rounds: int, runners_up: Sequence[int], objective: Objective) -> bool:
    """Whether the rounds measured so far (``rows``, the first contender the best) already decide a
    pairing of ``rounds`` rounds: at least :data:`MIN_ROUNDS` (or all) taken, and every runner-up
    (their indices) no faster than the best in over half of ``rounds``, so that its median ratio
    over the best cannot come out above 1 (:func:`decide`) whatever the rounds not taken would show."""
    if len(rows) < min(MIN_ROUNDS, rounds):
        return False
    majority = rounds // 2 + 1
    return all(sum(objective.speedup(row[i], row[0]) <= 1.0 for row in rows) >= majority for i in runners_up)


@dataclass(frozen=True)
class Ratio:
    """Contender ``of`` over contender ``over``: the median of the per-round ratios and their range."""

    of: str
    over: str
    median: float
    low: float
    high: float
    rounds: int

    @property
    def wide(self) -> bool:
        return (self.high - self.low) > WIDE * self.median

    def describe(self) -> str:
        return f"{self.median:.2f}× ({self.low:.2f}–{self.high:.2f} over {self.rounds} paired rounds)"

    def to_json(self) -> dict[str, Any]:
        return {"of": self.of, "over": self.over, "median": self.median, "low": self.low, "high": self.high,
                "rounds": self.rounds}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Ratio:
        return cls(data["of"], data["over"], data["median"], data["low"], data["high"], data["rounds"])


@dataclass(frozen=True)
class Paired:
    """What a paired re-measurement found: the contenders, their batch sizes, every window."""

    contenders: tuple[str, ...]
    batches: tuple[int, ...]
    windows: tuple[tuple[Metrics, ...], ...]
    #: the content key of what was measured (the contenders' own keys and the settings)
    key: str = ""

    def ratio(self, of: str, over: str, objective: Objective) -> Ratio:
        """``of`` over ``over`` under ``objective``, round by round (see the module doc)."""
        a, b = self.contenders.index(of), self.contenders.index(over)
        ratios = [objective.speedup(row[a], row[b]) for row in self.windows]
        return Ratio(of, over, statistics.median(ratios), min(ratios), max(ratios), len(ratios))

    def to_json(self) -> dict[str, Any]:
        return {
            "contenders": list(self.contenders),
            "batches": list(self.batches),
            "windows": [[dict(m) for m in row] for row in self.windows],
            "key": self.key,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Paired:
        windows = tuple(tuple(dict(m) for m in row) for row in data["windows"])
        return cls(tuple(data["contenders"]), tuple(data["batches"]), windows, data.get("key", ""))


@dataclass(frozen=True)
class Decision:
    """The best after pairing, and its speedup over the baseline as paired windows measured it."""

    best: str
    speedup: Ratio | None
    #: runner-ups' ratios over the best as first selected (above 1: the runner-up won)
    close: tuple[Ratio, ...]
    notes: tuple[str, ...]


def contenders(ranking: Sequence[str], scores: Mapping[str, float], baseline: str | None) -> list[str]:
    """The best, the runners-up whose score is within :data:`CLOSE` of its score (at most
    :data:`RUNNERS_UP`), and the baseline; each once. ``scores`` are gains over a common reference."""
    if not ranking:
        return []
    best = ranking[0]
    chosen = [best]
    for cid in ranking[1 : 1 + RUNNERS_UP]:
        if (1.0 + scores[best]) <= (1.0 + scores[cid]) * (1.0 + CLOSE):
            chosen.append(cid)
    if baseline is not None and baseline not in chosen:
        chosen.append(baseline)
    return chosen


def decide(paired: Paired, first: str, baseline: str | None, objective: Objective, unsettled: set[str]) -> Decision:
    """The best after pairing: the runner-up with the highest median ratio over ``first`` above 1,
    else ``first``; its paired speedup over ``baseline``; notes on close calls and wide ranges."""
    runners_up = [c for c in paired.contenders if c not in (first, baseline)]
    close = tuple(paired.ratio(c, first, objective) for c in runners_up)
    winner = max(close, key=lambda r: r.median, default=None)
    best = winner.of if winner is not None and winner.median > 1.0 else first
    notes = []
    if best != first:
        notes.append(
            f"a close call decided by paired measurement: {best} is {winner.describe()} {first}, "
            "which one sweep each had ranked first"
        )
    speedup = paired.ratio(best, baseline, objective) if baseline is not None and baseline != best else None
    if speedup is not None and (speedup.wide or {best, baseline} & unsettled):
        why = [f"the paired ratios range from {speedup.low:.2f}× to {speedup.high:.2f}×"] if speedup.wide else []
        why += [f"{cid}'s profile did not settle" for cid in (best, baseline) if cid in unsettled]
        notes.append(
            f"the speedup over the baseline, {speedup.median:.2f}×, is uncertain: {'; '.join(why)} "
            "(a busy machine); run again on a quieter one to trust the number"
        )
    return Decision(best, speedup, close, tuple(notes))
