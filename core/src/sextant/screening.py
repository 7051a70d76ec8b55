"""Screening: a short look at each candidate before its full sweep, so that only candidates that
can still win are profiled in full.

Candidates are evaluated one after another (each in its own child, which holds the loaded runner),
so this is a race against the best measured so far rather than rounds of halving. A candidate that
passed correctness is first measured briefly (:func:`screen_config`: a short warm-up, two short
windows, no stability required) at the ends of its batch range: the smallest batch size and the
largest under the throughput objective, the smallest alone under the latency objective. Its
*estimate* is the better throughput of those. When the estimate is under ``cutoff`` (0.7 by
default) of the best throughput a fully profiled rival reached, the candidate is screened out
(unless, under the throughput objective, it is faster at batch 1 than every rival so far: it may be
the latency regime's pick, :func:`sextant.selection.regime_picks`, which only a swept candidate can
be): it is recorded as ``screened`` with its screen points and the estimate in words, and it is never
selected. Every other candidate is swept, and its sweep stops early only when it is nowhere within
the paired margin of the best so far and even an optimistic bound on its remaining batch sizes is
under 91 % (or the cut-off share, when higher) of the best so far at each of them
(:mod:`sextant.earlystop`; the screen's point at the largest batch size counts in that bound). The
current best is never stopped: the winner's profile is always a full one.

A screened-out candidate could only have been picked by a full sweep if its best batch size beat
both ends of its range by more than ``1 / cutoff`` (1.43× by default), or if load slowed its short
screen by as much; ``core/tests/test_screening.py`` checks, with candidates of known speeds on a
scripted clock, that screening never changes the pick.

Objectives with constraints (a latency budget, a minimum throughput, a memory budget), the memory
objective and custom weights are not screened: a throughput estimate says nothing about them. Under
constraints the sweeps still stop early, against the rivals' points that meet them; under the memory
objective and custom weights they do not (:func:`sextant.earlystop.cannot_judge`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sextant.earlystop import stop_reason
from sextant.messages import ProfileOrder, ScreenMode
from sextant.profiler import Clock, Point, ProfilerConfig, SweepEnd, measure, sweep
from sextant.records import SCREENED_WORDS, Stop

if TYPE_CHECKING:
    from sextant.memory import MemorySource
    from sextant.objective import Objective


def screen_mode(objective: Objective) -> ScreenMode | None:
    """How candidates are screened under ``objective``; ``None``: they are not."""
    constrained = any(v is not None for v in (objective.max_p99_ms, objective.min_throughput, objective.max_memory_mb))
    if constrained:
        return None
    if dict(objective.weights) == {"throughput": 1.0}:
        return "throughput"
    if dict(objective.weights) == {"p50_ms": 1.0} and objective.batch == 1:
        return "latency"
    return None


def screen_config(config: ProfilerConfig) -> ProfilerConfig:
    """The profiler's settings for a screen: a warm-up of 0.02 s, two windows of 0.03 s, each of
    at least one call, at most half a second per batch size, nothing measured again. Fast calls fill
    the windows; a call that outlasts them (a large model at the largest batch size, a second or
    more) is timed once or twice after one warm-up call (none at a size the correctness inputs have
    just run at: :func:`profile_candidate`'s ``warm``): the screen's margin (30 % by default) is far
    wider than the noise of a call that long. (It took two warm-up calls and windows of two.)"""
    return replace(
        config,
        warmup_s=min(config.warmup_s, 0.02),
        warmup_calls=1,
        window_s=min(config.window_s, 0.03),
        min_calls=1,
        stable_windows=2,
        batch_budget_s=min(config.batch_budget_s, 0.5),
        remeasure=0,
    )


def screen_batches(config: ProfilerConfig, mode: ScreenMode) -> list[int]:
    """The batch sizes a screen measures; none when the full sweep has two sizes or fewer (then
    the screen would cost as much as the sweep)."""
    sizes = config.batch_sizes()
    if len(sizes) <= 2:
        return []
    return [sizes[0]] if mode == "latency" else [sizes[0], sizes[-1]]


def screen_verdict(points: list[Point], rivals: Mapping[int, float], cutoff: float, mode: ScreenMode) -> str | None:
    """Why a candidate with these screen points is screened out, or ``None`` when it may still win.

    ``rivals`` maps each batch size to the best throughput fully profiled rivals reached at or
    below it (:func:`sextant.optimizer.candidates.rivals`)."""
    if not points or not rivals or cutoff <= 0:
        return None
    if mode == "latency":
        first = points[0]
        best = rivals.get(first.batch)
        if best and first.throughput < cutoff * best:
            return (
                f"{SCREENED_WORDS}: {first.throughput:.0f}/s at batch {first.batch} "
                f"is under {cutoff:.0%} of the best so far there, {best:.0f}/s"
            )
        return None
    single = [p for p in points if p.batch == 1]
    if single and single[0].throughput > rivals.get(1, 0.0):
        return None  # faster at batch 1 than every rival so far: it may be the latency regime's pick
    estimate = max(p.throughput for p in points)
    best = max(rivals.values())
    if estimate < cutoff * best:
        ends = ", ".join(f"batch {p.batch}: {p.throughput:.0f}/s" for p in points)
        return f"{SCREENED_WORDS}: estimate {estimate:.0f}/s ({ends}) is under {cutoff:.0%} of the best so far, {best:.0f}/s"
    return None


def rival_envelope(profiles: Iterable[Iterable[Point]], batch_sizes: Iterable[int]) -> dict[int, float]:
    """The best throughput the rivals' points (one iterable per rival) reached at
    or below each batch size: a batch of b can always be served as smaller batches, so what a rival
    reached at b' <= b it can reach at b."""
    best: dict[int, float] = {}
    for points in profiles:
        for point in points:
            best[point.batch] = max(best.get(point.batch, 0.0), point.throughput)
    envelope, running = {}, 0.0
    for batch in batch_sizes:
        running = max(running, best.get(batch, 0.0))
        if running:
            envelope[batch] = running
    return envelope


def profile_candidate(
    make_infer: Callable[[int], Callable[[], Any]],
    config: ProfilerConfig,
    order: ProfileOrder,
    report: Callable[[Point], None],
    report_screen: Callable[[Point], None],
    stages: Callable[[], Mapping[str, float]] | None = None,
    *,
    memory: MemorySource | None = None,
    clock: Clock = time.perf_counter_ns,
    synchronize: Callable[[], None] | None = None,
    warm: Callable[[int], bool] = lambda size: False,
) -> SweepEnd:
    """Screen the candidate (when ``order.screen`` says how and there are rivals to screen it
    against), then sweep it unless it was screened out, stopping early by
    :func:`sextant.earlystop.stop_reason`: what a candidate's child runs once its outputs passed.
    Screen points go to ``report_screen``, the sweep's to ``report``; ``synchronize`` (a GPU
    runner's) precedes every reading of ``clock``; a batch size ``warm`` says this runner has just
    run (the correctness inputs', in the same shapes) is screened without a warm-up."""
    timing: dict[str, Any] = {"memory": memory, "clock": clock, "synchronize": synchronize}
    screened: dict[int, float] = {}
    if order.screen is not None and order.rivals:  # nothing to screen against: the first candidate is swept
        short = screen_config(config)
        points = []
        for batch in screen_batches(config, order.screen):
            settings = replace(short, warmup_calls=0) if warm(batch) else short
            point = measure(make_infer(batch), batch, settings, stages, **timing)
            report_screen(point)
            points.append(point)
        reason = screen_verdict(points, order.rivals, order.cutoff, order.screen)
        if reason:
            return SweepEnd(reason, Stop.SCREENED)
        screened = {p.batch: p.throughput for p in points}
    measured: list[Point] = []  # as reported: after any measurement again (``sweep``)
    sizes = config.batch_sizes()

    def reported(point: Point) -> None:
        measured.append(point)
        report(point)

    def keep_going(point: Point) -> str | None:
        done = {p.batch for p in measured}
        remaining = [b for b in sizes if b not in done]
        return stop_reason(measured, remaining, order.rivals, order.cutoff, screened)

    return sweep(make_infer, config, reported, keep_going, stages, **timing)
