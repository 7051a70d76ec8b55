"""A text-generation run: judge and measure every generation backend of a causal LM, pick the best.

It reuses the single-model run's machinery wherever the work is the same: the package folder
(:class:`~sextant.optimizer.workspace.Workspace`), its lock, the ledger that owns ``status.json``,
the isolated children, build steps (a generator's ``build`` runs as an export step, cached by key),
candidate records and keys, the selection and ``sextant inspect``. What differs is the unit: a
generator instead of a runner, prompts instead of batches, teacher forcing
(:mod:`sextant.generation.judge`) instead of a comparator, and TTFT / ITL / tokens/s points
(:mod:`sextant.generation.measure`) instead of a batch sweep; the reference generator's greedy
continuation (``reference.npz``) is what every other candidate is judged on.

``--budget-s`` as in any run (the reference always runs; a candidate not started once it is spent
is skipped, saying so, and tried by the next run); screening by :mod:`sextant.generation.screen`;
``report.html`` by :mod:`sextant.htmlreport.generation`. Not yet here: option search.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sextant.cache import digest, hash_path, library_versions
from sextant.compare import Tolerance
from sextant.devices import cpu_threads
from sextant.errors import NothingRunnableError, SampleError
from sextant.generation.judge import judge
from sextant.generation.plan import GenerationCandidate, GenerationPlan, make_generation_plan
from sextant.generation.prompts import Prompts, make_prompts
from sextant.generation.screen import rivals, screen_mode, screen_verdict
from sextant.isolation import Isolator, preload_for
from sextant.jobs import GenerationJob
from sextant.messages import ChildEvent, Loaded, Measured, OutputsSaved, Profiled, ProfileOrder
from sextant.options import OptimizeOptions
from sextant.package import Package
from sextant.package.document import RunInfo, Skipped
from sextant.optimizer.budget import Budget
from sextant.optimizer.context import Run, outcome
from sextant.optimizer.events import CandidatePoint, CandidateStarted, Done, EventHandler, Planned
from sextant.optimizer.lock import WorkspaceLock
from sextant.optimizer.seal import open_ledger, previous_status, raise_if_nothing_selected, seal, write_report
from sextant.optimizer.steps import run_step
from sextant.optimizer.workspace import Workspace, workspace_path
from sextant.planner import SOURCE
from sextant.plugins import Catalog
from sextant.records import Cause, CandidateKeys, CandidateRecord, Correctness, Point, Profile, Status, Stop
from sextant.runtime import GeneratorRequest
from sextant.selection import select
from sextant.signature import Signature, TensorSpec
from sextant.specs import SourceModel

TASK = "text-generation"
#: the prompts' signature, for build steps (an export's input names)
SIGNATURE = Signature(
    (TensorSpec("input_ids", "int64", (None, None)), TensorSpec("attention_mask", "int64", (None, None)))
)


def optimize_generation(
    catalog: Catalog,
    source: SourceModel,
    prompts: Any,
    options: OptimizeOptions,
    emit: EventHandler,
    isolator: Isolator,
) -> Package:
    """Run the generation candidates of ``source`` (a format generators consume) and write the
    package, each job in a child of ``isolator``'s fork server."""
    started = time.monotonic()
    budget = Budget(options.budget_s)
    config = options.generation
    plan = make_generation_plan(
        catalog, source.format, devices=options.devices(), precisions=options.precisions, generators=options.runners
    )
    emit(Planned(plan, source))
    reference = plan.reference()
    if reference is None:
        raise NothingRunnableError(
            f"no reference generator for the source format '{source.format}' is available",
            hint="Install the plugin that generates with this framework; `sextant plugins` lists generators.",
        )
    made = make_prompts(prompts, config, source.vocab_size, source.max_positions)
    workspace = Workspace.open(workspace_path(options.workspace, source.name))
    with WorkspaceLock(workspace.path) as lock:
        previous, unreadable = previous_status(workspace, options.fresh)
        written = workspace.write_source(source)
        threads = options.threads or cpu_threads()
        ledger = open_ledger(
            workspace,
            source,
            written.path,
            options,
            threads,
            previous,
            emit,
            lock,
            (unreadable,),
            model={"vocab_size": source.vocab_size, "max_positions": source.max_positions},
            task=TASK,
            generation=config.to_dict(),
        )
        made.save(workspace.inputs)
        made.save(workspace.samples)  # what a build step reads as its samples
        ledger.set(
            prompts={"count": len(made), "lengths": [len(p) for p in made.ids], "given": made.given},
            signature=SIGNATURE,
        )
        preload = preload_for([m for c in plan.candidates for m in c.spec.requires], source.imports)
        isolator.expect(preload, workspace.path / "logs" / "forkserver.log")
        run = Run(
            options,
            workspace,
            ledger,
            isolator,
            threads,
            written,
            SIGNATURE,
            config.max_batch,
            hash_path(workspace.inputs),
            budget,
        )
        try:
            _run_plan(run, plan, reference, made)
        except BaseException:
            _finish(run, plan, time.monotonic() - started, complete=False)
            seal(ledger, workspace)
            raise
        _finish(run, plan, time.monotonic() - started, complete=True)
        workspace.prune([r.artifact for r in ledger.steps.values()] + [r.outputs for r in ledger.candidates.values()])
        write_report(ledger, workspace)
        seal(ledger, workspace)
    raise_if_nothing_selected(ledger, workspace)
    return Package(workspace.path)


