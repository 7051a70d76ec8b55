"""The order one run goes in: the reference's outputs first; what this machine's history favours
(each after the steps it needs); each step followed by its artifact's candidates, the steps other
runtimes run first, then the source's candidates (the reference's profile first), then the rest
(:func:`fast_order`); chains through slow-to-build steps, then slow-to-build runners, each only if
it can pay; a runner's option variants as soon as its default candidates are all measured (the
option search at the end); the paired re-measurement of the contenders.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from sextant.optimizer.candidates import Comparator, VerifyFunc, evaluate, skip
from sextant.optimizer.context import Run
from sextant.optimizer.learned import slow_build_reason, slow_step_reason
from sextant.optimizer.paired import pair_contenders
from sextant.optimizer.reference import profile_reference, run_reference
from sextant.optimizer.steps import run_step
from sextant.optimizer.variants import run_variants, search_options
from sextant.planner import Plan, PlannedCandidate, PlannedStep
from sextant.records import Cause, Status, StepRecord
from sextant.references import top_packages
from sextant.specs import SearchStrategySpec


def run_plan(
    run: Run,
    plan: Plan,
    baseline: PlannedCandidate,
    compare: Comparator,
    verify_func: VerifyFunc | None,
    strategy: SearchStrategySpec | None,
    scores: Mapping[str, float],
    first: list[PlannedCandidate],
) -> None:
    """The reference's outputs; the candidates this machine's history favours (``first``, each
    after the steps it needs: :mod:`.learned`); each step followed by its artifact's candidates
    (so a ``--budget-s`` run has measured what it built) and the source's candidates with their
    runners' defaults, the reference's profile first, in :func:`fast_order`; the chains through
    slow-to-build steps, then the candidates of slow-to-build runners (``slow_build``), once all of
    those are measured, each only if it can pay
    (:func:`.learned.slow_build_reason`, :func:`.learned.slow_step_reason`). A runner's option
    variants run as soon as its candidates with default options are all measured (searched at
    the end instead, when a strategy is chosen)."""
    run, judge = run_reference(run, baseline, compare, verify_func)
    variants = [c for c in plan.candidates if not c.default_options]
    defaults = [c for c in plan.candidates if c is not baseline and c not in variants]
    slow = [c for c in defaults if c.runner.slow_build]
    built: set[str] = set()
    done: set[str] = set()  # the reference joins once profiled
    evaluate_one = functools.partial(evaluate, run, judge=judge)
    waiting = list(variants) if strategy is None else []  # a search takes every runner's at the end

    def build(step_id: str | None) -> None:
        if step_id is None or step_id in built:
            return
        step = plan.step(step_id)
        build(step.parent)
        built.add(step_id)
        run_step(run, step, slow_step_reason(run, step, scores))

    def measure(candidate: PlannedCandidate) -> None:
        if candidate.id not in done:
            done.add(candidate.id)
            evaluate(run, candidate, judge)

    def variants_ready() -> None:
        """The option variants of each runner whose candidates with default options are all
        measured: where the defaults did best is known, and the best so far they may set makes
        the screen and the early stop cut the candidates measured after them."""
        ready = [
            v
            for v in waiting
            if all(c.id in done for c in (baseline, *defaults) if (c.runner, c.device) == (v.runner, v.device))
        ]
        for variant in ready:
            waiting.remove(variant)
        if ready:
            run_variants(run, plan, ready, evaluate_one)

    for candidate in first:
        build(candidate.step)
        measure(candidate)
    # the steps of chains that hold a slow build come after every fast one
    fast = [s for s in plan.steps if not any(plan.step(n).spec.slow_build for n in _ancestry(plan, s.id))]
    for step in [*fast_order(plan, baseline, fast), *(s for s in plan.steps if s not in fast)]:
        step_id = step.id if step is not None else None
        build(step_id)
        if step_id is None:
            profile_reference(run, baseline, judge)
            done.add(baseline.id)
        for candidate in defaults:
            if candidate.step == step_id and candidate not in slow:
                measure(candidate)
        variants_ready()
    for candidate in slow:
        if candidate.id in done:
            continue
        reason = slow_build_reason(run, candidate, scores)
        if reason is None:
            measure(candidate)
        else:
            done.add(candidate.id)
            skip(run, candidate, reason)
    if strategy is not None:
        search_options(run, plan, variants, evaluate_one, strategy)
    else:
        run_variants(run, plan, waiting, evaluate_one)
    pair_contenders(run, plan)
    _note_screened(run)
    untried = [r for r in (*run.ledger.steps.values(), *run.ledger.candidates.values()) if r.cause is Cause.BUDGET]
    if untried:
        steps = sum(isinstance(r, StepRecord) for r in untried)
        run.ledger.note(
            f"the --budget-s of {run.budget.seconds:g} s was spent: {steps} steps and {len(untried) - steps} "
            "candidates were not tried (listed as skipped); the selection is among those measured. "
            "Run again with a larger --budget-s, or none, to try them: everything finished is reused"
        )


def fast_order(plan: Plan, baseline: PlannedCandidate, steps: Sequence[PlannedStep]) -> list[PlannedStep | None]:
    """``steps`` that another runtime than the reference's runs, then ``None`` (the source's own
    candidates, the reference's profile first), then the rest of ``steps``, each group in the
    plan's order. A step is another runtime's when a candidate on it has a runner that needs none of
    the packages the reference runner needs: ONNX Runtime or OpenVINO on a torch model's exports,
    where TorchScript's and torch.export's runners need torch. The order of a run with no history to
    go by: a runtime made for inference is the likelier winner over its source framework running
    the model or its own exports (every pick on an export of the README's three examples and twelve
    architectures was ONNX Runtime's or OpenVINO's), and the likely winner measured early lets the
    screen cut what is slower from then on. Only the order changes: every candidate is still measured."""

    framework = top_packages(baseline.runner.requires)
    others = {c.step for c in plan.candidates if c.step is not None and not top_packages(c.runner.requires) & framework}
    return [*(s for s in steps if s.id in others), None, *(s for s in steps if s.id not in others)]


def _ancestry(plan: Plan, step_id: str) -> list[str]:
    """A step's id and those of the steps before it on its chain."""
    chain: list[str] = []
    current: str | None = step_id
    while current is not None:
        chain.append(current)
        current = plan.step(current).parent
    return chain


def _note_screened(run: Run) -> None:
    """One note counting the candidates screened out (each record says at what estimate)."""
    records = [run.ledger.candidates[c] for c in run.ledger.run_candidates]
    screened = sum(r.status == Status.OK and r.screened for r in records)
    if screened:
        full = sum(r.profiled_in_full for r in records)
        run.ledger.note(
            f"{screened} correct candidates were screened out by a short measurement at the ends of the batch "
            f"range (each under {run.options.cutoff:.0%} of the best measured so far; `sextant inspect` gives "
            f"their estimates); {full} were profiled in full"
        )
