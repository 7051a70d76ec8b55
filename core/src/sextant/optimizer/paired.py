"""The run's paired re-measurement (:mod:`sextant.pairing`): which candidates, in a child, cached.

Once every candidate is measured, the provisional best, its close runners-up and the baseline are
measured again in one child, interleaved, until the rounds decide the close calls
(:func:`sextant.pairing.settled`). The windows are kept in ``status.json`` (``paired``) with
a key made of the contenders' own profile keys and the settings, so a re-run that changed nothing
measures nothing; the selection (:func:`apply_pairing`) decides close calls and the headline speedup from
them. A pairing that fails is a note: the selection then stands on the sweeps, as before.
"""

from __future__ import annotations

from dataclasses import replace

from sextant.cache import digest
from sextant.pairing import Paired, contenders, decide
from sextant.optimizer.candidates import runner_request
from sextant.optimizer.context import Run
from sextant.planner import Plan
from sextant.records import CandidateRecord
from sextant.selection import Selection, select


def pair_contenders(run: Run, plan: Plan) -> None:
    """Measure the contenders interleaved (or reuse an earlier run's windows) into ``paired``."""
    if run.options.paired_rounds == 0 or run.objective.name == "memory":  # memory is not timed
        return
    planned = {c.id: c for c in plan.candidates}
    current = {cid: r for cid, r in run.ledger.candidates.items() if cid in planned}
    baseline = run.ledger.header.baseline
    selection, ranked = select(current, run.objective, baseline, set(planned) - set(plan.reference_only))
    if not selection.ranking:
        return
    best = ranked[selection.ranking[0]].best_point
    scores = {cid: run.objective.gain(ranked[cid].best_point, best) for cid in selection.ranking}
    ids = [c for c in contenders(selection.ranking, scores, baseline) if ranked[c].best_point is not None]
    if len(ids) < 2:
        return
    batches = [ranked[c].best_point.batch for c in ids]
    config = run.profiler
    key = digest(
        {
            "profiles": [ranked[c].keys.profile if ranked[c].keys else None for c in ids],
            "batches": batches,
            "rounds": run.options.paired_rounds,
            "window_s": config.window_s,
            "min_calls": config.min_calls,
        }
    )
    previous = run.ledger.previous.paired
    if previous is not None and previous.key == key:
        run.ledger.set(paired=previous)
        return
    from sextant.jobs import PairedJob

    records = [ranked[c] for c in ids]
    job = PairedJob(
        tuple(planned[c].runner.load for c in ids),
        tuple(runner_request(run, r.artifact, r.device, r.precision, r.options) for r in records),
        tuple(batches),
        run.workspace.inputs,
        run.options.paired_rounds,
        config.window_s,
        config.min_calls,
        run.objective,
        tuple(i for i, c in enumerate(ids) if 0 < i and c != baseline),
    )
    result = run.child(job, "paired")
    if not result.ok:
        run.ledger.note(f"the paired re-measurement failed ({result.reason()}); the selection stands on the sweeps")
        return
    run.ledger.set(paired=Paired(tuple(ids), tuple(batches), result.value.windows, key))


def apply_pairing(
    selection: Selection, ranked: dict[str, CandidateRecord], paired: Paired | None
) -> tuple[Selection, list[str]]:
    """The selection with close calls decided by ``paired`` (the run's windows) and the paired
    speedup of the best; returns it and the notes to add. Without a pairing of this selection's best
    (off, memory objective, nothing to pair, or measured for another best), the selection as it was."""
    if paired is None or selection.best is None:
        return selection, []
    windows = paired
    if selection.best not in windows.contenders:
        return selection, []
    unsettled = {
        cid for cid in windows.contenders if ranked[cid].best_point and ranked[cid].best_point.stable is False
    }
    baseline = selection.baseline if selection.baseline in windows.contenders else None
    decision = decide(windows, selection.best, baseline, selection.objective, unsettled)
    ranking = (decision.best, *(c for c in selection.ranking if c != decision.best))
    summary = {
        "contenders": list(windows.contenders),
        "speedup": decision.speedup.to_json() if decision.speedup else None,
        "close": [r.to_json() for r in decision.close],
    }
    return replace(selection, ranking=ranking, paired=summary), list(decision.notes)