def _run_plan(run: Run, plan: GenerationPlan, reference: GenerationCandidate, prompts: Prompts) -> None:
    """The reference first (its continuation is what the others are judged on), then the others,
    those slow to build (``slow_build``: a compile) last."""
    record = evaluate(run, plan, reference, prompts, None)
    if record.status != Status.OK or not run.workspace.reference.exists():
        raise SampleError(
            f"the reference generator {reference.id} could not generate from the prompts: {record.reason}",
            hint=f"See {run.workspace / (record.log or 'logs')}.",
        )
    others = [c for c in plan.candidates if c is not reference]
    for candidate in sorted(others, key=lambda c: c.spec.slow_build):
        evaluate(run, plan, candidate, prompts, run.workspace.reference)
    _note(run)


def _note(run: Run) -> None:
    """What the run left out: candidates not tried for ``--budget-s``, and those screened out."""
    records = [run.ledger.candidates[c] for c in run.ledger.run_candidates]
    untried = [r for r in records if r.cause is Cause.BUDGET]
    if untried:
        run.ledger.note(
            f"the --budget-s of {run.budget.seconds:g} s was spent: {len(untried)} candidates were not tried "
            "(listed as skipped); the selection is among those measured. Run again with a larger --budget-s, "
            "or none, to try them: everything finished is reused"
        )
    screened = sum(r.status == Status.OK and r.screened for r in records)
    if screened:
        run.ledger.note(
            f"{screened} correct candidates were screened out by a short generation at batch 1 (each under "
            f"{run.options.cutoff:.0%} of the best tokens/s measured so far; `sextant inspect` gives their "
            f"estimates); {sum(r.profiled_in_full for r in records)} were measured in full"
        )


def _build(run: Run, plan: GenerationPlan, candidate: GenerationCandidate) -> str | None:
    """Run the candidate's build step (or reuse it); the artifact's path in the package, or ``None``."""
    step_id = candidate.step
    if step_id is None:
        return run.workspace.relative(run.source.path)
    if step_id not in run.ledger.run_steps:
        run_step(run, plan.step(step_id))
    step = run.ledger.steps[step_id]
    return step.artifact if step.status == Status.OK else None


