"""Duplicates: what is built or measured once, however many chains reach it.

Two chains often write the same artifact: two exporters of one framework that produce the same
graph, a rewrite (onnxslim) that finds nothing to change. A step's artifact is hashed when it is
built (``StepRecord.content``), and, when its format's plugin names a ``FormatSpec.canonical_hash``,
fingerprinted in its canonical form (``StepRecord.canonical``: an ONNX file without its producer,
doc strings and names, whose files from torch's two exporters rarely share bytes). When it has the
same format and the same bytes or canonical form as the artifact of an earlier step of the run, the
step is a duplicate of that one (status ``duplicate``, ``duplicate_of`` the first step, its own copy
deleted), and so is everything that would have run on it:

- a step that reads a duplicate is the same step on the original's artifact; when the run built
  that one (``original+name``) it is a duplicate of it, not built; otherwise it is built from
  the original's artifact;
- a candidate on a duplicate is the candidate with the same runner, options, device and precision
  on the original; when that one was recorded by this run it is recorded as a duplicate of it
  ("same as <id>, measured in its place"), not measured, and never selected (it is not ``ok``);
  when that one was not measured (skipped: for the budget, say) it is skipped too, for the same
  cause, saying so; otherwise it is measured on the original's artifact.

A runner can also say, once loaded, what it runs (:class:`sextant.runtime.Fingerprinted`: OpenVINO
compiles the ONNX files of torch's two exporters, onnxslim's rewrites of them and its own IR of one
model to one graph more often than not). A candidate whose outputs pass, on the same device and
precision as a candidate of this run that is ``ok`` with the same fingerprint, is not profiled: it
is recorded as a duplicate of that one ("compiles to the same graph as <id>, measured in its place"),
with its own correctness; a re-run records it so again while that one is ``ok`` with the same
fingerprint, running nothing.

``duplicate_of`` always names an original (a step that is ``ok``, a candidate that ran), never
another duplicate. A re-run reuses a duplicate step only while its original is still ``ok`` with
the same bytes; its candidates are then duplicates again, measuring nothing.
"""

from __future__ import annotations

from dataclasses import replace

from sextant.optimizer.context import Run
from sextant.planner import PlannedCandidate, PlannedStep
from sextant.records import CandidateRecord, Status, StepRecord


def same_artifact(a: StepRecord, b: StepRecord) -> bool:
    """Whether two steps' artifacts are the same: one format, and the same bytes or the same
    canonical form (both fingerprinted, equal)."""
    if a.format != b.format:
        return False
    same_bytes = a.content is not None and a.content == b.content
    return same_bytes or (a.canonical is not None and a.canonical == b.canonical)


def same_content(run: Run, step_id: str, record: StepRecord) -> str | None:
    """An earlier step of this run, ``ok``, that produced the same artifact (:func:`same_artifact`)."""
    for other_id in run.ledger.run_steps:
        other = run.ledger.steps[other_id]
        earlier = other_id != step_id and other.status == Status.OK and other.key != record.key
        if earlier and same_artifact(other, record):
            return other_id
    return None


def sameness(run: Run, twin: str, record: StepRecord) -> str:
    """How a duplicate step is the same as ``twin``, in words."""
    if record.content == run.ledger.steps[twin].content:
        return f"same bytes as {twin}"
    return (
        f"same {record.format} as {twin} in canonical form (the files differ only in what does not change what "
        "runs: producer, doc strings, names)"
    )


def _same(run: Run, step: StepRecord, original: str) -> str:
    """``the same bytes as <original>`` or ``the same canonical form as <original>``."""
    same_bytes = step.content is not None and step.content == run.ledger.steps[original].content
    return f"the same {'bytes' if same_bytes else 'canonical form'} as {original}"


def still_duplicate(run: Run, old: StepRecord) -> bool:
    """Whether an earlier run's duplicate step is a duplicate in this run too: its original is
    ``ok`` in this run with the same bytes or canonical form."""
    if old.duplicate_of is None or old.duplicate_of not in run.ledger.run_steps:
        return False
    original = run.ledger.steps[old.duplicate_of]
    return original.status == Status.OK and same_artifact(original, old)


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
    parent = run.ledger.steps[str(step.parent)]
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
        reason=f"same as {twin_id}, built in its place (it reads {step.parent}, {_same(run, parent, original)})",
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
    same = f"{candidate.step} has {_same(run, step, step.duplicate_of)}"
    if twin.status == Status.SKIPPED:  # nothing was measured in its place: this one is not measured either
        return replace(
            record,
            status=Status.SKIPPED,
            reason=f"not measured: same as {twin_id} ({same}), which was skipped, so nothing was measured in its "
            f"place ({twin.reason})",
            cause=twin.cause,
        )
    return replace(
        record,
        status=Status.DUPLICATE,
        reason=f"same as {original}, measured in its place ({same})",
        duplicate_of=original,
        cached=step.cached,
    )


def runtime_twin(run: Run, candidate: PlannedCandidate, fingerprint: str | None) -> str | None:
    """A candidate of this run, ``ok`` (measured, or screened out) and selectable (not a reference
    only), whose runner reported the same ``fingerprint`` on the same device and precision; ``None``
    when there is none."""
    if fingerprint is None:
        return None
    for other_id in run.ledger.run_candidates:
        if other_id in run.reference_only:
            continue
        other = run.ledger.candidates[other_id]
        alike = other.device == candidate.device and other.precision == candidate.precision
        if other_id != candidate.id and alike and other.status == Status.OK and other.fingerprint == fingerprint:
            return other_id
    return None


def runtime_duplicate(run: Run, record: CandidateRecord, twin_id: str) -> CandidateRecord:
    """``record`` (whose outputs passed) as a duplicate of ``twin_id``, which compiled the same graph."""
    twin = run.ledger.candidates[twin_id]
    screened = ", which was screened out" if twin.screened else ""
    return replace(
        record,
        status=Status.DUPLICATE,
        reason=f"compiles to the same graph as {twin_id}{screened}, run the same way (its runner's fingerprint): "
        "measured in its place; its own outputs passed",
        duplicate_of=twin_id,
    )
