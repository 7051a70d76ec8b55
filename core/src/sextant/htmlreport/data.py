"""What a report shows, read once from a package's ``status.json`` into typed rows and series.

Everything the page, the plots and the CSV files say comes from :func:`read_run`, so they cannot
disagree. A package written by an earlier sextant may lack parts (the CPU model, the run's timing,
memory per point, a correctness summary): those are ``None`` here and the page says "not recorded".
Nothing here imports a plotting library; ``sextant analyze`` reuses :class:`Series` (and
:class:`sextant.records.Point`, labelled) for its own measurements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sextant.devices import busy_reason
from sextant.objective import Objective
from sextant.package.document import Host, ModelInfo, RunDocument, RunInfo, SearchSummary, Skipped
from sextant.records import PROFILE_KEYS, CandidateRecord, Point, Status, StepRecord

#: the statuses that mean something went wrong (skipped and duplicate ones are listed apart)
PROBLEMS = (Status.FAILED, Status.INCORRECT, Status.REJECTED, Status.PENDING, Status.PROFILING)


#: a point with the name of what it measured (a candidate, a configuration)
Labelled = tuple[str, Point]

#: the columns of a profile point, in CSV order (``candidate`` first, ``stages_ms`` spread out)
POINT_FIELDS = tuple(k for k in PROFILE_KEYS if k not in ("stages_ms", "remeasured"))


@dataclass(frozen=True)
class OutputError:
    """How one output of one candidate compared with the reference."""

    candidate: str
    output: str
    passed: bool
    max_abs_error: float | None
    max_rel_error: float | None
    atol: float | None
    rtol: float | None
    atol_needed: float | None
    mismatched: int | None
    elements: int | None
    problem: str | None


@dataclass(frozen=True)
class Candidate:
    """One row of the candidate table: the record plus where it stands in the selection."""

    id: str
    record: CandidateRecord
    rank: int | None  # 1 = the best; None when it did not compete
    best: bool
    baseline: bool
    reference_only: bool
    errors: tuple[OutputError, ...]

    @property
    def status(self) -> Status:
        return self.record.status

    @property
    def state(self) -> str:
        """Its status in a word, ``screened`` for one correct but screened out (it never competed)."""
        return "screened" if self.record.status == Status.OK and self.record.screened else str(self.record.status)

    @property
    def points(self) -> tuple[Point, ...]:
        return self.record.points

    @property
    def best_point(self) -> Point | None:
        return self.record.best_point

    @property
    def max_abs_error(self) -> float | None:
        values = [e.max_abs_error for e in self.errors if e.max_abs_error is not None]
        return max(values) if values else None

    @property
    def max_rel_error(self) -> float | None:
        values = [e.max_rel_error for e in self.errors if e.max_rel_error is not None]
        return max(values) if values else None

    @property
    def stopped(self) -> str | None:
        return self.record.profile.stopped if self.record.profile else None


@dataclass(frozen=True)
class Problem:
    """A step or candidate that failed, gave wrong answers, was rejected, or never finished."""

    kind: str  # "step" or "candidate"
    id: str
    status: Status
    cause: str | None
    reason: str
    log_tail: str
    log: str | None  # relative to the package
    traceback: str | None


@dataclass(frozen=True)
class RunReport:
    """Everything one optimize run recorded, as the report shows it."""

    model: str
    model_format: str | None
    model_source: str | None
    sextant_version: str | None
    host: Host
    run: RunInfo
    goal: Objective | None  # None: the run stopped before it selected
    best: str | None
    baseline: str | None
    no_selection_reason: str | None
    candidates: tuple[Candidate, ...]
    steps: Mapping[str, StepRecord]
    problems: tuple[Problem, ...]
    skipped: tuple[Skipped, ...]
    searches: Mapping[str, SearchSummary]  # by the candidate each search started from
    notes: tuple[str, ...]
    correctness_batches: tuple[int, ...] | None
    plugins: Mapping[str, str] = field(default_factory=dict)  # distribution → version
    interrupted: str | None = None
    #: why the results are partial (:attr:`sextant.package.RunDocument.incomplete`); ``None``: finished
    incomplete: str | None = None
    #: why the timings may not be trusted (:func:`sextant.devices.busy_reason`); ``None``: not busy
    busy: str | None = None
    #: the best's speedup over the baseline measured in paired rounds (:mod:`sextant.pairing`), in words
    paired_speedup: str | None = None
    #: the best for small batches (``latency``) and large ones (``throughput``) when they differ
    regimes: Mapping[str, str] = field(default_factory=dict)
    #: the candidates measured first because they won on similar models here (:mod:`sextant.history`)
    history_first: tuple[str, ...] = ()
    #: ``text-generation`` for a generation run (its page is :mod:`sextant.htmlreport.generation`'s)
    task: str | None = None
    #: a generation run's settings (:class:`sextant.generation.config.GenerationConfig` as a dict)
    generation: Mapping[str, Any] | None = None
    #: a generation run's prompts: count, lengths, given
    prompts: Mapping[str, Any] | None = None

    @property
    def generates(self) -> bool:
        return self.task == "text-generation"

    @property
    def best_candidate(self) -> Candidate | None:
        return next((c for c in self.candidates if c.best), None)

    @property
    def baseline_candidate(self) -> Candidate | None:
        return next((c for c in self.candidates if c.baseline), None)

    @property
    def points(self) -> tuple[Labelled, ...]:
        """Every candidate's points, each with its candidate's id."""
        return tuple((c.id, p) for c in self.candidates for p in c.points)

    @property
    def stage_names(self) -> tuple[str, ...]:
        """Every stage any runner timed, in the order first seen."""
        names: dict[str, None] = {}
        for _, point in self.points:
            for name in point.stages_ms or {}:
                names[name] = None
        return tuple(names)


def read_run(status: RunDocument | Mapping[str, Any]) -> RunReport:
    """A package's ``status.json`` (schema 1, any version of sextant that wrote it) as a report."""
    document = status if isinstance(status, RunDocument) else RunDocument.from_json(status)
    selection = document.selection
    ranking = list(selection.ranking) if selection else []
    best = document.best
    baseline = document.baseline or (selection.baseline if selection else None)
    reference_only = set(document.reference_only or ())
    steps = dict(document.steps)
    candidates = []
    for cid, record in document.candidates.items():
        candidates.append(
            Candidate(
                id=cid,
                record=record,
                rank=ranking.index(cid) + 1 if cid in ranking else None,
                best=cid == best,
                baseline=cid == baseline,
                reference_only=cid in reference_only,
                errors=_errors(cid, record),
            )
        )
    host = document.host or Host()
    model = document.model or ModelInfo()
    paired = selection.paired_speedup if selection else None
    return RunReport(
        model=model.name,
        model_format=model.format,
        model_source=model.source,
        sextant_version=document.sextant,
        host=host,
        run=document.run or RunInfo(),
        goal=selection.objective if selection else None,
        best=best,
        baseline=baseline,
        no_selection_reason=None if best else (selection and selection.reason) or "the run did not finish selecting",
        candidates=tuple(candidates),
        steps=steps,
        problems=_problems(steps, {c.id: c.record for c in candidates}),
        skipped=_skipped(document.skipped or (), steps, {c.id: c.record for c in candidates}),
        searches=dict(document.search or {}),
        notes=document.notes,
        correctness_batches=document.correctness_batches,
        paired_speedup=paired.describe() if paired else None,
        plugins=_plugins([*steps.values(), *(c.record for c in candidates)]),
        interrupted=document.interrupted,
        incomplete=document.incomplete,
        busy=busy_reason(host.load_1min, host.cores),
        regimes=dict((selection.regimes if selection else None) or {}),
        history_first=document.history.first if document.history else (),
        task=document.task,
        generation=document.generation,
        prompts=document.prompts,
    )


