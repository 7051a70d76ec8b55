"""The plots of an optimize run: :func:`run_figures` assembles them from a
:class:`~sextant.htmlreport.data.RunReport` with the generic builders of
:mod:`sextant.htmlreport.figures`, adding the run's own: correctness errors per output against
their tolerance, and stage times.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sextant.htmlreport.data import Candidate, Labelled, OutputError, RunReport, series_vs_batch
from sextant.htmlreport.figures import (
    OTHERS,
    PALETTE,
    Figure,
    base_layout,
    escape_text,
    lines_figure,
    paired_lines_figure,
    styles,
    tradeoff_figure,
    value_axis,
)
from sextant.records import Point

__all__ = ["OTHERS", "PALETTE", "Figure", "run_figures"]


def errors_figure(
    fig_id: str,
    title: str,
    errors: Sequence[OutputError],
    labels: Mapping[str, str],
    *,
    caption: str = "",
    absent: str = "no output was compared",
) -> Figure:
    """The largest absolute error of each output of each candidate (log scale, one row per
    candidate), with the absolute tolerance it was judged by. An exact match sits at the left
    edge, hollow; a failed output is a cross."""
    measured = [e for e in errors if e.max_abs_error is not None]
    if not measured:
        return Figure(fig_id, title, caption, absent=absent)
    positive = [e.max_abs_error for e in measured if e.max_abs_error] + [e.atol for e in measured if e.atol]
    floor = 10 ** math.floor(math.log10(min(positive))) / 10 if positive else 1e-9
    rows = list(dict.fromkeys(e.candidate for e in measured))
    outputs = list(dict.fromkeys(e.output for e in measured))
    layout = base_layout(height=110 + 26 * len(rows), legend_entries=len(outputs) + 1)
    layout["margin"] = {**layout["margin"], "l": 20}
    layout["xaxis"] = value_axis("largest absolute error (log scale)", log=True, values=[floor, *positive])
    layout["yaxis"] = {
        "type": "category",
        "categoryorder": "array",
        "categoryarray": [labels.get(r, r) for r in rows],
        "autorange": "reversed",
        "automargin": True,
        "gridcolor": "#f0f0f0",
    }
    data: list[dict[str, Any]] = []
    for i, output in enumerate(outputs):
        mine = [e for e in measured if e.output == output]
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"output {output}",
                "x": [e.max_abs_error or floor for e in mine],
                "y": [labels.get(e.candidate, e.candidate) for e in mine],
                "text": [_error_text(e) for e in mine],
                "hovertemplate": "%{text}<extra>" + escape_text(output) + "</extra>",
                "marker": {
                    "color": PALETTE[i % len(PALETTE)],
                    "size": 10,
                    "symbol": [
                        "x" if not e.passed else "circle-open" if not e.max_abs_error else "circle" for e in mine
                    ],
                    "line": {"width": 2, "color": PALETTE[i % len(PALETTE)]},
                },
            }
        )
    judged = [e for e in measured if e.atol is not None]
    if judged:
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "absolute tolerance",
                "x": [e.atol for e in judged],
                "y": [labels.get(e.candidate, e.candidate) for e in judged],
                "text": [
                    f"atol {e.atol:g}, rtol {e.rtol:g}" if e.rtol is not None else f"atol {e.atol:g}" for e in judged
                ],
                "hovertemplate": "%{text}<extra>tolerance</extra>",
                "marker": {
                    "symbol": "line-ns-open",
                    "size": 18,
                    "color": "#222",
                    "line": {"width": 2, "color": "#222"},
                },
            }
        )
    return Figure(fig_id, title, caption, tuple(data), layout)


def _error_text(e: OutputError) -> str:
    parts = [
        "exact" if e.max_abs_error == 0 else f"max abs err {e.max_abs_error:.2e}",
        f"max rel err {e.max_rel_error:.2e}" if e.max_rel_error is not None else "",
        f"atol needed {e.atol_needed:.2e}" if e.atol_needed else "",
        f"{e.mismatched:,} of {e.elements:,} elements outside" if e.mismatched else "",
        e.problem or "",
        "passed" if e.passed else "FAILED",
    ]
    return ", ".join(p for p in parts if p)


def stages_figure(
    fig_id: str,
    title: str,
    stages: Sequence[tuple[str, int, Mapping[str, float]]],
    labels: Mapping[str, str],
    *,
    caption: str = "",
    absent: str = "no runner recorded stage times",
) -> Figure:
    """Stacked bars: milliseconds per call in each stage, one bar per (name, batch)."""
    if not stages:
        return Figure(fig_id, title, caption, absent=absent)
    names = list(dict.fromkeys(stage for _, _, times in stages for stage in times))
    layout = base_layout(height=110 + 30 * len(stages), legend_entries=len(names))
    layout["barmode"] = "stack"
    layout["margin"] = {**layout["margin"], "l": 20}
    layout["xaxis"] = value_axis("milliseconds per call")
    layout["yaxis"] = {"type": "category", "autorange": "reversed", "automargin": True}
    data = []
    for i, stage in enumerate(names):
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": stage,
                "x": [times.get(stage, 0.0) for _, _, times in stages],
                "y": [f"{labels.get(name, name)} @{batch}" for name, batch, _ in stages],
                "hovertemplate": f"{escape_text(stage)}: " + "%{x:.3f} ms<extra>%{y}</extra>",
                "marker": {"color": PALETTE[i % len(PALETTE)]},
            }
        )
    return Figure(fig_id, title, caption, tuple(data), layout)


# -- an optimize run --------------------------------------------------------------------------------


def run_figures(report: RunReport) -> list[Figure]:
    """The plots of one optimize run, in page order."""
    profiled = [c for c in report.candidates if c.points]
    style = styles(_importance(report), best=report.best, baseline=report.baseline)
    labels = {c.id: ("★ " if c.best else "") + c.id for c in report.candidates}
    nothing = "no candidate was profiled" + (f" ({report.no_selection_reason})" if report.no_selection_reason else "")
    unstable = (
        " A ring marks a measurement that did not settle (its windows disagreed by more than the profiler's limit)."
    )
    throughput = series_vs_batch(profiled, "throughput")
    values = [y for s in throughput for y in s.y if y]
    wide = bool(values) and max(values) >= 20 * min(values)  # a linear axis would flatten the slow ones on 0
    screened = " A screened-out candidate's two short measurements are points, not a line: it was not swept."
    figures = [
        lines_figure(
            "throughput",
            "Throughput vs batch size",
            throughput,
            style,
            y_title="throughput (samples/s)",
            log_y=wide,
            caption="Samples per second at each batch size profiled (log-2 axis"
            + (", and a log throughput axis: the values span over 20×)." if wide else ").")
            + unstable
            + (screened if any(s.markers_only for s in throughput) else ""),
            absent=nothing,
        ),
        paired_lines_figure(
            "latency",
            "Latency vs batch size",
            series_vs_batch(profiled, "p50_ms"),
            series_vs_batch(profiled, "p99_ms"),
            style,
            titles=("p50", "p99"),
            y_title="latency per call (ms)",
            caption="Median and 99th-percentile time of one call at each batch size (log scales).",
            absent=nothing,
        ),
        tradeoff_figure(
            "tradeoff",
            "Throughput vs p99 latency",
            report.points,
            style,
            best=_best_point(report),
            budget_ms=report.goal.max_p99_ms if report.goal else None,
            caption="Every profile point; the dotted line is the front no point beats on both, the star the "
            "selected configuration.",
            absent=nothing,
        ),
        errors_figure(
            "correctness",
            "Correctness: largest error per output",
            [e for c in report.candidates for e in c.errors],
            labels,
            caption="Largest absolute difference from the reference over every correctness batch, against the "
            "absolute tolerance (|): a cross failed, a hollow circle at the left edge matched exactly. "
            "The comparator also allows a relative tolerance (in the hover).",
            absent="no candidate's outputs were compared with the reference",
        ),
    ]
    stages = [
        (c.id, p.batch, p.stages_ms) for c in profiled for p in [_stage_point(c)] if p is not None and p.stages_ms
    ]
    figures.append(
        stages_figure(
            "stages",
            "Copy and compute time per call",
            stages,
            labels,
            caption="Mean time per call in each stage the runner timed, at the candidate's best batch size.",
        )
    )
    memory = [s for s in series_vs_batch(profiled, "memory_mb") if any(v is not None for v in s.y)]
    figures.append(
        lines_figure(
            "memory",
            "Peak memory vs batch size",
            memory,
            style,
            y_title="peak resident memory (MB)",
            caption="Peak resident memory of the candidate's process while each batch size was measured.",
            absent="memory was not recorded (a package from an earlier sextant)",
        )
    )
    device = [s for s in series_vs_batch(profiled, "device_memory_mb") if any(v is not None for v in s.y)]
    if device:
        figures.append(
            lines_figure(
                "device-memory",
                "Peak GPU memory vs batch size",
                device,
                style,
                y_title="peak GPU memory (MB)",
                caption="Peak memory allocated on the GPU while each batch size was measured.",
            )
        )
    return figures


def _importance(report: RunReport) -> list[str]:
    """Candidates with points, most important first: the ranking, then the others in table order."""
    ranked = sorted((c for c in report.candidates if c.points), key=lambda c: (c.rank is None, c.rank or 0))
    return [c.id for c in ranked]


def _best_point(report: RunReport) -> Labelled | None:
    best = report.best_candidate
    return (best.id, best.best_point) if best is not None and best.best_point is not None else None


def _stage_point(candidate: Candidate) -> Point | None:
    """The point whose stage times a candidate shows: its best, else its last with stage times."""
    best = candidate.best_point
    if best is not None and best.stages_ms:
        return best
    timed = [p for p in candidate.points if p.stages_ms]
    return timed[-1] if timed else None
