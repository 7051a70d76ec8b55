"""The reference: the baseline run first for the outputs every other candidate is judged against
(they also name the model's outputs in the signature), profiled later where the order puts the
source's candidates, and why it failed when it cannot run. A reference that holds NaN or Inf stops
the run unless ``allow_nan`` (then it is a note, and positions must match).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sextant.compare import NonFinite, nonfinite
from sextant.errors import SampleError
from sextant.optimizer.candidates import Comparator, Judge, Judgement, JudgeFunc, VerifyFunc, evaluate
from sextant.optimizer.context import Run
from sextant.planner import PlannedCandidate
from sextant.records import CandidateRecord, Status
from sextant.samples import Batch, load_batches, save_batches
from sextant.signature import infer_tensors


def run_reference(
    run: Run, baseline: PlannedCandidate, compare: Comparator, verify: VerifyFunc | None
) -> tuple[Run, Judge]:
    """Run the baseline for its outputs, adopted as the reference; returns the run with the
    outputs in its signature, and the judge of every other candidate. Its profile waits for its
    place in the order (:func:`profile_reference`), but under ``--budget-s``: there it is taken
    now, so that however soon the budget is spent the run has a baseline to compare with."""
    adopted: dict[str, Any] = {}

    def adopt(candidate: PlannedCandidate, outputs: Sequence[Batch]) -> Judgement:
        save_batches(run.workspace.reference, outputs)
        sizes = list(run.ledger.header.correctness_batches or ())
        unbatched = [  # outputs whose first axis does not follow the inputs' batch size
            name
            for name in outputs[0]
            if any(o[name].ndim == 0 or o[name].shape[0] != size for o, size in zip(outputs, sizes))
        ]
        signature = run.signature.with_outputs(infer_tensors(outputs, what="output", unbatched=unbatched))
        run.ledger.set(signature=signature.to_dict())
        found = nonfinite(outputs)
        if found and not run.options.allow_nan:
            adopted["nonfinite"] = found
            return Judgement(Status.INCORRECT, reason=f"the reference holds NaN/Inf: {_listed(found)}")
        if found:
            run.ledger.note(
                f"the reference outputs hold NaN/Inf ({_listed(found)}); with --allow-nan each candidate "
                "must have them at the same positions, and its finite values are compared as usual"
            )
        adopted["signature"], adopted["judge"] = signature, Judge(compare, run.options, list(outputs), verify)
        return adopted["judge"](candidate, outputs)

    run.ledger.set(baseline=baseline.id)
    record = evaluate(run, baseline, adopt, profile=run.budget.seconds is not None)
    if "nonfinite" in adopted:
        raise SampleError(
            f"the source model returns NaN/Inf on the correctness inputs: {_listed(adopted['nonfinite'])}",
            hint="Candidates cannot be checked against NaN unless you allow it: pass --allow-nan "
            "(allow_nan=True) to require NaN and Inf at the same positions and compare the finite values, "
            "or give samples on which the model is finite.",
        )
    if "judge" not in adopted:
        raise reference_failed(run, record)
    return replace(run, signature=adopted["signature"]), adopted["judge"]


def profile_reference(run: Run, baseline: PlannedCandidate, judge: JudgeFunc) -> None:
    """The reference's profile, once faster candidates may have been measured: it is screened and
    stopped early like any other (on issue 27's encoder its full sweep first was some 4 s). It
    loads and runs the correctness inputs again in a child of its own, or reuses an earlier run's
    profile only when the first pass reused that run's outputs. Nothing to do when the reference
    failed, was profiled already (under ``--budget-s``), or an earlier run's full profile was reused."""
    record = run.ledger.candidates.get(baseline.id)
    if record is not None and record.unprofiled:
        evaluate(run, baseline, judge, reuse=record.cached)


def reference_failed(run: Run, record: CandidateRecord) -> SampleError:
    """Why the reference could not run the correctness inputs, told apart by calling the live model
    in this process (the loader's probe) where there is one: it fails here too (on the samples, or
    at another batch size), or only where sextant ran it, from the saved model."""
    sizes = list(run.ledger.header.correctness_batches or ())
    log = f"See {run.workspace / (record.log or 'logs')}."
    if run.probe is None:
        return SampleError(
            f"the source model could not run the correctness inputs (batch sizes {sizes}): {record.reason}",
            hint=f"{log} If the model only takes a fixed batch size, pass --max-batch-size with that size; "
            "check input names, dtypes and shapes.",
        )
    for size, batch in zip(sizes, load_batches(run.workspace.inputs)):
        try:
            run.probe(batch, run.signature)
        except Exception as exc:  # the user's model failing in the user's process: that is the answer
            error = f"{type(exc).__name__}: {exc}"
            if size == sizes[0]:
                return SampleError(
                    f"the source model fails on the samples as given (batch size {size}), in this process too: {error}",
                    hint=f"Check the inputs' names, dtypes and shapes against what the model takes "
                    f"(sextant passes {', '.join(run.signature.input_names)}). {log}",
                )
            return SampleError(
                f"the source model runs the samples (batch size {sizes[0]}) but fails at batch size {size}, "
                f"in this process too: {error}",
                hint=f"If the model only takes a fixed batch size, pass --max-batch-size {sizes[0]}. {log}",
            )
    return SampleError(
        f"the source model runs the correctness inputs (batch sizes {sizes}) in this process, but failed where "
        f"sextant ran it, in a fresh process that loaded the saved model: {record.reason}",
        hint="Something the model set up in this process (a registry, a hook, a global) did not survive saving it, "
        f"and a reference that cannot run cannot check any candidate. {log} This is sextant's limit, not your "
        "input's: please report it with that log.",
    )


def _listed(found: Sequence[NonFinite]) -> str:
    return "; ".join(f.describe() for f in found)
