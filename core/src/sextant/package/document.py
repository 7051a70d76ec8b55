"""``status.json`` as one typed document: the run's header, its steps and its candidates.

:class:`RunDocument` is the only reader and writer of the file's content: the run's ledger
(:mod:`sextant.optimizer.ledger`) holds one and writes ``to_json()``; every reader (``Package``, the
tables, the HTML report, the pipelines) takes ``from_json(...)`` of what it read. Header entries
this version does not know are kept as read (``extra``) and written back unchanged.

Schema 1 is what every sextant so far wrote; its older shapes read too (a selection that recorded
only its objective's name, a host with threads and devices only, no ``run`` record).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import TYPE_CHECKING, Any

from sextant.records import CandidateRecord, StepRecord
from sextant.selection import Selection
from sextant.signature import Signature

if TYPE_CHECKING:
    from sextant.pairing import Paired  # numpy: imported when a document has paired windows

SCHEMA_VERSION = 1
STATUS = "status.json"
TEXT_GENERATION = "text-generation"


@dataclass(frozen=True)
class ModelInfo:
    """The source model: its name, format and where the package keeps it."""

    name: str = "model"
    format: str | None = None
    source: str | None = None  # relative to the package
    vocab_size: int | None = None  # text generation only
    max_positions: int | None = None  # text generation only


@dataclass(frozen=True)
class Host:
    """The machine the run measured on (``sextant.devices.host_record``); ``None`` where not recorded."""

    threads: int | None = None
    devices: tuple[str, ...] = ()
    machine: str | None = None
    cpu: str | None = None
    cores: int | None = None
    python: str | None = None
    load_1min: float | None = None
    gpu: str | None = None  # recorded on CUDA machines only

    def to_json(self) -> dict[str, Any]:
        out = {f.name: _to_json(getattr(self, f.name)) for f in fields(self)}
        return out if self.gpu is not None else {k: v for k, v in out.items() if k != "gpu"}


@dataclass(frozen=True)
class RunInfo:
    """When the run started, how long it took, how much it reused, and what it did not measure."""

    started: str | None = None
    seconds: float | None = None
    complete: bool | None = None  # None: a run that never got to its end, or one from before this was recorded
    cached: int | None = None
    ran: int | None = None
    planned: int | None = None
    unmeasured: tuple[str, ...] | None = None  # planned candidates this run did not get to


@dataclass(frozen=True)
class Skipped:
    """Something the plan did not try, and why."""

    what: str
    reason: str


@dataclass(frozen=True)
class HistoryUse:
    """The order came from this machine's history (:mod:`sextant.history`): what was measured first,
    from how many earlier runs, kept where."""

    first: tuple[str, ...] = ()
    runs: int | None = None
    file: str | None = None


@dataclass(frozen=True)
class SearchSummary:
    """One runner's option search: the strategy, what it found, and why it stopped."""

    strategy: str = "?"
    best_options: Mapping[str, Any] | None = None
    gain_over_defaults: float | None = None  # 0.12: 12 % better than the defaults under the objective
    measured: int | None = None
    configurations: int | None = None
    stopped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {f.name: _to_json(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True)
class RunDocument:
    """Everything one run recorded, in ``status.json``'s order (header, then steps and candidates).

    Entries are ``None`` where the run has not recorded them (yet): the selection appears when the
    run selects, at its end or when it stops."""

    schema: int = SCHEMA_VERSION
    sextant: str | None = None  # the version that wrote it
    task: str | None = None  # ``text-generation``, or None for a model's forward pass
    model: ModelInfo | None = None
    options: Mapping[str, Any] | None = None  # ``OptimizeOptions.to_record()``
    generation: Mapping[str, Any] | None = None  # a text-generation run's settings
    host: Host | None = None
    run: RunInfo | None = None
    notes: tuple[str, ...] = ()
    prompts: Mapping[str, Any] | None = None  # a text-generation run's prompts
    signature: Signature | None = None
    correctness_batches: tuple[int, ...] | None = None
    baseline: str | None = None
    search: Mapping[str, SearchSummary] | None = None  # by the candidate each search started from
    history: HistoryUse | None = None  # the candidates measured first because they won here before
    paired: Paired | None = None
    interrupted: str | None = None  # the stage a stopped run was in
    skipped: tuple[Skipped, ...] | None = None
    reference_only: tuple[str, ...] | None = None
    selection: Selection | None = None
    #: header entries this version does not know, kept as read
    extra: Mapping[str, Any] = field(default_factory=dict)
    steps: Mapping[str, StepRecord] = field(default_factory=dict)
    candidates: Mapping[str, CandidateRecord] = field(default_factory=dict)

    @property
    def best(self) -> str | None:
        """The selected candidate's id (``None``: nothing selected, or the run did not select)."""
        return self.selection.best if self.selection is not None else None

    @property
    def generates(self) -> bool:
        """Whether the run was a text-generation run (its candidates load as generators)."""
        return self.task == TEXT_GENERATION

    @property
    def incomplete(self) -> str | None:
        """Why the results are partial (the run was interrupted, or stopped by an error), with how
        many planned candidates it did not measure; ``None`` when the run finished. A package from
        before ``run.complete`` was recorded counts as finished."""
        run = self.run or RunInfo()
        if run.started is not None and self.selection is None:  # it never got to select, not even at a stop
            return (
                "the run stopped before it finished (it was killed, or it is still running). "
                "Run the same command again to resume."
            )
        if run.complete is not False:
            return None
        where = self.interrupted
        text = f"the run was interrupted during {where}" if where else "the run did not finish"
        if run.unmeasured is not None and run.planned is not None:
            text += f": {len(run.unmeasured)} of {run.planned} planned candidates were not measured"
        if self.best is not None:
            text += "; the selection is only among those measured before it stopped"
        return text + ". Run the same command again to resume."

    def updated(self, **entries: Any) -> RunDocument:
        """A copy with these header entries set, each typed or as JSON (``None``: not recorded)."""
        known = {k: _parse(k, v) for k, v in entries.items() if k in _PARSERS}
        unknown = {k: v for k, v in entries.items() if k not in _PARSERS}
        return replace(self, **known, extra={**self.extra, **unknown}) if unknown else replace(self, **known)

    def header_json(self) -> dict[str, Any]:
        """The header as written (entries not recorded are left out; ``notes`` always)."""
        records = ("extra", "steps", "candidates")
        values = ((f.name, getattr(self, f.name)) for f in fields(self) if f.name not in records)
        return {**{k: _to_json(v) for k, v in values if v is not None}, **self.extra}

    def to_json(self) -> dict[str, Any]:
        """``status.json``'s content."""
        return {
            **self.header_json(),
            "steps": {k: r.to_json() for k, r in self.steps.items()},
            "candidates": {k: r.to_json() for k, r in self.candidates.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, dropped: list[str] | None = None) -> RunDocument:
        """Read ``status.json``'s content. A record that does not parse raises ``ValueError``; with
        ``dropped`` it is left out instead and its id appended there (an earlier run's record is
        redone, not trusted)."""
        header = {k: v for k, v in data.items() if k not in ("steps", "candidates")}
        return cls().updated(**header).with_records(
            _records(data.get("steps") or {}, StepRecord.from_json, dropped),
            _records(data.get("candidates") or {}, CandidateRecord.from_json, dropped),
        )

    def with_records(
        self, steps: Mapping[str, StepRecord], candidates: Mapping[str, CandidateRecord]
    ) -> RunDocument:
        return replace(self, steps=dict(steps), candidates=dict(candidates))


def _record(kind: type) -> Callable[[Any], Any]:
    """A parser of one of the records above from its JSON (lists as tuples; an unknown key is left out)."""

    def parse(value: Any) -> Any:
        if isinstance(value, kind):
            return value
        names = {f.name for f in fields(kind)}
        return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items() if k in names})

    return parse


