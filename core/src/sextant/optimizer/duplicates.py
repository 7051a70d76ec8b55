"""Duplicates: what is built or measured once, however many chains reach it.

Two chains often write the same artifact: two exporters of one framework that produce the same
graph, a rewrite (onnxslim) that finds nothing to change. A step's artifact is hashed when it is
built (``StepRecord.content``); when it has the same bytes and format as the artifact of an earlier
step of the run, the step is a duplicate of that one (status ``duplicate``, ``duplicate_of`` the
first step, its own copy deleted), and so is everything that would have run on it:

- a step that reads a duplicate is the same step on the original's artifact; when the run built
  that one (``original+name``) it is a duplicate of it, not built; otherwise it is built from
  the original's artifact;
- a candidate on a duplicate is the candidate with the same runner, options, device and precision
  on the original; when that one was recorded by this run it is recorded as a duplicate of it
  ("same as <id>, measured in its place"), not measured, and never selected (it is not ``ok``);
  otherwise it is measured on the original's artifact.

``duplicate_of`` always names an original (a step that is ``ok``, a candidate that ran), never
another duplicate. A re-run reuses a duplicate step only while its original is still ``ok`` with
the same bytes; its candidates are then duplicates again, measuring nothing.
"""

from __future__ import annotations

from dataclasses import replace

from sextant.optimizer.context import Run
from sextant.planner import PlannedCandidate, PlannedStep
from sextant.records import CandidateRecord, Status, StepRecord


def same_content(run: Run, step_id: str, record: StepRecord) -> str | None:
    """An earlier step of this run, ``ok``, that produced the very same artifact."""
    for other_id in run.ledger.run_steps:
        other = run.ledger.steps[other_id]
        if (
            other_id != step_id
            and other.status == Status.OK
            and other.content == record.content
            and other.format == record.format
            and other.key != record.key
        ):
            return other_id
    return None


def still_duplicate(run: Run, old: StepRecord) -> bool:
    """Whether an earlier run's duplicate step is a duplicate in this run too: its original is
    ``ok`` in this run with the same bytes."""
    if old.duplicate_of is None or old.duplicate_of not in run.ledger.run_steps:
        return False
    original = run.ledger.steps[old.duplicate_of]
    return original.status == Status.OK and original.content == old.content


def original_input(run: Run, step: PlannedStep) -> str | None:
    """The original of the step's parent when the parent is a duplicate, else ``None``."""
    if step.parent is None:
        return None
    parent = run.ledger.steps.get(step.parent)
    if parent is None or parent.status != Status.DUPLICATE:
        return None
    return parent.duplicate_of


def duplicate_step(run: Run, step: PlannedStep, record: StepRecord) -> StepRecord | None:
    """The record of a step that reads a duplicate, as a duplicate of the same step on the
    original, when this run built that one; ``None`` when it must be built."""
    original = original_input(run, step)
    if original is None:
        return None
    twin_id = f"{original}+{step.spec.name}"
    if twin_id not in run.ledger.run_steps:
        return None
    twin = run.ledger.steps[twin_id]
    if twin.status == Status.DUPLICATE and twin.duplicate_of is not None:
        twin_id, twin = twin.duplicate_of, run.ledger.steps[twin.duplicate_of]
    if twin.status != Status.OK:
        return None
    return replace(
        record,
        status=Status.DUPLICATE,
        reason=f"same as {twin_id}, built in its place (it reads {step.parent}, the same bytes as {original})",
        duplicate_of=twin_id,
        content=twin.content,
    )


def duplicate_candidate(
    run: Run, candidate: PlannedCandidate, step: StepRecord, record: CandidateRecord
) -> CandidateRecord | None:
    """The record of a candidate on a duplicate step (``step``) as a duplicate of the same
    candidate on the original, when this run recorded that one; ``None`` when it must be measured
    (on the original's artifact)."""
    assert candidate.step is not None and step.duplicate_of is not None
    twin_id = step.duplicate_of + candidate.id[len(candidate.step) :]
    if twin_id not in run.ledger.run_candidates:
        return None
    twin = run.ledger.candidates[twin_id]
    original = twin.duplicate_of or twin_id
    return replace(
        record,
        status=Status.DUPLICATE,
        reason=(
            f"same as {original}, measured in its place ({candidate.step} has the same bytes as {step.duplicate_of})"
        ),
        duplicate_of=original,
        cached=step.cached,
    )
