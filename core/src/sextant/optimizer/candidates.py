"""Evaluating one candidate: its keys, reuse of what was recorded, the isolated run, judging its
outputs against the reference (the comparator, then the user's verify_func), and whether to profile.

The reference (the baseline's outputs, every other candidate judged against them) is
:mod:`sextant.optimizer.reference`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sextant.cache import digest, library_versions
from sextant.compare import Tolerance, Verdict
from sextant.earlystop import sweep_cutoff
from sextant.isolation import ChildResult
from sextant.jobs import CandidateJob
from sextant.messages import ChildEvent, Loaded, Measured, OutputsSaved, Profiled, ProfileOrder
from sextant.optimizer.events import CandidatePoint, CandidateStarted
from sextant.options import OptimizeOptions
from sextant.optimizer.context import Run, outcome
from sextant.optimizer.duplicates import duplicate_candidate, runtime_duplicate, runtime_twin
from sextant.planner import SOURCE, PlannedCandidate
from sextant.records import CandidateKeys, CandidateRecord, Cause, Correctness, Point, Profile, Status, Stop
from sextant.runtime import RunnerRequest
from sextant.samples import Batch, load_batches
from sextant.screening import rival_envelope, screen_mode, screen_verdict

VerifyFunc = Callable[[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]], bool]
Comparator = Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray], Tolerance], Verdict]


@dataclass(frozen=True)
class Judgement:
    """A verdict on a candidate's outputs: ``PROFILING`` when it may go on to be profiled."""

    status: Status
    correctness: Correctness | None = None
    reason: str | None = None
    verified: bool | None = None
    verify_error: str | None = None

    def fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Judge:
    """Compares a candidate's outputs with the reference under its precision's tolerance, then
    asks ``verify`` (the user's verify_func) about those that pass."""

    compare: Comparator
    options: OptimizeOptions
    reference: Sequence[Batch]
    verify: VerifyFunc | None = None

    def __call__(self, candidate: PlannedCandidate, outputs: Sequence[Batch]) -> Judgement:
        opts = self.options
        tolerance = Tolerance.for_precision(candidate.precision, opts.atol, opts.rtol, opts.tolerances)
        if len(outputs) != len(self.reference):
            return Judgement(Status.INCORRECT, reason=f"{len(outputs)} output batches, expected {len(self.reference)}")
        verdict = Verdict.merge([self.compare(r, o, tolerance) for r, o in zip(self.reference, outputs)])
        correctness = Correctness(
            verdict.passed, tuple(verdict.to_dict()["outputs"]), tolerance.atol, tolerance.rtol, verdict.summary()
        )
        if not verdict.passed:
            return Judgement(Status.INCORRECT, correctness, reason=f"correctness: {verdict.summary()}")
        if self.verify is None:
            return Judgement(Status.PROFILING, correctness)
        try:
            accepted = bool(self.verify(list(outputs), list(self.reference)))
        except Exception as exc:  # the user's code: a failure of this candidate, not of the run
            error = f"{type(exc).__name__}: {exc}"
            return Judgement(
                Status.REJECTED, correctness, reason=f"verify_func raised {error}", verified=False, verify_error=error
            )
        if not accepted:
            return Judgement(Status.REJECTED, correctness, reason="rejected by verify_func", verified=False)
        return Judgement(Status.PROFILING, correctness, verified=True)


JudgeFunc = Callable[[PlannedCandidate, Sequence[Batch]], Judgement]


def candidate_keys(run: Run, candidate: PlannedCandidate) -> CandidateKeys:
    """What the candidate's outputs depend on (its artifact, runner and its plugin's source files,
    options, threads, the correctness inputs, library versions), and that plus the profiler's settings.
    A step's artifact counts by its key and its bytes: one built again with other bytes (an
    exporter that is not deterministic, an artifact rebuilt because it changed) is run again."""
    if candidate.step is None:
        artifact = run.source.key
    else:
        step = run.ledger.steps[candidate.step]
        artifact = digest({"key": step.key, "content": step.content})
    outputs = digest(
        {
            "artifact": artifact,
            "runner": candidate.runner.name,
            "plugin": candidate.plugin,
            "code": run.code(candidate.runner.load),
            "device": candidate.device,
            "precision": candidate.precision,
            "options": candidate.options,
            "threads": run.threads,
            "inputs": run.inputs_key,
            "libraries": library_versions(candidate.runner.requires),
        }
    )
    return CandidateKeys(outputs, digest({"outputs": outputs, "profiler": run.profiler.to_dict()}))