def _errors(cid: str, record: CandidateRecord) -> tuple[OutputError, ...]:
    if record.correctness is None:
        return ()
    return tuple(
        OutputError(
            candidate=cid,
            output=str(o.get("name", "?")),
            passed=bool(o.get("passed", record.correctness.passed)),
            max_abs_error=o.get("max_abs_error"),
            max_rel_error=o.get("max_rel_error"),
            atol=o.get("atol", record.correctness.atol),
            rtol=o.get("rtol", record.correctness.rtol),
            atol_needed=o.get("atol_needed"),
            mismatched=o.get("mismatched"),
            elements=o.get("elements"),
            problem=o.get("problem"),
        )
        for o in record.correctness.outputs
    )


def _problems(steps: Mapping[str, StepRecord], candidates: Mapping[str, CandidateRecord]) -> tuple[Problem, ...]:
    out = []
    for kind, records in (("step", steps), ("candidate", candidates)):
        for rid, r in records.items():
            if r.status in PROBLEMS:
                reason = r.reason or _default_reason(r)
                cause = str(r.cause) if r.cause else None
                out.append(Problem(kind, rid, r.status, cause, reason, r.log_tail, r.log, r.traceback))
    return tuple(out)


def _default_reason(record: StepRecord | CandidateRecord) -> str:
    if record.status in (Status.PENDING, Status.PROFILING):
        return "the run stopped before this finished"
    if isinstance(record, CandidateRecord) and record.correctness is not None and record.correctness.summary:
        return record.correctness.summary
    return "no reason recorded"


