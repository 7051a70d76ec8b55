"""Early stop: a candidate's batch-size sweep ends as soon as it cannot reach the best so far.

The rivals' envelope ``R(b)`` (:func:`sextant.screening.rival_envelope`) is the best throughput a
fully profiled rival reached at or below batch size ``b``; ``c`` is the run's ``--cutoff`` (the
screen's margin: within ``1 - c`` of the best, 30 % by default). After the candidate measured batch
sizes ``b_1 < ... < b_k`` (``k >= 3``, :data:`MIN_POINTS`; a sparse sweep measures them out of
order), with mean latencies ``L_j`` (ms) and throughputs ``T_j``, its sweep stops when both hold:

1. It is nowhere the best so far nor a close runner-up: ``T_j * (1 + CLOSE) < R(b_j)`` at every
   measured ``b_j`` (``CLOSE``: the paired re-measurement's 10 %, :mod:`sextant.pairing`). The
   current best, at any batch size, is never stopped, nor one the paired re-measurement might
   still pick: the winner's profile stays complete.
2. At every batch size ``b`` of the sweep it has not measured, even an optimistic bound could not
   come that close either: ``U(b) < s * R(b)``, with ``s = max(c, 1 / (1 + CLOSE))`` (91 % by
   default), ``b_i`` the largest measured batch size under ``b`` (``b_k`` in a sweep in order) and

       U(b) = max(1000 * b / (L_i + (b - b_i) * m), S(b))
       m    = max(0, min over j of (L_j - L_{j-1}) / (b_j - b_{j-1}))

   that is, latency grows linearly in the batch from the point below, by the smallest growth per
   added sample measured so far (0 when latency did not grow: throughput then grows in proportion
   to the batch). ``S(b)`` is the screen's own measurement at ``b`` when it took one (the largest
   batch size, :mod:`sextant.screening`), so a candidate whose screen point there is within reach
   of the best is never stopped on the way there.

So a sweep goes on only while the candidate could still win or be paired. The screen's wider
margin (``c``) is for the screen's own two short readings, taken before any sweep; a sweep's points
are settled ones (:mod:`sextant.profiler`), so within the paired margin is what counts there (the
share was ``c`` until issue 27's encoder showed five candidates at 75-86 % of the best swept in full,
21 s of a 68 s run). A ``--cutoff`` above 91 % stops by its own share.

The bound is optimistic as long as adding a sample to a batch never costs less time than the
cheapest added sample measured so far; a runner that switches to a much faster kernel only at large
batches can break it, which the screen's point at the largest batch size covers. So can a runtime
that uses its cores better as the batch grows, which is why ``m`` is taken over two intervals at
least (three points): on the zoo's SegFormer, OpenVINO added 0.035 ms a sample from batch 1 to 4
and about 0.016 ms from 4 to 64, and a stop after batches 1 and 4 cut the candidate that was the
best of all at 64 (44,937/s), bounded there at 25,000/s. With ``c = 0``
(``--cutoff 0``) or no rival yet nothing stops. The stop is recorded as ``Stop.CUTOFF``, in words
beginning with ``CUTOFF_WORDS`` that give the closest miss (:func:`stop_reason`).

The rule bounds throughput, so it judges only objectives decided by throughput (:func:`cannot_judge`):
the throughput objective, and the latency one (the lowest p50 at batch 1), whose batch-1 point is
measured before any stop (a candidate within 10 % of the best there is never stopped). Under a
constraint (a latency budget, a minimum throughput, a memory budget) ``R`` counts only the rivals'
points that meet it (:func:`sextant.optimizer.candidates.rivals`), while ``U`` still bounds every
point of the candidate, so the bound stays optimistic. Under any other objective (the memory one,
custom weights) a candidate that "cannot win" on throughput may still win, so nothing is stopped
(:func:`sweep_cutoff` is 0) and the run says so in a note.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from sextant.pairing import CLOSE
from sextant.profiler import Point
from sextant.records import CUTOFF_WORDS

if TYPE_CHECKING:
    from sextant.objective import Objective

#: the fewest measured points a sweep stops after: ``m`` is the smallest of two growths at least
MIN_POINTS = 3


def cannot_judge(objective: Objective) -> str | None:
    """Why the early stop cannot judge sweeps under ``objective`` (it then stops none), or ``None``
    when it can (module doc)."""
    weights = dict(objective.weights)
    if weights == {"throughput": 1.0} or (weights == {"p50_ms": 1.0} and objective.batch == 1):
        return None
    judged = ", ".join(f"{metric} {weight:g}" for metric, weight in weights.items())
    return f"the {objective.name} objective ({judged}) is not decided by throughput, the only thing the stop bounds"


def sweep_cutoff(objective: Objective, cutoff: float) -> float:
    """The cut-off a candidate's sweep stops by under ``objective``: ``cutoff`` (``--cutoff``)
    where the stop can judge the objective, else 0 (never stop)."""
    return cutoff if cannot_judge(objective) is None else 0.0


def reach(cutoff: float) -> float:
    """``s``: the share of the best so far that a sweep's remaining batch sizes must be able to
    reach for it to go on, under the cut-off ``cutoff`` (module doc, rule 2)."""
    return max(cutoff, 1.0 / (1.0 + CLOSE))


def growth_per_sample(points: Sequence[Point]) -> float:
    """``m``: the smallest growth of mean latency per added sample between consecutive points, in
    ms, never below 0."""
    slopes = [(b.mean_ms - a.mean_ms) / (b.batch - a.batch) for a, b in zip(points, points[1:])]
    return max(0.0, min(slopes, default=0.0))


def upper_bound(points: Sequence[Point], batch: int, screen: Mapping[int, float] | None = None) -> float:
    """``U(batch)``: the most throughput the candidate could reach at an unmeasured ``batch``, from
    its ``points`` in batch order (see the module doc); infinite with no point under ``batch``."""
    below = [p for p in points if p.batch < batch]
    if not below:
        return float("inf")
    last = below[-1]
    latency = last.mean_ms + (batch - last.batch) * growth_per_sample(points)
    extrapolated = 1000.0 * batch / latency if latency > 0 else float("inf")
    return max(extrapolated, (screen or {}).get(batch, 0.0))


def stop_reason(
    points: Sequence[Point],
    remaining: Sequence[int],
    rivals: Mapping[int, float],
    cutoff: float,
    screen: Mapping[int, float] | None = None,
) -> str | None:
    """Why the sweep of a candidate that measured ``points`` stops before the batch sizes
    ``remaining``, or ``None`` while it may still reach the best so far (module doc)."""
    if cutoff <= 0 or len(points) < MIN_POINTS or not remaining:
        return None
    points = sorted(points, key=lambda p: p.batch)
    for point in points:
        best = rivals.get(point.batch)
        if not best or point.throughput * (1 + CLOSE) >= best:
            return None  # it leads here, or nearly: never stopped
    share = reach(cutoff)
    closest: tuple[float, int, float, float] | None = None  # (share of the best, batch, bound, best)
    for batch in remaining:
        best = rivals.get(batch)
        if not best:
            return None
        bound = upper_bound(points, batch, screen)
        if bound >= share * best:
            return None
        if closest is None or bound / best > closest[0]:
            closest = (bound / best, batch, bound, best)
    assert closest is not None
    _, batch, bound, best = closest
    last = [p for p in points if p.batch < batch][-1]
    return (
        f"{CUTOFF_WORDS} ({last.throughput:.0f}/s at batch {last.batch}; at most {bound:.0f}/s at batch {batch}, "
        f"adding {growth_per_sample(points):.3g} ms per sample, under {share:.0%} of the best so far there, "
        f"{best:.0f}/s)"
    )
