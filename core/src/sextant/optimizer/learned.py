"""What this machine learned, in one run: the order candidates are measured in, which slow builds
are worth starting, and what the run teaches the next one (see :mod:`sextant.history`).

- **Order.** Candidates with runners' defaults that won or came close on similar models here
  (by :meth:`~sextant.history.History.scores`; an option variant's score counts for its defaults)
  are measured first, best-scored first, each after the steps its artifact needs; the rest follow
  in the run's own order (:mod:`sextant.optimizer.schedule`). The run document's ``history`` entry
  and a note say so.
- **No build that cannot pay** (:func:`slow_build_reason`, :func:`slow_step_reason`). A candidate
  whose runner is ``slow_build`` (or a step whose spec is) is built only when ``--runners`` names
  its runner (``--steps`` the step), ``--cutoff`` is 0 (an exhaustive run), the history scored it
  (for a step: a candidate on its artifact or after it), nothing was measured yet to compare with,
  or an estimate says it can beat the best so far by more than the screen's margin: the best
  candidate on the artifact it reads (its screen's points, when it was screened out: the reference,
  on the source, is measured after other runtimes' candidates) times :data:`SLOW_BUILD_GAIN`
  (what a compile gains at most, as a rule, over the same artifact without it) above the best so
  far times ``1 + (1 - cutoff)``, and by the sweeps' noise (:data:`sextant.pairing.CLOSE`, 10 %)
  on top: the two are read off sweeps measured at different times, and on issue 27's encoder,
  where ``torch.compile`` ran at 0.6-0.77x eager and took 19-22 s to build, eager's best point
  swung between 0.75 and 0.87 of the best so far from run to run, on both sides of the bar
  without that allowance.
  Otherwise it is skipped, and its reason names the rule and how to force it.
- **Learning.** A finished run that selected, and measured something itself (a re-run that reused
  everything teaches nothing new), records its winner and those within the screen's margin.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from sextant.cache import library_versions
from sextant.devices import cpu_model
from sextant.history import Descriptor, History, Outcome, close_to, history_path
from sextant.package.document import HistoryUse
from sextant.optimizer.context import Run
from sextant.optimizer.ledger import Ledger
from sextant.pairing import CLOSE
from sextant.planner import SOURCE, PlannedCandidate, PlannedStep
from sextant.plugins import Catalog
from sextant.records import Status
from sextant.signature import Signature

#: how many times faster a slow build (a compile) is assumed to run, at most, than its artifact's
#: best fast-built candidate: the cheap estimate of :func:`slow_build_reason`
SLOW_BUILD_GAIN = 1.5

_OPTIONS_LABEL = re.compile(r"\[[^\]]*\]")


def open_history(catalog: Catalog) -> History:
    """This machine's history: keyed by the CPU's model and the versions of every installed runner's libraries."""
    requires = sorted({m for c in catalog.of("runner") for m in c.spec.requires})
    return History.open(history_path(cpu_model(), library_versions(requires)))


