"""Before a gain is claimed: the best configurations re-measured interleaved with the default.

A search measures each point once, at its own time. On a shared machine a burst of load during one
measurement makes that point look worse, and the next one look better: a quick search once called
concurrency 114 "56 % better" after probes of the same configuration that ranged from 3,272 to
5,927 infer/s. So once the search and the top sweeps are done, the contenders (the best point of a
configuration other than the default; the runner-up configuration when its gain is within
:data:`CLOSE` of the best's; the default configuration at its best load) are measured again in
:data:`ROUNDS` rounds, one fresh measurement each per round (A B A B), the order rotating from round
to round, so load that comes and goes falls on all of them alike. These measurements are not stored:
they are windows of one comparison, not points of the space.

Each round gives a contender's speedup over the default under the objective
(:class:`sextant.api.Paired`); a gain is claimed only when the lowest of them is above 1 (it beat the
default in every round: the gain exceeds the measurement's own spread) and the medians of its
rounds meet the constraints. Of those, the highest median wins. Otherwise the summary says "no
better than the default within the noise" and ``best/`` holds the default configuration.

Every re-measurement counts against ``--max-measurements``; the rounds that do not fit are not run,
and fewer than two complete rounds confirm nothing (the summary says the gain was not re-measured).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sextant.api import Objective, ranked

from sextant_triton.analyze.space import Coordinates, Space
from sextant_triton.analyze.store import Record

if TYPE_CHECKING:
    from sextant.api import Budget, Paired, Ratio

    from sextant_triton.analyze.explore import Session

#: rounds of re-measurement (each: one measurement per contender)
ROUNDS = 3
#: a runner-up configuration whose gain is within this share of the best's is re-measured too
CLOSE = 0.10
#: why a default that met no constraint is not re-measured (no gain over it is claimed)
INFEASIBLE = "the default configuration met the constraints at no load measured"
#: the default configuration's id among the contenders
DEFAULT = "default"


@dataclass(frozen=True)
class Confirmation:
    """What the re-measurement found (or why there was none)."""

    default: tuple[Coordinates, Record] | None  # the default configuration at its best load
    contenders: tuple[tuple[Coordinates, Record], ...] = ()  # as the search ranked them, best first
    paired: Paired | None = None  # ids: "0", "1", ... for the contenders, DEFAULT for the default
    chosen: int | None = None  # the contender whose gain exceeds the spread, or None
    not_measured: str | None = None  # why nothing was re-measured

    def ratio(self, objective: Objective, index: int | None = None) -> Ratio | None:
        """Contender ``index`` (default: the chosen one, else the search's best) over the default."""
        if self.paired is None:
            return None
        i = self.chosen if index is None and self.chosen is not None else index or 0
        return self.paired.ratio(str(i), DEFAULT, objective)

    def to_json(self, objective: Objective) -> dict[str, Any]:
        ratio = self.ratio(objective)
        return {
            "rounds": len(self.paired.windows) if self.paired else 0,
            "contenders": [p for p, _ in self.contenders],
            "claimed": self.chosen is not None,
            "ratio": ratio.to_json() if ratio else None,
            "not_measured": self.not_measured,
        }


def config_of(space: Space, point: Coordinates) -> str:
    """A point's configuration in words, without its load (``default`` for the default one)."""
    return space.describe({k: v for k, v in point.items() if k not in ("concurrency", "request_rate")})


def default_best(
    space: Space, history: Sequence[tuple[Coordinates, Record]], objective: Objective, baseline: Record | None
) -> tuple[Coordinates, Record] | None:
    """The default configuration at its best load (it may have been swept over concurrency too):
    the one definition of "the default" that the summary, ``analysis.json`` and the report use."""
    defaults = [(p, r) for p, r in history if config_of(space, p) == "default"]
    order = ranked(defaults, objective, baseline)
    return order[0] if order else None


def contenders(
    space: Space, history: Sequence[tuple[Coordinates, Record]], objective: Objective, baseline: Record | None
) -> list[tuple[Coordinates, Record]]:
    """The best feasible point of a configuration other than the default, and the runner-up
    configuration's best when its gain is within :data:`CLOSE` of it."""
    out: list[tuple[Coordinates, Record]] = []
    configs: set[str] = set()
    base = default_best(space, history, objective, baseline)
    reference = base[1].metrics if base else None
    for point, record in ranked(history, objective, baseline):
        metrics = record.metrics or {}
        config = config_of(space, point)
        if not objective.feasible(metrics) or config == "default" or config in configs:
            continue
        if out and reference:
            first = 1.0 + objective.gain(out[0][1].metrics or {}, reference)
            if first > (1.0 + objective.gain(metrics, reference)) * (1.0 + CLOSE):
                break
        out.append((point, record))
        configs.add(config)
        if len(out) == 2:
            break
    return out


def confirm(
    session: Session,
    space: Space,
    objective: Objective,
    history: Sequence[tuple[Coordinates, Record]],
    baseline: Record | None,
    budget: Budget,
    rounds: int = ROUNDS,
) -> Confirmation:
    """Re-measure the contenders with the default, interleaved (see the module's docstring)."""
    from sextant.api import Paired

    base = default_best(space, history, objective, baseline)
    top = contenders(space, history, objective, baseline)
    if base is None:
        return Confirmation(None, tuple(top), not_measured="the default configuration has no successful measurement")
    best = ranked(history, objective, baseline)
    if not objective.feasible(base[1].metrics or {}):
        return Confirmation(base, tuple(top), not_measured=INFEASIBLE)
    if not top or (best and config_of(space, best[0][0]) == "default"):
        return Confirmation(base, tuple(top), not_measured="the default configuration is the best")
    if rounds < 2:
        return Confirmation(base, tuple(top), not_measured="paired rounds are turned off")
    points = [p for p, _ in top] + [base[0]]
    ids = [str(i) for i in range(len(top))] + [DEFAULT]
    windows: list[tuple[dict[str, float], ...]] = []
    for r in range(rounds):
        if budget.stop(session.counters.measured + len(points) - 1):  # a round that would not fit is not started
            break
        row: list[dict[str, float] | None] = [None] * len(points)
        for step in range(len(points)):
            i = (r + step) % len(points)
            row[i] = session.remeasure(points[i])
            if row[i] is None:
                break
        if any(m is None for m in row):
            break
        windows.append(tuple(m for m in row if m is not None))
    if len(windows) < 2:
        why = session.give_up() or ("" if budget.measurements is None else "a round would not fit in the budget")
        why = why or "a re-measurement failed"
        done = f"only {len(windows)} paired round done: " if windows else ""
        return Confirmation(base, tuple(top), not_measured=done + why)
    paired = Paired(tuple(ids), tuple(1 for _ in ids), tuple(windows))
    chosen = None
    for i in range(len(top)):
        ratio = paired.ratio(str(i), DEFAULT, objective)
        if ratio.low > 1.0 and objective.feasible(_medians([row[i] for row in windows])):
            if chosen is None or ratio.median > paired.ratio(str(chosen), DEFAULT, objective).median:
                chosen = i
    return Confirmation(base, tuple(top), paired, chosen)


def _medians(windows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    keys = set.intersection(*(set(w) for w in windows))
    return {k: statistics.median(w[k] for w in windows) for k in keys}
