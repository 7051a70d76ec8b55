"""The pipeline workspace's record: ``pipeline.json``, what one composite run found.

Layout of a pipeline workspace::

    pipeline.json              this record (schema below), rewritten atomically
    parts/<module>-<key>/      one sextant package per module and call structure

Every record here is a frozen dataclass with ``to_json`` / ``from_json``; nothing else reads or
writes the file.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from sextant.errors import PackageError

RECORD = "pipeline.json"
SCHEMA = 1


class Serving(str, Enum):
    """What serves a module's structure after the run."""

    OPTIMIZED = "optimized"  # a candidate of its package
    ORIGINAL = "original"  # the original module: nothing passed, or every candidate broke the pipeline


@dataclass(frozen=True)
class Attempt:
    """One candidate tried in the pipeline: did the pipeline's end result still match?"""

    candidate: str
    runner: str
    passed: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"candidate": self.candidate, "runner": self.runner, "passed": self.passed, "detail": self.detail}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Attempt:
        return cls(data["candidate"], data["runner"], bool(data["passed"]), data.get("detail", ""))


@dataclass(frozen=True)
class Timing:
    """Wall times of repeated measurements, in milliseconds; the median and the spread."""

    samples_ms: tuple[float, ...] = ()

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.samples_ms) if self.samples_ms else None

    def spread(self) -> str:
        """``median [min-max] (n)``, or ``-`` when nothing was measured."""
        if not self.samples_ms:
            return "-"
        return f"{self.median_ms:.2f} ms [{min(self.samples_ms):.2f}-{max(self.samples_ms):.2f}] (n={len(self.samples_ms)})"

    def to_json(self) -> dict[str, Any]:
        return {"median_ms": self.median_ms, "samples_ms": list(self.samples_ms)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Timing:
        return cls(tuple(float(x) for x in (data or {}).get("samples_ms", ())))


def speedup(before: Timing, after: Timing) -> float | None:
    if before.median_ms is None or not after.median_ms:
        return None
    return before.median_ms / after.median_ms


@dataclass(frozen=True)
class StructureRecord:
    """One module's calls of one structure: its package, the candidates tried, what serves it.

    ``package`` is relative to the workspace. ``ranking`` is the package's ranking (best first);
    ``attempts`` the candidates tried in the pipeline, in order; ``chosen`` the one that serves
    (``None``: the original module, for ``reason``). Times are per pipeline run, for this module.
    """

    module: str
    key: str
    description: str
    calls: int
    recorded: int
    package: str | None
    serving: Serving
    chosen: str | None = None
    runner: str | None = None
    ranking: tuple[str, ...] = ()
    attempts: tuple[Attempt, ...] = ()
    reason: str = ""
    layout: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "module": self.module,
            "key": self.key,
            "description": self.description,
            "calls": self.calls,
            "recorded": self.recorded,
            "package": self.package,
            "serving": self.serving.value,
            "chosen": self.chosen,
            "runner": self.runner,
            "ranking": list(self.ranking),
            "attempts": [a.to_json() for a in self.attempts],
            "reason": self.reason,
            "layout": dict(self.layout),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StructureRecord:
        return cls(
            module=data["module"],
            key=data["key"],
            description=data.get("description", ""),
            calls=int(data.get("calls", 0)),
            recorded=int(data.get("recorded", 0)),
            package=data.get("package"),
            serving=Serving(data["serving"]),
            chosen=data.get("chosen"),
            runner=data.get("runner"),
            ranking=tuple(data.get("ranking", ())),
            attempts=tuple(Attempt.from_json(a) for a in data.get("attempts", ())),
            reason=data.get("reason", ""),
            layout=data.get("layout", {}),
        )


@dataclass(frozen=True)
class ModuleTiming:
    """Time one pipeline run spends in one module, with the original and with what was chosen."""

    module: str
    original: Timing
    optimized: Timing

    def to_json(self) -> dict[str, Any]:
        return {"module": self.module, "original": self.original.to_json(), "optimized": self.optimized.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModuleTiming:
        return cls(data["module"], Timing.from_json(data.get("original")), Timing.from_json(data.get("optimized")))


@dataclass(frozen=True)
class EndToEnd:
    """The whole pipeline with every choice swapped in, against the original on the same inputs."""

    passed: bool
    detail: str
    original: Timing = field(default_factory=Timing)
    optimized: Timing = field(default_factory=Timing)
    modules: tuple[ModuleTiming, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "detail": self.detail,
            "original": self.original.to_json(),
            "optimized": self.optimized.to_json(),
            "speedup": speedup(self.original, self.optimized),
            "modules": [m.to_json() for m in self.modules],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EndToEnd:
        return cls(
            bool(data["passed"]),
            data.get("detail", ""),
            Timing.from_json(data.get("original")),
            Timing.from_json(data.get("optimized")),
            tuple(ModuleTiming.from_json(m) for m in data.get("modules", ())),
        )


@dataclass(frozen=True)
class CompositeRecord:
    """Everything one ``optimize_pipeline`` run found (``pipeline.json``)."""

    sextant: str
    inputs: int
    structures: tuple[StructureRecord, ...]
    end_to_end: EndToEnd
    notes: tuple[str, ...] = ()

    def modules(self) -> list[str]:
        return sorted({s.module for s in self.structures})

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "sextant": self.sextant,
            "inputs": self.inputs,
            "structures": [s.to_json() for s in self.structures],
            "end_to_end": self.end_to_end.to_json(),
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CompositeRecord:
        if data.get("schema") != SCHEMA:
            raise PackageError(f"{RECORD} has schema {data.get('schema')!r}; this sextant reads schema {SCHEMA}")
        return cls(
            sextant=data.get("sextant", ""),
            inputs=int(data.get("inputs", 0)),
            structures=tuple(StructureRecord.from_json(s) for s in data.get("structures", ())),
            end_to_end=EndToEnd.from_json(data["end_to_end"]),
            notes=tuple(data.get("notes", ())),
        )


def is_composite(folder: Path) -> bool:
    """Whether ``folder`` is a pipeline workspace (it holds ``pipeline.json``)."""
    return (Path(folder) / RECORD).is_file()


def read_record(folder: Path) -> CompositeRecord:
    path = Path(folder) / RECORD
    if not path.is_file():
        raise PackageError(
            f"{folder} is not a pipeline workspace (no {RECORD})",
            hint="Run sextant.optimize_pipeline(...) with this workspace first.",
        )
    try:
        return CompositeRecord.from_json(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, ValueError) as exc:
        raise PackageError(f"{path} cannot be read: {type(exc).__name__}: {exc}") from exc


def write_record(folder: Path, record: CompositeRecord) -> None:
    from sextant.atomic import write_json

    write_json(Path(folder) / RECORD, record.to_json())