def base_record(candidate: PlannedCandidate) -> CandidateRecord:
    """What the plan says about a candidate, before anything ran."""
    return CandidateRecord(
        step=candidate.step or SOURCE,
        format=candidate.format.name,
        runner=candidate.runner.name,
        plugin=candidate.plugin,
        device=candidate.device,
        precision=candidate.precision,
        options=dict(candidate.options),
    )


def evaluate(
    run: Run, candidate: PlannedCandidate, judge: JudgeFunc, *, profile: bool = True, reuse: bool = True
) -> CandidateRecord:
    """Check and profile one candidate (or, when ``reuse``, reuse what an earlier run recorded);
    record the result. With ``profile`` false a correct candidate is recorded ``ok`` with no
    profile (the reference's first pass: :func:`~sextant.optimizer.reference.run_reference`), or
    with the profile an earlier run recorded for the same keys."""
    ws, ledger = run.workspace, run.ledger
    record = base_record(candidate)
    if run.budget.spent():
        return _record(
            run, candidate, replace(record, status=Status.SKIPPED, reason=run.budget.reason, cause=Cause.BUDGET)
        )
    if candidate.step is not None:
        step = ledger.steps.get(candidate.step)
        if step is not None and step.status == Status.DUPLICATE and step.duplicate_of is not None:
            duplicate = duplicate_candidate(run, candidate, step, record)
            if duplicate is not None:
                return _record(run, candidate, duplicate)
            step = ledger.steps[step.duplicate_of]  # measured on the original's bytes
        if step is None or step.status != Status.OK or step.artifact is None:
            return _record(
                run, candidate, replace(record, status=Status.SKIPPED, reason=f"{candidate.step} did not succeed")
            )
        artifact = step.artifact
    else:
        artifact = ws.relative(run.source.path)
    keys = candidate_keys(run, candidate)
    record = replace(
        record,
        artifact=artifact,
        keys=keys,
        outputs=ws.outputs_file(candidate.id, keys.outputs),
        log=ws.log(candidate.id),
    )
    reused = _reuse(run, candidate, record, judge, profile) if reuse else None
    if reused is not None:
        return _record(run, candidate, reused)
    unaffordable = _build_over_budget(run, candidate)
    if unaffordable:
        return _record(run, candidate, replace(record, status=Status.SKIPPED, reason=unaffordable, cause=Cause.BUDGET))

    ledger.emit(CandidateStarted(candidate.id))
    points: list[Point] = []
    screened: list[Point] = []
    current = {"record": record}  # the judgement arrives while the child waits for it

    def handle(message: ChildEvent) -> ProfileOrder | None:
        if isinstance(message, OutputsSaved):
            judgement = judge(candidate, load_batches(message.path))
            current["record"] = replace(current["record"], **judgement.fields())
            if judgement.status != Status.PROFILING:
                return ProfileOrder(profile=False)
            twin = runtime_twin(run, candidate, current["record"].fingerprint)
            if twin is not None:
                current["record"] = runtime_duplicate(run, current["record"], twin)
                return ProfileOrder(profile=False)
            if not profile:
                current["record"] = replace(current["record"], status=Status.OK)
                return ProfileOrder(profile=False)
            cutoff = sweep_cutoff(run.objective, run.options.cutoff)  # 0 where a throughput bound cannot judge
            return ProfileOrder(True, cutoff, rivals(run), screen_mode(run.objective))
        if isinstance(message, Measured):
            (screened if message.screen else points).append(message.point)
            ledger.emit(CandidatePoint(candidate.id, message.point, message.screen))
        elif isinstance(message, Loaded):
            loaded = {"load_seconds": round(message.seconds, 3), "fingerprint": message.fingerprint}
            current["record"] = replace(current["record"], **loaded)
        return None

    request = runner_request(run, artifact, candidate.device, candidate.precision, candidate.options)
    job = CandidateJob(candidate.runner.load, request, ws.inputs, ws / record.outputs, run.profiler)
    result = run.child(job, candidate.id, handle)
    return _record(run, candidate, _ended(current["record"], result, points, screened, run.threads))


def skip(run: Run, candidate: PlannedCandidate, reason: str) -> CandidateRecord:
    """Record a candidate a rule chose not to build or run (``skipped``, with the rule's ``reason``);
    a later run decides again."""
    return _record(run, candidate, replace(base_record(candidate), status=Status.SKIPPED, reason=reason))


def runner_request(run: Run, artifact: str, device: str, precision: str, options: Mapping[str, Any]) -> RunnerRequest:
    """What a candidate's runner loads: its artifact (relative to the workspace) on the run's threads."""
    return RunnerRequest(
        artifact=run.workspace / artifact,
        signature=run.signature,
        device=device,
        precision=precision,
        threads=run.threads,
        options=dict(options),
    )


