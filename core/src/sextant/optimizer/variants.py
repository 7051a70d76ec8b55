"""Runner option variants and option search: measured only where the runner's defaults did best.

A runtime option changes how a graph runs, not which graph is fastest, so a runner's declared
variants, or a search of its option space (``--search``), run on the one artifact where the same
runner with default options did best; the other variants are recorded as skipped, saying why.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from sextant.errors import UsageError
from sextant.optimizer.budget import Budget
from sextant.optimizer.candidates import base_record, candidate_keys
from sextant.optimizer.context import Run
from sextant.planner import SOURCE, Plan, PlannedCandidate, with_options
from sextant.plugins import Catalog, availability
from sextant.records import CandidateRecord, Status
from sextant.search import Metrics, ResultsStore, run_search
from sextant.specs import RunnerSpec, SearchStrategySpec, resolve

Evaluate = Callable[[PlannedCandidate], CandidateRecord]


def search_strategy_spec(catalog: Catalog, name: str | None) -> SearchStrategySpec | None:
    """The chosen strategy's spec; an unknown or unavailable one fails now, not after the profiling."""
    if name is None:
        return None
    spec = catalog.get("search_strategy", name).spec
    reason = availability(spec)
    if reason:
        raise UsageError(f"search strategy {name!r} is unavailable: {reason}")
    return spec


def best_default(
    run: Run, plan: Plan, runner: RunnerSpec, device: str, *, screened: bool = False
) -> PlannedCandidate | None:
    """The candidate where ``runner`` with its default options did best on ``device`` (among
    those profiled in full, or, with ``screened``, among the correct ones by their screens too)."""
    objective = run.objective
    scored: list[tuple[PlannedCandidate, Any]] = []
    for c in plan.candidates:
        record = run.ledger.candidates.get(c.id)
        if (
            c.runner == runner
            and c.device == device
            and c.default_options
            and record is not None
            and (record.profiled_in_full or (screened and record.status == Status.OK))
        ):
            point = objective.best_point(record.points)
            if point is not None:
                scored.append((c, point))
    if not scored:
        return None
    return scored[objective.rank([p for _, p in scored])[0]][0]


def run_variants(run: Run, plan: Plan, variants: list[PlannedCandidate], evaluate: Evaluate) -> None:
    """Each declared variant runs where its runner's defaults did best, or is skipped saying why.
    The reference runner's variants run even where its defaults were screened out: they change how
    the framework itself runs the model (``tf.function``, XLA), which its defaults' screen does not
    judge, and they were always measured while the reference was profiled first."""
    for candidate in variants:
        best = best_default(run, plan, candidate.runner, candidate.device, screened=candidate.runner.reference)
        if best is not None and best.step == candidate.step and best.precision == candidate.precision:
            evaluate(candidate)
            continue
        if best is not None:
            reason = f"variants run on {best.step or SOURCE} only, where the defaults did best"
        elif _screened_everywhere(run, plan, candidate):
            reason = (
                f"{candidate.runner.name} with default options was screened out on every artifact (correct, "
                f"but under {run.options.cutoff:.0%} of the best measured so far), so its variants were not tried"
            )
        elif twins := _measured_elsewhere(run, plan, candidate):
            reason = (
                f"{candidate.runner.name} with default options was a duplicate wherever it ran correct (the same file "
                f"or compiled graph as {', '.join(twins)}, measured in its place), so its variants were not tried"
            )
        else:
            reason = f"{candidate.runner.name} with default options did not succeed on any artifact"
        _skip(run, candidate, reason)


def _defaults(run: Run, plan: Plan, variant: PlannedCandidate) -> list[CandidateRecord]:
    """The records of ``variant``'s runner with default options on the same device, on every artifact."""
    records = (
        run.ledger.candidates.get(c.id)
        for c in plan.candidates
        if c.runner == variant.runner and c.device == variant.device and c.default_options
    )
    return [r for r in records if r is not None]