def _paired(value: Any) -> Paired:
    from sextant.pairing import Paired

    return value if isinstance(value, Paired) else Paired.from_json(value)


#: header entry → how its JSON (or an already typed value) becomes the field's type
_PARSERS: dict[str, Callable[[Any], Any]] = {
    "schema": lambda value: value,
    "sextant": lambda value: value,
    "task": lambda value: value,
    "model": _record(ModelInfo),
    "options": dict,
    "generation": dict,
    "host": _record(Host),
    "run": _record(RunInfo),
    "notes": lambda value: tuple(str(n) for n in value),
    "prompts": dict,
    "signature": lambda value: value if isinstance(value, Signature) else Signature.from_dict(value),
    "correctness_batches": tuple,
    "baseline": lambda value: value,
    "search": lambda value: {k: _record(SearchSummary)(v) for k, v in value.items()},
    "history": _record(HistoryUse),
    "paired": _paired,
    "interrupted": lambda value: value,
    "skipped": lambda value: tuple(_record(Skipped)(s) for s in value),
    "reference_only": tuple,
    "selection": lambda value: value if isinstance(value, Selection) else Selection.from_json(value),
}


def _parse(key: str, value: Any) -> Any:
    if value is None:
        return () if key == "notes" else None
    return _PARSERS[key](value)


def _to_json(value: Any) -> Any:
    """A typed value as JSON: a record's fields in order, leaving out those not recorded."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, Signature):
        return value.to_dict()
    if is_dataclass(value):
        return {f.name: _to_json(v) for f in fields(value) if (v := getattr(value, f.name)) is not None}
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def _records(
    records: Mapping[str, Any], parse: Callable[[Mapping[str, Any]], Any], dropped: list[str] | None
) -> dict[str, Any]:
    if dropped is None:
        return {key: parse(data) for key, data in records.items()}
    out = {}
    for key, data in records.items():
        try:
            out[key] = parse(data)
        except (KeyError, TypeError, ValueError, AttributeError):
            dropped.append(key)
    return out
