"""What this machine learned, in one run: the order candidates are measured in, which slow builds
are worth starting, and what the run teaches the next one (see :mod:`sextant.history`).

- **Order.** Candidates with runners' defaults that won or came close on similar models here
  (by :meth:`~sextant.history.History.scores`; an option variant's score counts for its defaults)
  are measured first, best-scored first, each after the steps its artifact needs; the rest follow
  in the plan's order. The run document's ``history`` entry and a note say so.
- **No build that cannot pay** (:func:`slow_build_reason`). A candidate whose runner is
  ``slow_build`` is built only when ``--runners`` names its runner, ``--cutoff`` is 0 (an exhaustive
  run), the history scored it, or an estimate says it can beat the best so far by more than the
  screen's margin: its artifact's best fast-built candidate times :data:`SLOW_BUILD_GAIN` (what a
  compile gains at most, as a rule, over the same runtime without it) above the best so far times
  ``1 + (1 - cutoff)``. Otherwise it is skipped, and its reason names the rule and how to force it.
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
from sextant.pipeline.context import Run
from sextant.pipeline.ledger import Ledger
from sextant.planner import PlannedCandidate
from sextant.plugins import Catalog
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
    size = source.stat().st_size if source.is_file() else sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
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
    """Why a slow-to-build candidate is not built (module doc), or ``None`` when it is."""
    options = run.options
    if not candidate.runner.slow_build or options.cutoff <= 0:
        return None
    if options.runners is not None and candidate.runner.name in options.runners:
        return None
    if any(defaults_id(cid) == defaults_id(candidate.id) and s > 0 for cid, s in scores.items()):
        return None
    objective = run.objective
    measured = []
    for cid in run.ledger.run_candidates:
        record = run.ledger.candidates.get(cid)
        if cid in run.reference_only or record is None or not record.profiled_in_full:
            continue
        point = objective.best_point(record.points)
        if point is not None:
            measured.append((cid, record, point))
    if not measured:
        return None  # nothing to compare with: it may be the only way
    best = measured[objective.rank([p for _, _, p in measured])[0]][2]
    siblings = [p for cid, r, p in measured if r.step == (candidate.step or "source")]
    force = f"name its runner in --runners ({candidate.runner.name}) to build it anyway"
    bar = 1.0 + (1.0 - options.cutoff)  # what can_pay asks for, in words below
    if not siblings:
        return (
            f"skipped: slow to build, and no rule says it can pay (it never won nor came close on similar models "
            f"on this machine, and no faster-built candidate on its artifact gives an estimate); {force}"
        )
    sibling = siblings[objective.rank(siblings)[0]]
    estimate = objective.speedup(sibling, best) * SLOW_BUILD_GAIN
    if can_pay(estimate, options.cutoff):
        return None
    return (
        f"skipped: slow to build, and it cannot pay: it never won nor came close on similar models on this "
        f"machine, and its estimate ({SLOW_BUILD_GAIN:g}× its artifact's best fast-built candidate) is "
        f"{estimate:.2f}× the best so far, not above the {bar:.2f}× that beats it by more than the screen's "
        f"margin (--cutoff {options.cutoff:g}); {force}"
    )


def can_pay(estimate: float, cutoff: float) -> bool:
    """Whether a slow build estimated at ``estimate`` times the best so far (under the objective)
    beats it by more than the screen's margin (``1 - cutoff``)."""
    return estimate > 1.0 + (1.0 - cutoff)


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