def _build_over_budget(run: Run, candidate: PlannedCandidate) -> str | None:
    """Why a slow-to-build candidate is not started under ``--budget-s``: its last build (recorded
    by an earlier run) took longer than what is left."""
    left = run.budget.left()
    old = run.ledger.previous_candidate(candidate.id)
    last = old.load_seconds if old is not None else None
    if candidate.runner.slow_build and left is not None and last and last > left:
        return (
            f"not tried: its build took {last:.1f} s last time, more than the {left:.1f} s "
            f"left of the run's --budget-s {run.budget.seconds:g} s"
        )
    return None


def _ended(
    record: CandidateRecord,
    result: ChildResult,
    points: list[Point],
    screened: list[Point],
    threads: int,
) -> CandidateRecord:
    """The record once the child ended: how far it got decides what its end means. A candidate
    screened out is correct (``ok``) with its screen points as its profile, which says so. Points
    are kept in batch order (a sparse sweep measures them out of order)."""
    points = sorted(points, key=lambda p: p.batch)
    profile = Profile(tuple(points), threads) if points else None
    if record.status == Status.PENDING:  # it never reached the verdict: the child's failure is the story
        record = replace(record, **outcome(result), profile=profile)
    elif record.status == Status.PROFILING:
        answer = result.value if result.ok else Profiled()
        kept = screened if answer.stop is Stop.SCREENED else points
        if answer.stop is not None and kept:
            profile = Profile(tuple(kept), answer.threads, answer.stopped, answer.loaded_memory_mb, answer.stop)
            record = replace(record, status=Status.OK, profile=profile)
        else:
            failure = outcome(result)
            failure.update(status=Status.FAILED, reason=f"while profiling: {result.reason()}")
            record = replace(record, **failure, profile=profile)
    return replace(record, seconds=round(result.seconds, 3))


def _reuse(
    run: Run, candidate: PlannedCandidate, record: CandidateRecord, judge: JudgeFunc, profile: bool
) -> CandidateRecord | None:
    """The record rebuilt from an earlier run with the same keys (outputs re-judged: the reference
    or the tolerance may have changed), or ``None`` when it must run again. Not to ``profile``, a
    correct one keeps its earlier profile when it was a full one, and is left without one when not."""
    old = run.ledger.previous_candidate(candidate.id)
    if old is None or old.keys != record.keys or (old.cause is not None and old.cause.retried):
        return None
    if old.status == Status.FAILED:
        return replace(record, status=Status.FAILED, reason=old.reason, cause=old.cause, cached=True)
    if old.outputs is None or not (run.workspace / old.outputs).exists():
        return None
    judgement = judge(candidate, load_batches(run.workspace / old.outputs))
    record = replace(record, **judgement.fields(), cached=True, fingerprint=old.fingerprint)
    if judgement.status != Status.PROFILING:
        return record
    twin = runtime_twin(run, candidate, old.fingerprint) if old.status == Status.DUPLICATE else None
    if twin is not None:  # its twin is measured again in this run, or reused: still nothing to profile
        return replace(runtime_duplicate(run, record, twin), load_seconds=old.load_seconds)
    if not profile:
        return replace(record, status=Status.OK, **({"profile": old.profile} if old.profiled_in_full else {}))
    if not old.points:
        return None
    profile = old.profile
    if old.screened:  # screened out again only against this run's rivals, or measured again
        mode = screen_mode(run.objective)
        reason = mode and screen_verdict(list(old.points), rivals(run), run.options.cutoff, mode)
        if not reason:
            return None
        profile = replace(old.profile, stopped=reason)
    return replace(record, status=Status.OK, profile=profile, load_seconds=old.load_seconds)


def rivals(run: Run) -> dict[int, float]:
    """The envelope of what this run's fully profiled, competing candidates reached
    (:func:`rival_envelope`): screen points are never rivals, nor is a reference that cannot be selected,
    nor a point that misses the objective's constraints (a latency budget, ...)."""
    ids = [cid for cid in run.ledger.run_candidates if cid not in run.reference_only]  # not stale ones either
    records = [run.ledger.candidates[cid] for cid in ids]
    feasible = run.objective.feasible
    profiles = ([p for p in r.points if feasible(p)] for r in records if r.profiled_in_full)
    return rival_envelope(profiles, run.profiler.batch_sizes())


def _record(run: Run, candidate: PlannedCandidate, record: CandidateRecord) -> CandidateRecord:
    run.ledger.record_candidate(candidate.id, record)
    return record
