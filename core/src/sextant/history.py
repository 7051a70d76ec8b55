"""This machine's memory of what won: the likely winner measured first, and slow builds that can pay.

After each finished run :meth:`History.learn` records which candidate won and which came within the
screen's margin of it (:data:`CLOSE`: at least ``--cutoff`` of the winner under the objective, and
never less than 0.7), with a coarse :class:`Descriptor` of the model: its source format, a size
bucket (the source's bytes, a proxy for its parameter count), its inputs' dtypes and shapes. A
candidate's id names its chain, runner, precision, options and device, never the model, so the same
id on another model is the same choice.

A new run asks :meth:`History.scores`: each candidate id's weight over the past runs of the same
objective, by how similar their model was (the same descriptor 3; the same format and size bucket,
or the same format and input kinds 2; the same format 1; another format 0), a win counting twice a
close finish. The pipeline measures the best-scored candidates first (so the screen cuts from the
second candidate on) and builds a slow-to-build one only when it scored (see
:mod:`sextant.optimizer.learned`).

The file lives in sextant's cache folder, one per machine: the CPU's model and the versions of the
libraries the installed runners need (:func:`history_path`). It keeps the last :data:`KEEP` runs
and is written atomically. A file that cannot be read is set aside (``*.unreadable``) with a note,
and the run goes on as on a fresh machine; ``--no-history`` neither reads nor writes it, nor does
any run while the environment says ``SEXTANT_HISTORY=off`` (:func:`disabled`: CI, or a test suite,
whose runs must not depend on what ran before them).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sextant.atomic import write_json
from sextant.cache import cache_dir, digest

SCHEMA = 1
KEEP = 200  # runs kept per machine, newest last
ENVIRONMENT = "SEXTANT_HISTORY"
CLOSE = 0.7  # a candidate this share of the winner (or --cutoff, when higher) came close
WIN, NEAR = 2.0, 1.0  # what a win and a close finish weigh


@dataclass(frozen=True)
class Descriptor:
    """A model, coarsely: what makes a past winner likely to win again."""

    format: str
    size: str  # the source's bytes as a power of ten: ``1e5``
    inputs: tuple[str, ...]  # ``name:dtype[d1,d2]`` without the batch axis, sorted
    kinds: tuple[str, ...]  # ``dtype/rank``, sorted: the inputs, names and sizes left out

    @classmethod
    def of(
        cls, source_format: str, source_bytes: int, inputs: Iterable[tuple[str, str, Sequence[int | None]]]
    ) -> Descriptor:
        """From the source's format and size and its inputs' ``(name, dtype, shape without batch)``."""
        listed = sorted(inputs)
        return cls(
            source_format,
            f"1e{round(math.log10(max(source_bytes, 1)))}",
            tuple(f"{n}:{d}[{','.join('?' if s is None else str(s) for s in shape)}]" for n, d, shape in listed),
            tuple(sorted(f"{d}/{len(shape)}" for _, d, shape in listed)),
        )

    def similarity(self, other: Descriptor) -> int:
        """3: the same model kind; 2: the same format and size or input kinds; 1: the same format; 0."""
        if self.format != other.format:
            return 0
        if self == other:
            return 3
        return 2 if self.size == other.size or self.kinds == other.kinds else 1

    def to_json(self) -> dict[str, Any]:
        return {"format": self.format, "size": self.size, "inputs": list(self.inputs), "kinds": list(self.kinds)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Descriptor:
        return cls(str(data["format"]), str(data["size"]), tuple(data["inputs"]), tuple(data["kinds"]))


@dataclass(frozen=True)
class Outcome:
    """One finished run: the model, the objective, the winner and those that came close."""

    model: Descriptor
    objective: str
    won: str
    close: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model.to_json(), "objective": self.objective, "won": self.won, "close": list(self.close)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Outcome:
        return cls(Descriptor.from_json(data["model"]), str(data["objective"]), str(data["won"]), tuple(data["close"]))


@dataclass(frozen=True)
class History:
    """The outcomes recorded on this machine (oldest first), and where they are kept."""

    path: Path
    outcomes: tuple[Outcome, ...] = ()
    #: why the file was set aside when it could not be read (a note for the run)
    note: str | None = field(default=None, compare=False)

    @classmethod
    def open(cls, path: Path) -> History:
        """The history at ``path``: empty when there is none, set aside with a note when unreadable."""
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("schema") != SCHEMA:
                raise ValueError(f"schema {data.get('schema')!r}, expected {SCHEMA}")
            return cls(path, tuple(Outcome.from_json(o) for o in data["runs"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            kept = path.with_name(f"{path.name}.unreadable")
            try:
                path.replace(kept)
            except OSError:
                kept = path
            return cls(
                path,
                note=f"this machine's history ({path}) could not be read ({type(exc).__name__}: {exc}); it was set "
                f"aside as {kept.name} and the candidates are measured in the plan's order; this run starts a new one",
            )

    def similar(self, model: Descriptor, objective: str) -> int:
        """How many recorded runs of ``objective`` were on models like ``model``."""
        return sum(o.objective == objective and o.model.similarity(model) > 0 for o in self.outcomes)

    def scores(self, model: Descriptor, objective: str) -> dict[str, float]:
        """Each candidate id's weight from past runs of ``objective`` on models like ``model`` (see module doc)."""
        out: dict[str, float] = {}
        for outcome in self.outcomes:
            similar = outcome.model.similarity(model) if outcome.objective == objective else 0
            if not similar:
                continue
            out[outcome.won] = out.get(outcome.won, 0.0) + WIN * similar
            for cid in outcome.close:
                out[cid] = out.get(cid, 0.0) + NEAR * similar
        return out

    def learn(self, outcome: Outcome) -> History:
        """The history with ``outcome`` added, written (atomically; the oldest beyond :data:`KEEP` dropped)."""
        outcomes = (*self.outcomes, outcome)[-KEEP:]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, {"schema": SCHEMA, "runs": [o.to_json() for o in outcomes]})
        return History(self.path, outcomes)


def disabled() -> bool:
    """Whether the environment turns the history off for every run (``SEXTANT_HISTORY=off``, or 0)."""
    return os.environ.get(ENVIRONMENT, "").strip().lower() in ("off", "0", "no", "false")


def history_path(cpu: str, libraries: Mapping[str, str], root: Path | None = None) -> Path:
    """The file of this machine: one per CPU model and set of library versions."""
    key = digest({"cpu": cpu, "libraries": dict(sorted(libraries.items()))})[:16]
    return (root or cache_dir()) / "history" / f"{key}.json"


def close_to(ratios: Mapping[str, float], cutoff: float) -> tuple[str, ...]:
    """The ids whose ratio to the winner (under the objective, winner 1.0) is within the margin."""
    bar = max(cutoff, CLOSE)
    return tuple(cid for cid, ratio in ratios.items() if ratio >= bar)