def _skipped(
    planned: Sequence[Skipped], steps: Mapping[str, StepRecord], candidates: Mapping[str, CandidateRecord]
) -> tuple[Skipped, ...]:
    out = list(planned)
    for records in (steps, candidates):
        for rid, r in records.items():
            if r.status in (Status.SKIPPED, Status.DUPLICATE):
                out.append(Skipped(rid, r.reason or str(r.status)))
    return tuple(out)


def _plugins(records: Sequence[StepRecord | CandidateRecord]) -> dict[str, str]:
    """Distribution → version, from the ``"sextant-torch 0.1.0"`` each record names."""
    out: dict[str, str] = {}
    for r in records:
        name, _, version = r.plugin.partition(" ")
        if name:
            out[name] = version or "?"
    return dict(sorted(out.items()))


# -- series, for plots ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One named line or set of markers: what a plot draws for one candidate (or configuration)."""

    name: str
    x: tuple[float, ...]
    y: tuple[float | None, ...]
    text: tuple[str, ...] = ()  # one hover line per point
    hollow: tuple[bool, ...] = ()  # per point: drawn hollow (e.g. an unstable measurement)
    #: points not joined by a line: they are no sweep (a screened-out candidate's two short measurements)
    markers_only: bool = False


def series_vs_batch(candidates: Sequence[Candidate], metric: str) -> list[Series]:
    """For each candidate with points: ``metric`` against batch size (``None`` where not recorded)."""
    out = []
    for c in candidates:
        if not c.points:
            continue
        out.append(
            Series(
                name=c.id,
                x=tuple(p.batch for p in c.points),
                y=tuple(getattr(p, metric) for p in c.points),
                text=tuple(_point_text(p) for p in c.points),
                hollow=tuple(p.stable is False for p in c.points),
                markers_only=c.record.screened,
            )
        )
    return out


def _point_text(p: Point) -> str:
    parts = [f"batch {p.batch}", f"{p.throughput:,.0f}/s", f"p50 {p.p50_ms:.3f} ms", f"p99 {p.p99_ms:.3f} ms"]
    if p.memory_mb is not None:
        parts.append(f"peak {p.memory_mb:,.0f} MB")
    if p.stable is False:
        spread = f" (windows {p.window_spread:.0%} apart)" if p.window_spread is not None else ""
        parts.append(f"unstable{spread}")
    return ", ".join(parts)


def front(points: Sequence[Point]) -> list[Point]:
    """The throughput/p99 trade-off front: the points no other point beats on both (ascending p99)."""
    out: list[Point] = []
    for p in sorted(points, key=lambda p: (p.p99_ms, -p.throughput)):
        if not out or p.throughput > out[-1].throughput:
            out.append(p)
    return out
