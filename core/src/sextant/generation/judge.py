"""Teacher forcing: a candidate's logits on the reference's greedy continuation, and its tokens.

For every prompt the reference's greedy continuation (ids and the logits each was chosen from) is
fed to the candidate one token at a time (:func:`sextant.generation.loop.teacher_forced`), so a
single early difference cannot derail every later step. At each step ``t``:

- the logits are compared with the reference's within the precision's tolerance
  (``|candidate - reference| <= atol + rtol * |reference|``, every entry);
- the candidate's greedy token (its arg-max) is compared with the reference's: the share equal
  is the agreement, and the first step that differs the first divergence.

An fp32 candidate passes when its logits are within the tolerance at every step and every token
that differs is a near-tie: a step where the reference's logit of the candidate's token is within
the tolerance of its logit of its own (either answer is right; the report lists them). Where one
is not, the report gives that gap and the tolerance it exceeded. A reduced-precision candidate
passes when its agreement reaches ``min_agreement`` and its logits are within the (looser) tolerance
of its precision.

A generator whose backend owns the loop (:class:`~sextant.runtime.StreamingGenerator`) also saves
the ids its own loop streamed (``streamed_<i>``): its agreement and first divergence are those ids'
against the reference's, and in fp32 the first that differs must be a near-tie.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sextant.compare import Tolerance
from sextant.records import Correctness


@dataclass(frozen=True)
class PromptReport:
    """One prompt's comparison."""

    name: str
    steps: int
    max_abs_error: float
    out_of_tolerance: int  # steps whose logits are not within the tolerance
    agreement: float  # share of steps whose greedy token equals the reference's
    first_divergence: int | None  # the first step whose token differs
    near_ties: tuple[int, ...]  # differing steps where the reference scored both tokens within tolerance
    passed: bool
    #: at the first divergence that is not a near-tie: the reference's logit of its token minus its
    #: logit of the candidate's, and the tolerance that gap had to be within to count as a near-tie
    margin: float | None = None
    margin_tolerance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "near_ties": list(self.near_ties)}


def gap(
    reference_logits: np.ndarray, reference_id: int, candidate_id: int, atol: float, rtol: float
) -> tuple[float, float]:
    """At one step: how much higher the reference scored its own token than the candidate's, and the
    bound within which the two count as a near-tie (the tolerance at the reference's best logit)."""
    best = float(reference_logits[reference_id])
    return best - float(reference_logits[candidate_id]), atol + rtol * abs(best)


def judge_prompt(
    name: str,
    reference_ids: np.ndarray,
    reference_logits: np.ndarray,
    candidate_logits: np.ndarray,
    tolerance: Tolerance,
    precision: str,
    min_agreement: float,
    streamed_ids: np.ndarray | None = None,
) -> PromptReport:
    """Compare one prompt's teacher-forced logits (``[steps, vocab]``) with the reference's; with
    ``streamed_ids`` (the ids a :class:`~sextant.runtime.StreamingGenerator`'s own loop chose), the
    agreement and first divergence are those ids' (in fp32 the first that differs must be a near-tie:
    the later ones continue another sequence)."""
    atol, rtol = tolerance.atol, tolerance.rtol
    steps = len(reference_ids)
    if candidate_logits.shape != reference_logits.shape:
        return PromptReport(name, steps, float("inf"), steps, 0.0, 0, (), False)
    error = np.abs(candidate_logits.astype(np.float64) - reference_logits)
    finite = np.isfinite(candidate_logits).all(axis=-1)
    within = (error <= atol + rtol * np.abs(reference_logits)).all(axis=-1) & finite
    chosen = candidate_logits.argmax(-1)
    judged = [(int(t), int(chosen[t])) for t in np.flatnonzero(chosen != reference_ids)]  # (step, token)
    if streamed_ids is not None:
        chosen = np.asarray(streamed_ids).reshape(-1)
        if chosen.shape != reference_ids.shape:
            return PromptReport(name, steps, float("inf"), steps, 0.0, 0, (), False)
        own = np.flatnonzero(chosen != reference_ids)[:1]  # later steps continue another sequence
        judged += [(int(t), int(chosen[t])) for t in own]
    differing = np.flatnonzero(chosen != reference_ids)
    gaps = [(t, *gap(reference_logits[t], int(reference_ids[t]), token, atol, rtol)) for t, token in judged]
    ties = tuple(sorted({t for t, g, bound in gaps if g <= bound}))
    untied = [(g, bound) for t, g, bound in sorted(gaps) if g > bound]
    agreement = float((chosen == reference_ids).mean()) if steps else 1.0
    if precision == "fp32":
        passed = bool(within.all()) and not untied
    else:
        passed = bool(within.all()) and agreement >= min_agreement
    margin = untied[0] if precision == "fp32" and untied else (None, None)
    return PromptReport(
        name,
        steps,
        float(np.nanmax(np.where(np.isfinite(error), error, np.inf))) if error.size else 0.0,
        int((~within).sum()),
        agreement,
        int(differing[0]) if len(differing) else None,
        ties,
        passed,
        *margin,
    )


def judge(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    lengths: Sequence[int],
    tolerance: Tolerance,
    precision: str,
    min_agreement: float,
) -> Correctness:
    """The verdict over every prompt: ``reference`` holds ``ids_<i>`` and ``logits_<i>``, ``candidate``
    its teacher-forced ``logits_<i>``; ``lengths`` the prompts' lengths (for the report)."""
    reports = []
    for i, length in enumerate(lengths):
        name = f"prompt {i} ({length} tokens)"
        if f"logits_{i}" not in candidate:
            reports.append(PromptReport(name, 0, float("inf"), 0, 0.0, 0, (), False))
            continue
        reports.append(
            judge_prompt(
                name,
                reference[f"ids_{i}"],
                reference[f"logits_{i}"],
                candidate[f"logits_{i}"],
                tolerance,
                precision,
                min_agreement,
                candidate.get(f"streamed_{i}"),
            )
        )
    passed = all(r.passed for r in reports)
    return Correctness(passed, tuple(r.to_dict() for r in reports), tolerance.atol, tolerance.rtol, summary(reports))


def summary(reports: Sequence[PromptReport]) -> str:
    """One line: logits error, agreement, the first divergence and near-ties."""
    if not reports:
        return "no prompts"
    steps = sum(r.steps for r in reports)
    agreement = sum(r.agreement * r.steps for r in reports) / steps if steps else 1.0
    off = sum(r.out_of_tolerance for r in reports)
    error = max(r.max_abs_error for r in reports)
    text = f"logits max abs error {error:.2e}"
    text += f", {off} of {steps} steps out of tolerance" if off else ", every step within tolerance"
    text += f"; greedy tokens agree at {agreement:.1%} of steps"
    diverged = [(i, r.first_divergence) for i, r in enumerate(reports) if r.first_divergence is not None]
    if diverged:
        i, step = diverged[0]
        text += f" (first divergence: prompt {i}, step {step})"
    ties = sum(len(r.near_ties) for r in reports)
    if ties:
        text += f"; {ties} differing token(s) at near-ties of the reference"
    untied = [r for r in reports if r.margin is not None]
    if untied:
        r = untied[0]
        text += (
            f"; at {r.name} a differing token is not a near-tie: the reference scored its own "
            f"{r.margin:.2e} higher in logits, more than the tolerance {r.margin_tolerance:.2e}"
        )
    return text