def evaluate(
    run: Run, plan: GenerationPlan, candidate: GenerationCandidate, prompts: Prompts, reference: Path | None
) -> CandidateRecord:
    """Judge and measure one candidate (or reuse what an earlier run recorded); record it."""
    ws, config = run.workspace, run.options.generation
    spec = candidate.spec
    record = CandidateRecord(
        step=candidate.step or SOURCE,
        format=spec.consumes.name,
        runner=spec.name,
        plugin=candidate.plugin,
        device=candidate.device,
        precision=candidate.precision,
        options=dict(candidate.options),
    )
    if reference is not None and run.budget.spent():  # the reference always runs: it judges the others
        skipped = replace(record, status=Status.SKIPPED, reason=run.budget.reason, cause=Cause.BUDGET)
        return _record(run, candidate, skipped)
    artifact = _build(run, plan, candidate)
    if artifact is None:
        step = run.ledger.steps[candidate.step or ""]
        return _record(run, candidate, replace(record, status=Status.SKIPPED, reason=f"{candidate.step} failed: {step.reason}"))
    base = run.source.key if candidate.step is None else run.ledger.steps[candidate.step].key
    outputs_key = digest(
        {
            "artifact": base,
            "generator": spec.name,
            "plugin": candidate.plugin,
            "code": run.code(spec.load),
            "device": candidate.device,
            "precision": candidate.precision,
            "options": candidate.options,
            "threads": run.threads,
            "prompts": run.inputs_key,
            "new_tokens": config.new_tokens,
            "reference": hash_path(reference) if reference is not None else None,
            "libraries": library_versions(spec.requires),
        }
    )
    measured = {k: v for k, v in config.to_dict().items() if k not in ("max_ttft_ms", "max_itl_ms", "min_agreement")}
    keys = CandidateKeys(outputs_key, digest({"outputs": outputs_key, "generation": measured}))
    record = replace(
        record, artifact=artifact, keys=keys, outputs=ws.outputs_file(candidate.id, keys.outputs), log=ws.log(candidate.id)
    )
    judging = _Judging(run, candidate, prompts, reference is None)
    reused = _reuse(run, candidate, record, judging)
    if reused is not None:
        return _record(run, candidate, reused)

    run.ledger.emit(CandidateStarted(candidate.id))
    points: list[Point] = []
    screened: list[Point] = []
    current = {"record": record}

    def handle(message: ChildEvent) -> ProfileOrder | None:
        if isinstance(message, OutputsSaved):
            current["record"] = judging(current["record"], message.path)
            if current["record"].status != Status.PROFILING:
                return ProfileOrder(profile=False)
            mode = screen_mode(run.options.generation_goal()) if run.options.cutoff > 0 else None  # 0: no screen
            return ProfileOrder(True, run.options.cutoff, _rivals(run), mode)
        if isinstance(message, Measured):
            (screened if message.screen else points).append(message.point)
            run.ledger.emit(CandidatePoint(candidate.id, message.point, message.screen))
        elif isinstance(message, Loaded):
            current["record"] = replace(current["record"], load_seconds=round(message.seconds, 3))
        return None

    request = GeneratorRequest(
        artifact=ws / artifact,
        device=candidate.device,
        precision=candidate.precision,
        threads=run.threads,
        options=dict(candidate.options),
        max_batch=config.max_batch,
        max_length=max(len(p) for p in prompts.ids) + config.new_tokens,
    )
    job = GenerationJob(spec.load, request, ws.inputs, reference, ws / record.outputs, config)
    result = run.child(job, candidate.id, handle)
    record = current["record"]
    if record.status == Status.PENDING:
        record = replace(record, **outcome(result))
    elif record.status == Status.PROFILING:
        answer = result.value if result.ok else Profiled()
        kept = screened if answer.stop is Stop.SCREENED else points
        if answer.stop is not None and kept:
            profile = Profile(tuple(kept), answer.threads, answer.stopped, answer.loaded_memory_mb, answer.stop)
            record = replace(record, status=Status.OK, profile=profile, ttft_ms=dict(answer.ttft_ms) or None)
        else:
            failure = outcome(result)
            failure.update(status=Status.FAILED, reason=f"while measuring: {result.reason()}")
            record = replace(record, **failure)
    return _record(run, candidate, replace(record, seconds=round(result.seconds, 3)))


