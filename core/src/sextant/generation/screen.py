"""Screening a generation candidate: a short look before its full measurement, so that only the
candidates that can still win are measured in full (the single-model run's :mod:`sextant.screening`,
for the generation loop).

Candidates are judged and measured one after another, the reference first. Once two of this run's
candidates are measured in full (the reference and the first other), each later candidate that
passed teacher forcing is first screened: :data:`SCREEN_TOKENS` tokens (or ``--new-tokens``, if
fewer) generated from the longest prompt (the one every batch is measured at) for one sequence,
``warmup`` and up to two measured repeats. Its tokens/s is projected to the full ``--new-tokens``
from the screen's time to first token and mean inter-token latency (``N / (TTFT + (N - 1) ·
ITL)``: the prefill weighs less over more tokens, as in the full measurement); that *estimate* is
compared with the best tokens/s at batch 1 that a candidate measured in full reached. Under
``cutoff`` (``--cutoff``, 0.7 by default) of it, the candidate is recorded as ``screened`` (status
``ok``, its screen point as its profile, the estimate in words) and never selected; otherwise it is
measured in full.

Screened at batch 1, a candidate could only have won with a full measurement if it were more than
``1 / cutoff`` faster relative to the rivals at a larger batch than at batch 1, or if load slowed its
short screen by as much. Objectives with constraints (``--max-ttft-ms``, ``--max-itl-ms``,
``--max-memory-mb``, ``--min-throughput``) and the ``ttft`` and memory objectives are not screened:
tokens/s at batch 1 says nothing of them. Everything takes its ``clock`` (tests script it).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from sextant.generation.config import GenerationConfig
from sextant.generation.measure import Clock, measure_batch
from sextant.messages import ProfileOrder, ScreenMode
from sextant.records import SCREENED_WORDS, CandidateRecord, Point
from sextant.screening import screen_mode as single_model_mode

if TYPE_CHECKING:
    from sextant.objective import Objective
    from sextant.runtime import Generator

#: the tokens a screen generates (fewer when ``--new-tokens`` is)
SCREEN_TOKENS = 8
#: how many candidates measured in full before any is screened: the reference and the first other
RIVALS_BEFORE_SCREENING = 2


def screen_mode(objective: Objective) -> ScreenMode | None:
    """How generation candidates are screened under ``objective`` (always at batch 1); ``None``:
    they are not (constraints, time to first token, memory, custom weights)."""
    if objective.max_ttft_ms is not None:
        return None
    return single_model_mode(objective)


def rivals(records: Iterable[CandidateRecord]) -> dict[int, float]:
    """``{1: best tokens/s at batch 1}`` of ``records`` measured in full (this run's competing
    candidates); empty until there are :data:`RIVALS_BEFORE_SCREENING` of them."""
    full = [r for r in records if r.profiled_in_full and r.points]
    if len(full) < RIVALS_BEFORE_SCREENING:
        return {}
    rates = [p.throughput for r in full for p in r.points if p.batch == 1]
    return {1: max(rates)} if rates else {}


def estimate(point: Point, new_tokens: int) -> float:
    """Tokens/s of one sequence generating ``new_tokens``, projected from a screen ``point`` (batch 1)."""
    measured = point.new_tokens
    total_s = measured / point.throughput if point.throughput > 0 else float("inf")
    ttft_s = point.ttft_ms / 1e3
    itl_s = max(total_s - ttft_s, 0.0) / max(measured - 1, 1)
    projected = ttft_s + (new_tokens - 1) * itl_s
    return new_tokens / projected if projected > 0 else float("inf")


def screen_verdict(point: Point, new_tokens: int, rivals: Mapping[int, float], cutoff: float) -> str | None:
    """Why a candidate with this screen point is screened out, or ``None`` when it may still win."""
    best = rivals.get(1)
    if not best or cutoff <= 0:
        return None
    guess = estimate(point, new_tokens)
    if guess >= cutoff * best:
        return None
    return (
        f"{SCREENED_WORDS}: estimate {guess:,.1f} tokens/s at batch 1 ({point.new_tokens} tokens from a "
        f"{point.prompt_length}-token prompt, projected to {new_tokens}) is under {cutoff:.0%} of the best "
        f"so far there, {best:,.1f} tokens/s"
    )


def screen(
    generator: Generator,
    prompt: np.ndarray,
    config: GenerationConfig,
    order: ProfileOrder,
    *,
    clock: Clock = time.perf_counter,
) -> tuple[Point, str | None]:
    """Measure the screen of one candidate and judge it: its point, and why it is screened out
    (``None``: measure it in full)."""
    tokens = min(SCREEN_TOKENS, config.new_tokens)
    point = measure_batch(
        generator, prompt, 1, tokens, repeats=min(config.repeats, 2), warmup=config.warmup, clock=clock
    )
    return point, screen_verdict(point, config.new_tokens, order.rivals, order.cutoff)
