"""The plots of a text-generation run (:mod:`sextant.htmlreport.generation` lays out its page):
time to first token against prompt length, inter-token latency (p50, p90, p99 panels), output
tokens/s and peak memory against batch (concurrent sequences), and the largest logits error of each
prompt against the tolerance; plus what a generation candidate recorded, read from its record
(``ttft_ms``, its points, the teacher-forcing verdict of each prompt).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sextant.htmlreport.data import Candidate, RunReport, Series
from sextant.htmlreport.figures import Figure, Style, lines_figure, panels_figure, styles
from sextant.htmlreport.plots import errors_figure
from sextant.records import Point

# -- what a generation candidate recorded ------------------------------------------------------------


def ttft_by_length(c: Candidate) -> dict[int, float]:
    """Time to first token at batch 1 by prompt length (ms), in length order."""
    return {int(k): float(v) for k, v in sorted((c.record.ttft_ms or {}).items(), key=lambda kv: int(kv[0]))}


def prompt_lengths(report: RunReport) -> list[int]:
    """Every prompt length a TTFT was measured at (or the run's, when none was)."""
    lengths = {n for c in report.candidates for n in ttft_by_length(c)}
    if not lengths and report.prompts:
        lengths = set(report.prompts.get("lengths") or ())
    return sorted(lengths)


def at_batch(c: Candidate, batch: int) -> Point | None:
    return next((p for p in c.record.points if p.batch == batch), None)


def agreement(c: Candidate) -> float | None:
    """The share of greedy tokens equal to the reference's, over every prompt's steps."""
    verdicts = verdicts_of(c)
    steps = sum(int(v.get("steps") or 0) for v in verdicts)
    if not verdicts or not steps or any("agreement" not in v for v in verdicts):
        return None
    return sum(float(v["agreement"]) * int(v.get("steps") or 0) for v in verdicts) / steps


def verdicts_of(c: Candidate) -> tuple[Mapping[str, Any], ...]:
    return c.record.correctness.outputs if c.record.correctness else ()


# -- plots ----------------------------------------------------------------------------------------------


def _text(p: Point) -> str:
    p90 = p.p90_ms if p.p90_ms is not None else float("nan")
    parts = [
        f"batch {p.batch}",
        f"{p.throughput:,.1f} tokens/s",
        f"ITL p50 {p.p50_ms:.3f} ms, p90 {p90:.3f} ms, p99 {p.p99_ms:.3f} ms",
    ]
    if p.ttft_ms is not None:
        parts.append(f"TTFT {p.ttft_ms:.3f} ms (prompt {p.prompt_length if p.prompt_length is not None else '?'})")
    if p.memory_mb is not None:
        parts.append(f"peak {p.memory_mb:,.0f} MB")
    return ", ".join(parts)


def series_vs_batch(candidates: Sequence[Candidate], metric: str) -> list[Series]:
    """``metric`` of each candidate's points against batch (screened: its one screen point)."""
    out = []
    for c in candidates:
        points = sorted(c.record.points, key=lambda p: p.batch)
        if not points:
            continue
        out.append(
            Series(
                c.id,
                tuple(p.batch for p in points),
                tuple(getattr(p, metric) for p in points),
                tuple(_text(p) for p in points),
                markers_only=c.record.screened,
            )
        )
    return out


def ttft_series(candidates: Sequence[Candidate]) -> list[Series]:
    out = []
    for c in candidates:
        ttft = ttft_by_length(c)
        if ttft:
            text = tuple(f"prompt {n} tokens: TTFT {ms:.3f} ms at batch 1" for n, ms in ttft.items())
            out.append(Series(c.id, tuple(ttft), tuple(ttft.values()), text))
    return out


def _wide(series: Sequence[Series]) -> bool:
    values = [y for s in series for y in s.y if y]
    return bool(values) and max(values) >= 20 * min(values)


def generation_figures(report: RunReport) -> list[Figure]:
    """The plots of one generation run, in page order."""
    measured = [c for c in report.candidates if c.record.points or c.record.ttft_ms]
    ranked = sorted(measured, key=lambda c: (c.rank is None, c.rank or 0))
    style: dict[str, Style] = styles([c.id for c in ranked], best=report.best, baseline=report.baseline)
    labels = {c.id: ("★ " if c.best else "") + c.id for c in report.candidates}
    nothing = "no candidate was measured" + (f" ({report.no_selection_reason})" if report.no_selection_reason else "")
    ttft = ttft_series(measured)
    tokens = series_vs_batch(measured, "throughput")
    screened = (
        " A screened-out candidate's one short measurement at batch 1 is a point, not a line."
        if any(s.markers_only for s in tokens)
        else ""
    )
    memory = [s for s in series_vs_batch(measured, "memory_mb") if any(v is not None for v in s.y)]
    return [
        lines_figure(
            "ttft",
            "Time to first token vs prompt length",
            ttft,
            style,
            y_title="time to first token (ms)",
            x_title="prompt length (tokens)",
            log_y=_wide(ttft),
            caption="Median time from the prompt to the first generated token (the prefill and its choice), "
            "one sequence, at each prompt length measured.",
            absent=nothing,
        ),
        panels_figure(
            "itl",
            "Inter-token latency vs batch",
            [series_vs_batch(measured, m) for m in ("p50_ms", "p90_ms", "p99_ms")],
            style,
            titles=("p50", "p90", "p99"),
            y_title="inter-token latency (ms)",
            caption="Percentiles of the time between consecutive tokens over every decode step of every measured "
            "generation, at each number of concurrent sequences (log scales)." + screened,
            absent=nothing,
        ),
        lines_figure(
            "tokens",
            "Output tokens/s vs batch",
            tokens,
            style,
            y_title="output tokens/s",
            log_y=_wide(tokens),
            caption="Tokens generated per second over all concurrent sequences (batch × new tokens over the whole "
            "generation, the prefill included), at the longest prompt." + screened,
            absent=nothing,
        ),
        lines_figure(
            "memory",
            "Peak memory vs batch",
            memory,
            style,
            y_title="peak resident memory (MB)",
            caption="Peak resident memory of the candidate's process while each batch was generated (it grows "
            "with the KV cache).",
            absent="memory was not recorded",
        ),
        errors_figure(
            "correctness",
            "Teacher forcing: largest logits error per prompt",
            [e for c in report.candidates for e in c.errors],
            labels,
            caption="Largest absolute difference of the candidate's logits from the reference's at any step of the "
            "reference's greedy continuation, against the absolute tolerance (|): a cross failed, a hollow circle "
            "at the left edge matched exactly. The relative tolerance is in the hover.",
            absent="no candidate was judged against the reference",
        ),
    ]
