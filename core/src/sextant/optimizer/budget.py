"""``--budget-s``: the whole run's time, and what it leaves untried.

The run spends it in the order of :mod:`sextant.optimizer.schedule`: the reference, profiled first
(always: a run with no budget profiles it later, once faster candidates can screen it), then each
step followed by its candidates with their runners' defaults, a runner's option variants once its
defaults are all measured. Once the budget is spent nothing new
starts: each step or candidate not started is recorded as skipped, saying so, and the selection is
made among those measured. A step already running is not cut short (``--step-timeout`` bounds it).
Nothing skipped this way is cached as a result: the next run, with a larger budget or none, tries
it, and reuses everything finished. A search's budget may cap measurements too (:meth:`Budget.stop`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: seconds, monotonic; a test replaces it
clock: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class Budget:
    """``seconds`` from ``started`` (``clock()`` time), or no limit when ``seconds`` is ``None``;
    at most ``measurements`` measurements (a search's), or no cap when ``None``."""

    seconds: float | None = None
    started: float = field(default_factory=lambda: clock())
    measurements: int | None = None

    def spent(self) -> bool:
        return self.seconds is not None and clock() - self.started >= self.seconds

    def left(self) -> float | None:
        """Seconds left (never below 0), or ``None`` without a limit."""
        return None if self.seconds is None else max(0.0, self.seconds - (clock() - self.started))

    def cap(self, seconds: float | None) -> float | None:
        """``seconds`` (a part's own limit) bounded by what is left."""
        left = self.left()
        if left is None or seconds is None:
            return seconds if left is None else left
        return min(seconds, left)

    def stop(self, measured: int = 0) -> str | None:
        """Why a search that made ``measured`` measurements stops now, or ``None``."""
        if self.measurements is not None and measured >= self.measurements:
            return f"the budget of {self.measurements} measurements ran out"
        if self.spent():
            return f"the time budget of {self.seconds:g} s ran out"
        return None

    @property
    def reason(self) -> str:
        return f"not tried: the run's --budget-s {self.seconds:g} s was spent"