def describe(source_format: str, source: Path, signature: Signature) -> Descriptor:
    """The model's coarse descriptor: its format, the source's bytes, its inputs without the batch axis."""
    files = [source] if source.is_file() else [p for p in source.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    inputs = [(t.name, t.dtype, tuple(t.shape[1:] if t.batched else t.shape)) for t in signature.inputs]
    return Descriptor.of(source_format, size, inputs)


def defaults_id(cid: str) -> str:
    """An option variant's id as its runner's defaults' (``a:r[impl=x]@cpu`` → ``a:r@cpu``)."""
    return _OPTIONS_LABEL.sub("", cid)


def favourites(candidates: Sequence[PlannedCandidate], scores: Mapping[str, float]) -> list[PlannedCandidate]:
    """The candidates history scored, best-scored first (the plan's order among equals)."""
    folded: dict[str, float] = {}
    for cid, score in scores.items():
        folded[defaults_id(cid)] = folded.get(defaults_id(cid), 0.0) + score
    scored = [c for c in candidates if folded.get(c.id, 0.0) > 0]
    return sorted(scored, key=lambda c: -folded[c.id])


def note_order(ledger: Ledger, history: History, first: Sequence[PlannedCandidate], runs: int) -> None:
    """Say in the run document that (and how) the order came from history."""
    if not first:
        return
    ids = tuple(c.id for c in first)
    ledger.set(history=HistoryUse(first=ids, runs=runs, file=str(history.path)))
    shown = ", ".join(ids[:3]) + (f" and {len(ids) - 3} more" if len(ids) > 3 else "")
    ledger.note(
        f"measured first from this machine's history ({runs} earlier runs on similar models): {shown}; "
        "--no-history measures in the plan's order"
    )


def slow_build_reason(run: Run, candidate: PlannedCandidate, scores: Mapping[str, float]) -> str | None:
    """Why a slow-to-build runner's candidate is not built (module doc), or ``None`` when it is."""
    if not candidate.runner.slow_build:
        return None
    forced = run.options.runners is not None and candidate.runner.name in run.options.runners
    scored = any(defaults_id(cid) == defaults_id(candidate.id) and s > 0 for cid, s in scores.items())
    force = f"name its runner in --runners ({candidate.runner.name}) to build it anyway"
    return _cannot_pay(run, forced or scored, candidate.step or SOURCE, force)


def slow_step_reason(run: Run, step: PlannedStep, scores: Mapping[str, float]) -> str | None:
    """Why a slow-to-build step is not built (module doc: the same rule as for runners, its
    estimate from its input's candidates, history scoring any candidate on its artifact or after
    it), or ``None`` when it is."""
    if not step.spec.slow_build:
        return None
    forced = run.options.steps is not None and step.spec.name in run.options.steps
    scored = any(s > 0 and cid.startswith((f"{step.id}:", f"{step.id}+")) for cid, s in scores.items())
    force = f"name it in --steps ({step.spec.name}, with the rest of its chain) to build it anyway"
    return _cannot_pay(run, forced or scored, step.parent or SOURCE, force)


def _cannot_pay(run: Run, allowed: bool, artifact: str, force: str) -> str | None:
    """The reason a slow build on ``artifact`` (the step whose artifact it reads, or the source)
    cannot pay, or ``None`` when it is ``allowed`` (forced, or scored by history), the run is
    exhaustive (``--cutoff 0``), nothing was measured to compare with, or its estimate pays."""
    cutoff = run.options.cutoff
    if allowed or cutoff <= 0:
        return None
    objective = run.objective
    measured, siblings = [], []  # the best so far among full profiles; the artifact's, screens too
    for cid in run.ledger.run_candidates:
        record = run.ledger.candidates.get(cid)
        point = objective.best_point(record.points) if record is not None and record.status == Status.OK else None
        if point is None:
            continue
        if record.step == artifact:
            siblings.append(point)
        if record.profiled_in_full and cid not in run.reference_only:
            measured.append(point)
    if not measured:
        return None  # nothing to compare with: it may be the only way
    best = measured[objective.rank(measured)[0]]
    if not siblings:
        return (
            "slow to build, and no rule says it can pay (it never won nor came close on similar models "
            f"on this machine, and no faster-built candidate on {artifact} gives an estimate); {force}"
        )
    estimate = objective.speedup(siblings[objective.rank(siblings)[0]], best) * SLOW_BUILD_GAIN
    if can_pay(estimate, cutoff):
        return None
    return (
        f"slow to build, and it cannot pay: it never won nor came close on similar models on this "
        f"machine, and its estimate ({SLOW_BUILD_GAIN:g}× the best candidate on {artifact}) is {estimate:.2f}× "
        f"the best so far, not above the {bar(cutoff):.2f}× that beats it by more than the screen's margin "
        f"(--cutoff {cutoff:g}) and the sweeps' noise ({CLOSE:.0%}); {force}"
    )


def bar(cutoff: float) -> float:
    """The share of the best so far a slow build's estimate must exceed: the screen's margin
    (``1 - cutoff``) over the best, and the sweeps' noise on top (module doc)."""
    return (2.0 - cutoff) * (1.0 + CLOSE)


def can_pay(estimate: float, cutoff: float) -> bool:
    """Whether a slow build estimated at ``estimate`` times the best so far (under the objective)
    clears :func:`bar`."""
    return estimate > bar(cutoff)


def learn(history: History, ledger: Ledger, model: Descriptor, objective_name: str, cutoff: float) -> None:
    """Record what this finished run found (module doc); a history that cannot be written is a note."""
    document = ledger.document
    selection, run = document.selection, document.run
    if selection is None or selection.best is None or (run is not None and not run.ran):
        return
    objective = selection.objective
    best = document.candidates[selection.best].best_point
    if best is None:
        return
    ratios = {}
    for cid in selection.ranking[1:]:
        point = document.candidates[cid].best_point
        if point is not None:
            ratios[cid] = objective.speedup(point, best)
    try:
        history.learn(Outcome(model, objective_name, selection.best, close_to(ratios, cutoff)))
    except OSError as exc:
        ledger.note(f"this machine's history ({history.path}) was not written: {exc}")
