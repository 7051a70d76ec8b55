"""Running one export or conversion step: its key, reuse of a recorded result, the isolated run,
and recognising a step whose artifact is another's, byte for byte or in its format's canonical form
(a no-op conversion, a second exporter of the same graph; see
:mod:`sextant.optimizer.duplicates`)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from sextant.cache import digest, hash_path, library_versions
from sextant.devices import device_identity
from sextant.jobs import StepJob
from sextant.optimizer.context import Run, outcome
from sextant.optimizer.duplicates import duplicate_step, original_input, same_content, sameness, still_duplicate
from sextant.optimizer.events import StepStarted
from sextant.planner import SOURCE, PlannedStep
from sextant.records import Cause, Status, StepRecord
from sextant.runtime import StepRequest


def step_key(run: Run, step: PlannedStep) -> str:
    """Everything the step's artifact depends on."""
    parent = run.source.key if step.parent is None else run.ledger.steps[step.parent].key
    return digest(
        {
            "parent": parent,
            "step": step.spec.name,
            "plugin": step.plugin,
            "run": step.spec.run,
            "code": run.code(step.spec.run),
            "options": dict(step.spec.options),
            "signature": run.signature.to_dict(),
            "max_batch": run.max_batch,
            "libraries": library_versions(step.spec.requires),
            "device": device_identity(step.device),
        }
    )


def run_step(run: Run, step: PlannedStep, skipped: str | None = None) -> StepRecord:
    """Build the step's artifact (or reuse the recorded one); record and return how it ended.
    ``skipped``: a rule's reason not to build it (recorded as ``skipped``; a later run decides again)."""
    ws, ledger = run.workspace, run.ledger
    record = StepRecord(
        kind=step.kind,
        spec=step.spec.name,
        plugin=step.plugin,
        parent=step.parent or SOURCE,
        format=step.format.name,
        precision=step.precision,
        device=step.device,
        key=step_key(run, step),
    )
    if run.budget.spent():
        return _record(
            run, step.id, replace(record, status=Status.SKIPPED, reason=run.budget.reason, cause=Cause.BUDGET)
        )
    if skipped is not None:
        return _record(run, step.id, replace(record, status=Status.SKIPPED, reason=skipped))
    if not _parent_ok(run, step):
        return _record(run, step.id, replace(record, status=Status.SKIPPED, reason=f"{step.parent} did not succeed"))
    old = ledger.previous_step(step.id)
    out_dir = ws.artifact_dir(step.id, record.key)
    if (
        old is not None
        and old.key == record.key
        and not (old.cause and old.cause.retried)
        and (old.status != Status.OK or _intact(run, step.id, old, out_dir))
        and (old.status != Status.DUPLICATE or still_duplicate(run, old))
    ):
        return _record(run, step.id, replace(old, cached=True))
    duplicate = duplicate_step(run, step, record)
    if duplicate is not None:
        return _record(run, step.id, duplicate)
    shutil.rmtree(out_dir, ignore_errors=True)
    parent = original_input(run, step) or step.parent  # a duplicate's original has its bytes
    source = run.source.path if parent is None else ws / ledger.steps[parent].artifact
    request = StepRequest(
        input=source,
        output_dir=out_dir,
        signature=run.signature,
        samples=ws.samples,
        device=step.device,
        max_batch=run.max_batch,
        options=dict(step.spec.options),
    )
    ledger.emit(StepStarted(step.id))
    result = run.child(StepJob(step.spec.run, request, run.canonical_hashes.get(step.format.name)), step.id)
    record = replace(record, **outcome(result), log=ws.log(step.id))
    if not result.ok:
        shutil.rmtree(out_dir, ignore_errors=True)  # half an artifact is no use, and may fill a disk
    else:
        built = result.value
        record = replace(
            record,
            artifact=ws.relative(built.artifact),
            content=hash_path(out_dir),
            canonical=built.canonical,
        )
        twin = same_content(run, step.id, record)
        if twin:
            shutil.rmtree(out_dir, ignore_errors=True)
            record = replace(
                record, status=Status.DUPLICATE, reason=sameness(run, twin, record), artifact=None, duplicate_of=twin
            )
    return _record(run, step.id, record)


def _intact(run: Run, step_id: str, old: StepRecord, out_dir: Path) -> bool:
    """Whether a recorded artifact is still what the step built: its folder hashes to the
    ``content`` status.json recorded. One that changed (edited by hand, half overwritten) is never
    reused, and the run says so: it is built again, and the manifest records the new one."""
    if old.artifact is None or not (run.workspace / old.artifact).exists():
        return False
    if old.content is not None and hash_path(out_dir) == old.content:
        return True
    run.ledger.note(
        f"{step_id}: its artifact {old.artifact} changed since the step built it (its files no longer "
        "match the hash status.json recorded for them); it is built again"
    )
    return False


def _parent_ok(run: Run, step: PlannedStep) -> bool:
    if step.parent is None:
        return True
    parent = run.ledger.steps.get(step.parent)
    return parent is not None and (parent.status == Status.OK or original_input(run, step) is not None)


def _record(run: Run, step_id: str, record: StepRecord) -> StepRecord:
    run.ledger.record_step(step_id, record)
    return record
