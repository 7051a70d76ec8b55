"""What a job's child and its parent say to each other while the job runs, typed, and turned to and
from JSON here only: every message crosses a process boundary (the socket to a forked child) as
``(kind, JSON)``, and a replayed job (``python -m sextant.worker``) prints them.

The child of a candidate or generation job says :class:`Loaded`, asks :class:`OutputsSaved` (the
parent judges the outputs and answers with a :class:`ProfileOrder`), reports each
:class:`Measured` point (generating, also each prompt length's :class:`Ttft`) and ends with
:class:`Profiled`. A step's child ends with :class:`Built`, a paired job's with :class:`Windows`.
(:mod:`sextant.jobs` holds what the parent sends first: the job itself.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, Literal

from sextant.records import Point, Stop

#: what a screen is judged on: the better end of the batch range, or batch 1 alone (:mod:`sextant.screening`)
ScreenMode = Literal["throughput", "latency"]


def _plain(value: Any) -> Any:
    """``value`` as JSON: paths as strings, enums as their values, mappings with string keys."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Point):
        return value.to_json()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _Json:
    """``to_json`` and ``from_json`` of the messages below: every field as :func:`_plain` writes it,
    read back as it is, or by the field's entry in ``read``."""

    read: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}

    def to_json(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Any:
        return cls(**{k: cls.read[k](v) if k in cls.read else v for k, v in data.items()})


@dataclass(frozen=True)
class Loaded(_Json):
    """The runner (or generator) is loaded, in ``seconds``; ``fingerprint``: what it runs, where
    it says (:class:`sextant.runtime.Fingerprinted`)."""

    seconds: float
    fingerprint: str | None = None
    kind: ClassVar[str] = "loaded"


@dataclass(frozen=True)
class OutputsSaved(_Json):
    """The outputs are saved to ``path``; the child waits for a :class:`ProfileOrder`."""

    path: Path
    kind: ClassVar[str] = "outputs"
    read: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"path": Path}


@dataclass(frozen=True)
class Measured(_Json):
    """One profile point; ``screen``: of the short screen rather than the full sweep."""

    point: Point
    screen: bool = False
    kind: ClassVar[str] = "point"
    read: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"point": Point.from_json}


@dataclass(frozen=True)
class Ttft(_Json):
    """A generator's time to first token at one prompt length, in milliseconds."""

    length: int
    ms: float
    kind: ClassVar[str] = "ttft"


ChildEvent = Loaded | OutputsSaved | Measured | Ttft
_EVENTS = {c.kind: c for c in (Loaded, OutputsSaved, Measured, Ttft)}


def parse_event(kind: str, data: Mapping[str, Any]) -> ChildEvent:
    """A child's message as the parent receives it (``kind``, its JSON), typed."""
    if kind not in _EVENTS:
        raise ValueError(f"not a message of a sextant job's child: {kind!r}")
    return _EVENTS[kind].from_json(data)


@dataclass(frozen=True)
class ProfileOrder(_Json):
    """The parent's answer once it has judged a candidate's outputs: profile or stop; how to screen
    it first (``screen``: see :mod:`sextant.screening`; ``None``: no screen); and the cut-off share
    of the best rival's throughput (``rivals``: batch size → the best reached at or below it) under
    which a candidate is screened out, or, unscreened, its sweep stops."""

    profile: bool
    cutoff: float = 0.0
    rivals: Mapping[int, float] = field(default_factory=dict)
    screen: ScreenMode | None = None
    read: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"rivals": lambda r: {int(k): float(v) for k, v in r.items()}}


@dataclass(frozen=True)
class Profiled(_Json):
    """How a candidate's (or generator's) child ended: not profiled (``stop`` is ``None``: the
    parent said not to), or profiled until ``stop`` (``stopped``: in words), on ``threads``, with
    its resident memory once loaded and, generating, the time to first token by prompt length."""

    stop: Stop | None = None
    stopped: str | None = None
    threads: int | None = None
    loaded_memory_mb: float | None = None
    ttft_ms: Mapping[str, float] = field(default_factory=dict)
    read: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"stop": lambda s: None if s is None else Stop(s)}


@dataclass(frozen=True)
class Built(_Json):
    """A step's child built ``artifact``; ``canonical`` is its format's fingerprint, when the format
    has one and it could be taken (:class:`sextant.specs.FormatSpec`)."""

    artifact: Path
    canonical: str | None = None
    read: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"artifact": Path}


@dataclass(frozen=True)
class Windows(_Json):
    """A paired job's windows: ``windows[round][contender]``, each ``sextant.pairing.window_metrics``."""

    windows: tuple[tuple[dict[str, float], ...], ...]
    read: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"windows": lambda w: tuple(tuple(row) for row in w)}