def _screened_everywhere(run: Run, plan: Plan, variant: PlannedCandidate) -> bool:
    """Whether ``variant``'s runner with default options ran correct on some artifact, and was
    screened out wherever it did."""
    ok = [r for r in _defaults(run, plan, variant) if r.status == Status.OK]
    return bool(ok) and all(r.screened for r in ok)


def _measured_elsewhere(run: Run, plan: Plan, variant: PlannedCandidate) -> list[str]:
    """What ``variant``'s runner with default options was a duplicate of, when it was one wherever
    it ran correct (the twin measured in its place: the same file, or the same compiled graph);
    empty otherwise."""
    records = _defaults(run, plan, variant)
    if any(r.status == Status.OK for r in records):
        return []
    return sorted({r.duplicate_of for r in records if r.status == Status.DUPLICATE and r.duplicate_of})


def search_options(
    run: Run, plan: Plan, variants: list[PlannedCandidate], evaluate: Evaluate, spec: SearchStrategySpec
) -> None:
    """Search each runner's option space on its best artifact with the chosen strategy. Every
    configuration measured is a candidate like any other, recorded in the package; every
    measurement is also kept in ``search.sqlite`` so a re-run or a killed search resumes."""
    store = ResultsStore(run.workspace / "search.sqlite")
    hardware = f"{platform.machine()}-{run.threads}threads"
    searched: dict[str, Any] = {}
    try:
        pairs = {(c.runner.name, c.device): (c.runner, c.device) for c in plan.candidates if c.runner.space(c.device)}
        for runner, device in pairs.values():
            start = best_default(run, plan, runner, device)
            if start is None:
                continue
            space = tuple(p.within(run.threads) for p in runner.space(device))
            strategy = resolve(spec.create)(space, seed=0, workspace=run.workspace.path, name=start.id)

            def measure(config: dict[str, Any], start: PlannedCandidate = start) -> tuple[Metrics | None, None]:
                record = _measured(run, plan, with_options(start, config), evaluate)
                point = run.objective.best_point(record.points)  # a screened-out configuration's: its estimate
                if record.status != Status.OK or point is None:
                    return None, None
                wanted = ("throughput", "p50_ms", "p99_ms", "memory_mb")
                return {m: v for m in wanted if (v := getattr(point, m)) is not None}, None

            result = run_search(
                strategy,
                measure,
                run.objective,
                store,
                Budget(run.budget.cap(run.options.search_budget_s)),
                key=candidate_keys(run, start).outputs,  # content, not name: a new model misses
                hardware=hardware,
            )
            gain = None
            if result.best_metrics and result.baseline.metrics:
                gain = round(run.objective.gain(result.best_metrics, result.baseline.metrics), 4)
            searched[start.id] = {
                "strategy": spec.name,
                "best_options": result.best,
                "gain_over_defaults": gain,
                "measured": result.measured,
                "configurations": len(result.history),
                "stopped": result.stopped,
            }
            for config, _ in result.history:  # configurations found in the store are candidates too
                _measured(run, plan, with_options(start, config), evaluate)  # reused from the package
    finally:
        store.close()
    run.ledger.set(search=searched)
    for candidate in variants:
        if not run.ledger.recorded(candidate.id):
            _skip(run, candidate, f"not proposed by the {spec.name} search")


def _measured(run: Run, plan: Plan, candidate: PlannedCandidate, evaluate: Evaluate) -> CandidateRecord:
    """The candidate's record from this run, evaluating it first if needed."""
    if candidate not in plan.candidates:
        plan.candidates.append(candidate)  # a searched configuration is a candidate like any other
    if not run.ledger.recorded(candidate.id):
        return evaluate(candidate)
    return run.ledger.candidates[candidate.id]


def _skip(run: Run, candidate: PlannedCandidate, reason: str) -> None:
    run.ledger.record_candidate(candidate.id, replace(base_record(candidate), status=Status.SKIPPED, reason=reason))
