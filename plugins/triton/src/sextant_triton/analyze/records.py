"""What an analysis found, as :mod:`.job` hands it on: each searched group's measurements
(:class:`GroupResult`), the best of it as the summary states it (:class:`Best`), and the whole
:class:`Analysis` that :mod:`.outputs` writes and :mod:`.report` draws."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sextant_triton.analyze.confirm import Confirmation
from sextant_triton.analyze.space import Coordinates, Space
from sextant_triton.analyze.store import Record


@dataclass(frozen=True)
class GroupResult:
    """One searched group of units (one unit, or several analyzed concurrently)."""

    space: Space
    key: str
    history: tuple[tuple[Coordinates, Record], ...]  # every measurement of the group, oldest first
    baseline: Record | None
    stopped: str
    #: the default at its best load, and the best re-measured interleaved with it (:mod:`.confirm`)
    confirmation: Confirmation | None = None


@dataclass(frozen=True)
class Best:
    """A group's best measurement (``None`` where none met the constraints: then ``closest``)."""

    point: Coordinates | None
    record: Record | None
    closest: tuple[Coordinates, Record] | None
    gain: float | None  # over the default configuration, by the objective
    summary: str


@dataclass(frozen=True)
class Analysis:
    output: Path
    groups: tuple[GroupResult, ...]
    best: tuple[Best, ...]
    measured: int
    reused: int
    events: tuple[str, ...]
    files: tuple[Path, ...]

    @property
    def summary(self) -> str:
        return "\n".join(b.summary for b in self.best)