class _Judging:
    """Judges a candidate's saved outputs: the reference's are adopted as ``reference.npz``."""

    def __init__(self, run: Run, candidate: GenerationCandidate, prompts: Prompts, adopt: bool) -> None:
        self.run, self.candidate, self.prompts, self.adopt = run, candidate, prompts, adopt

    def __call__(self, record: CandidateRecord, outputs: Path) -> CandidateRecord:
        opts = self.run.options
        with np.load(outputs) as data:
            got = {k: data[k] for k in data.files}
        if self.adopt:
            with open(self.run.workspace.reference, "wb") as f:
                np.savez(f, **got)
        with np.load(self.run.workspace.reference) as data:
            ref = {k: data[k] for k in data.files}
        tolerance = Tolerance.for_precision(self.candidate.precision, opts.atol, opts.rtol)
        lengths = [len(p) for p in self.prompts.ids]
        verdict: Correctness = judge(ref, got, lengths, tolerance, self.candidate.precision, opts.generation.min_agreement)
        status = Status.PROFILING if verdict.passed else Status.INCORRECT
        reason = None if verdict.passed else f"correctness (teacher forcing): {verdict.summary}"
        return replace(record, status=status, correctness=verdict, reason=reason)


def _reuse(run: Run, candidate: GenerationCandidate, record: CandidateRecord, judging: _Judging) -> CandidateRecord | None:
    """The earlier run's record under the same keys (outputs judged again: the tolerance may have
    changed), or ``None`` when it must run again."""
    old = run.ledger.previous_candidate(candidate.id)
    if old is None or old.keys is None or old.keys.outputs != record.keys.outputs:
        return None
    if old.cause is not None and old.cause.retried:
        return None
    if old.status == Status.FAILED:
        return replace(record, status=Status.FAILED, reason=old.reason, cause=old.cause, cached=True)
    if old.outputs is None or not (run.workspace / old.outputs).exists():
        return None
    judged = replace(judging(record, run.workspace / old.outputs), cached=True)
    if judged.status != Status.PROFILING:
        return judged
    if old.screened and old.keys.profile == record.keys.profile and old.profile is not None:
        # screened out again only against this run's rivals, or measured in full
        mode = screen_mode(run.options.generation_goal())
        point = old.points[0]
        reason = mode and screen_verdict(point, run.options.generation.new_tokens, _rivals(run), run.options.cutoff)
        if not reason:
            return None
        profile = replace(old.profile, stopped=reason)
        return replace(judged, status=Status.OK, profile=profile, load_seconds=old.load_seconds)
    if old.keys.profile != record.keys.profile or not old.points or old.ttft_ms is None:
        return None
    return replace(judged, status=Status.OK, profile=old.profile, ttft_ms=old.ttft_ms, load_seconds=old.load_seconds)


def _rivals(run: Run) -> dict[int, float]:
    """What a screened candidate is compared with: this run's candidates measured in full."""
    return rivals(run.ledger.candidates[c] for c in run.ledger.run_candidates)


def _record(run: Run, candidate: GenerationCandidate, record: CandidateRecord) -> CandidateRecord:
    run.ledger.record_candidate(candidate.id, record)
    return record


def _finish(run: Run, plan: GenerationPlan, seconds: float, *, complete: bool) -> None:
    """Select under the generation objective and write the last status (as the single-model run)."""
    ledger = run.ledger
    planned = [c.id for c in plan.candidates]
    if complete:
        ledger.keep_only([s.id for s in plan.steps if s.id in ledger.steps], planned)
        ledger.set(interrupted=None)
    reference = plan.reference()
    current = {cid: r for cid, r in ledger.candidates.items() if cid in planned}
    selection, ranked = select(current, run.options.generation_goal(), reference.id if reference else None, set(planned))
    ledger.candidates.update(ranked)
    records = [*ledger.steps.values(), *ledger.candidates.values()]
    ledger.set(
        baseline=reference.id if reference else None,
        run=replace(
            ledger.header.run or RunInfo(),
            seconds=round(seconds, 3),
            complete=complete,
            cached=sum(r.cached for r in records),
            ran=sum(not r.cached and r.seconds is not None for r in records),
            planned=len(planned),
            unmeasured=tuple(cid for cid in planned if not ledger.recorded(cid)),
        ),
        skipped=tuple(Skipped(what, reason) for what, reason in plan.skipped),
        reference_only=(),
        selection=selection,
    )
    ledger.emit(Done(ledger.document))
