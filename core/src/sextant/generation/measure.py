"""What users of a generative model see: time to first token, inter-token latency, tokens/s.

One generation of ``new_tokens`` tokens from a prompt replicated ``batch`` times is timed with
``clock``: the time to first token (TTFT) is the prefill and the choice of the first token; each
later token's inter-token latency (ITL) is the time since the token before it; output tokens/s is
``batch * new_tokens`` over the whole generation. ``warmup`` generations are run first and not
counted (a compiled backend builds on its first call), then ``repeats`` are measured: the point
holds the median TTFT and tokens/s over the repeats, and the ITL percentiles over every decode
step of every repeat. The peak resident memory is read around the measured generations (it grows
with the KV cache, so with the batch and the sequence length).

A :class:`~sextant.runtime.StreamingGenerator` (a backend that owns the loop) is timed through
its ``stream``: TTFT to its first streamed token, ITL between streamed tokens.

Everything takes its ``clock`` so that tests assert exact values.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from sextant.memory import MemorySource
from sextant.records import Point
from sextant.runtime import Generator, StreamingGenerator

Clock = Callable[[], float]


def _stream(
    generator: StreamingGenerator, ids: np.ndarray, new_tokens: int, clock: Clock
) -> tuple[float, list[float], float]:
    """One timed generation by the backend's own loop: each token timed as it is streamed."""
    start = clock()
    times = []
    for _ in generator.stream(ids, new_tokens):
        times.append(clock())
    gaps = [b - a for a, b in zip(times, times[1:])]
    return times[0] - start, gaps, times[-1] - start


def _generate(generator: Generator, ids: np.ndarray, new_tokens: int, clock: Clock) -> tuple[float, list[float], float]:
    """One timed generation: TTFT, the inter-token latencies, the total (seconds)."""
    if isinstance(generator, StreamingGenerator):
        return _stream(generator, ids, new_tokens, clock)
    start = clock()
    logits, state = generator.prefill(ids, np.ones_like(ids))
    next_ids = np.asarray(logits).argmax(-1).astype(np.int64)
    first = last = clock()
    gaps = []
    for _ in range(new_tokens - 1):
        logits, state = generator.decode(state, next_ids)
        next_ids = np.asarray(logits).argmax(-1).astype(np.int64)
        now = clock()
        gaps.append(now - last)
        last = now
    return first - start, gaps, last - start


def measure_batch(
    generator: Generator,
    prompt: np.ndarray,
    batch: int,
    new_tokens: int,
    *,
    repeats: int = 3,
    warmup: int = 1,
    clock: Clock = time.perf_counter,
    memory: MemorySource | None = None,
) -> Point:
    """Measure generations of ``new_tokens`` from ``prompt`` (1-D) replicated ``batch`` times."""
    ids = np.repeat(np.asarray(prompt, dtype=np.int64)[None], batch, axis=0)
    for _ in range(warmup):
        _generate(generator, ids, new_tokens, clock)
    if memory is not None:
        memory.reset()
    ttfts, gaps, rates = [], [], []
    for _ in range(repeats):
        ttft, steps, total = _generate(generator, ids, new_tokens, clock)
        ttfts.append(ttft)
        gaps.extend(steps)
        rates.append(batch * new_tokens / total if total > 0 else float("inf"))
    peak = memory.read().peak_mb if memory is not None else None
    p50, p90, p99 = (float(np.percentile(gaps, q) * 1e3) for q in (50, 90, 99))
    return Point(
        batch=batch,
        prompt_length=len(prompt),
        new_tokens=new_tokens,
        ttft_ms=float(np.median(ttfts) * 1e3),
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        throughput=float(np.median(rates)),
        repeats=repeats,
        memory_mb=peak,
    )


def measure_ttft(
    generator: Generator, prompt: np.ndarray, *, repeats: int = 3, warmup: int = 1, clock: Clock = time.perf_counter
) -> float:
    """The median time to first token of ``prompt`` at batch 1, in milliseconds: the prefill and
    the choice of the first token."""
    ids = np.asarray(prompt, dtype=np.int64)[None]
    times = []
    for i in range(warmup + repeats):
        if isinstance(generator, StreamingGenerator):  # the backend's loop, to its first token
            ttft, _, _ = _stream(generator, ids, 1, clock)
            if i >= warmup:
                times.append(ttft)
            continue
        start = clock()
        logits, _ = generator.prefill(ids, np.ones_like(ids))
        np.asarray(logits).argmax(-1)
        if i >= warmup:
            times.append(clock() - start)
    return float(np.median(times) * 1e3)
