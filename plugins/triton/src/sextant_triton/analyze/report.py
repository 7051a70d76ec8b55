"""``report.html`` of an analysis, drawn with the optimize report's building blocks (``htmlkit``).

For a model that answers once per request: the summary sentence; throughput against p99 latency
for the default and the top configurations; throughput against concurrency; the latency breakdown
of the best and the default (client send/recv, queue, compute input/infer/output, from Triton's
statistics); the best throughput at each max batch size; every measurement in a sortable table.
For an LLM analysis (``--model-type llm``): the summary; output tokens/s, time to first token and
inter-token latency against concurrency; every measurement by tokens."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sextant.api import htmlkit as kit
from sextant.api import ranked

from sextant_triton import llmperf
from sextant_triton.analyze import llm as llm_view
from sextant_triton.analyze.confirm import config_of
from sextant_triton.analyze.records import Analysis, Best, GroupResult

if TYPE_CHECKING:
    from sextant_triton.analyze.settings import AnalyzeSettings

STAGES = (
    ("client send", "client_send_ms"),
    ("network + server send/recv", "network_ms"),
    ("queue", "queue_ms"),
    ("compute input", "compute_input_ms"),
    ("compute infer", "compute_infer_ms"),
    ("compute output", "compute_output_ms"),
    ("client recv", "client_recv_ms"),
)


def _shown(group: GroupResult, settings: AnalyzeSettings, best: Best) -> list[str]:
    """The default configuration and the top N, by label, the best (as the summary says) first."""
    labels: list[str] = [config_of(group.space, best.point)] if best.point is not None else []
    for point, _ in ranked(group.history, settings.objective, group.baseline):
        label = config_of(group.space, point)
        if label not in labels:
            labels.append(label)
        if len(labels) >= max(settings.top_n, 1):
            break
    return labels + (["default"] if "default" not in labels else [])


def _measured(group: GroupResult, shown: Sequence[str]) -> dict[str, list]:
    """Each shown configuration's measurements, by label."""
    by_label: dict[str, list] = {label: [] for label in shown}
    for point, record in group.history:
        label = config_of(group.space, point)
        if label in by_label and record.metrics:
            by_label[label].append(record.metrics)
    return by_label


#: an LLM analysis's curves against concurrency: id, title, metric, axis
LLM_CURVES = (
    ("tokens", "Output tokens/s against client concurrency", "throughput", "output tokens/s"),
    ("ttft", "Time to first token (p99) against client concurrency", "ttft_ms", "TTFT p99 (ms)"),
    ("itl", "Inter-token latency (p99) against client concurrency", "p99_ms", "ITL p99 (ms)"),
)


def _llm_figures(i: int, group: GroupResult, best: Best, settings: AnalyzeSettings) -> list[kit.Figure]:
    """An LLM analysis: output tokens/s, TTFT and ITL of the default and the top configurations
    over the concurrencies each was measured at."""
    shown = _shown(group, settings, best)
    style = kit.styles(shown, best=shown[0] if best.point else None, baseline="default")
    by_label = _measured(group, shown)
    figures = []
    for name, title, metric, axis in LLM_CURVES:
        series = []
        for label, ms in by_label.items():
            swept = sorted((m for m in ms if m.get("concurrency") and metric in m), key=lambda m: m["concurrency"])
            if swept:
                x, y = tuple(m["concurrency"] for m in swept), tuple(m[metric] for m in swept)
                series.append(kit.Series(label, x, y))
        figures.append(
            kit.lines_figure(
                f"{name}-{i}",
                title,
                series,
                style,
                y_title=axis,
                x_title="concurrency",
                caption="From perf_analyzer's per-response timestamps (sextant_triton.llmperf).",
                absent="nothing was measured at a concurrency",
            )
        )
    return figures


def _figures(i: int, group: GroupResult, best: Best, settings: AnalyzeSettings) -> list[kit.Figure]:
    if settings.model_type == "llm":
        return _llm_figures(i, group, best, settings)
    shown = _shown(group, settings, best)
    style = kit.styles(shown, best=shown[0] if best.point else None, baseline="default")
    by_label = _measured(group, shown)
    points = [
        (label, kit.Point(int(m.get("concurrency", 0)), m["p50_ms"], m["p99_ms"], m["throughput"]))
        for label, ms in by_label.items()
        for m in ms
    ]
    chosen = best.record.metrics if best.record and best.record.metrics else None
    star = (
        (shown[0], kit.Point(int(chosen.get("concurrency", 0)), chosen["p50_ms"], chosen["p99_ms"], chosen["throughput"]))
        if chosen
        else None
    )
    figures = [
        kit.tradeoff_figure(
            f"tradeoff-{i}",
            "Throughput against p99 latency",
            points,
            style,
            best=star,
            budget_ms=settings.objective.max_p99_ms,
            load_word="concurrency",
            caption="Each point is one configuration at one client load; up and left is better.",
        )
    ]
    series = []
    for label, ms in by_label.items():
        swept = sorted((m for m in ms if m.get("concurrency")), key=lambda m: m["concurrency"])
        if len(swept) > 1:
            series.append(
                kit.Series(label, tuple(m["concurrency"] for m in swept), tuple(m["throughput"] for m in swept))
            )
    figures.append(
        kit.lines_figure(
            f"concurrency-{i}",
            "Throughput against client concurrency",
            series,
            style,
            y_title="throughput (infer/s)",
            x_title="concurrency",
            caption="Each configuration swept over concurrency; the curve flattens where the server saturates.",
            absent="no configuration was measured at more than one concurrency",
        )
    )
    figures.append(_breakdown(i, [(label, by_label[label]) for label in shown if by_label[label]]))
    per_batch: dict[int, float] = {}
    for point, record in group.history:
        configs = group.space.configs(point)
        size = int(configs[-1].get("max_batch_size", 0))
        if record.metrics:
            per_batch[size] = max(per_batch.get(size, 0.0), record.metrics["throughput"])
    sizes = sorted(k for k in per_batch if k > 0)
    batch_series = (
        [kit.Series("best at this size", tuple(sizes), tuple(per_batch[s] for s in sizes))] if len(sizes) > 1 else []
    )
    figures.append(
        kit.lines_figure(
            f"batch-{i}",
            "Best throughput at each max batch size",
            batch_series,
            kit.styles(["best at this size"]),
            y_title="throughput (infer/s)",
            x_title="max_batch_size",
            absent="one max batch size was measured",
        )
    )
    return figures


def _breakdown(i: int, rows: Sequence[tuple[str, list]]) -> kit.Figure:
    """Stacked bars: where a request's time goes, at each shown configuration's best load."""
    title = "Latency breakdown (mean per request)"
    if not rows:
        return kit.Figure(f"breakdown-{i}", title, absent="nothing was measured")
    best = [(label, max(ms, key=lambda m: m["throughput"])) for label, ms in rows]
    palette = ("#9c755f", "#bab0ac", "#f28e2b", "#76b7b2", "#4e79a7", "#59a14f", "#edc948")
    data = [
        {
            "type": "bar",
            "orientation": "h",
            "name": name,
            "y": [label for label, _ in best],
            "x": [m.get(metric, 0.0) for _, m in best],
            "marker": {"color": color},
            "hovertemplate": f"{name}: %{{x:.3f}} ms<extra>%{{y}}</extra>",
        }
        for (name, metric), color in zip(STAGES, palette)
    ]
    layout = kit.base_layout(height=160 + 40 * len(best), legend_entries=len(STAGES))
    layout.update(barmode="stack", xaxis=kit.value_axis("ms"), yaxis={"automargin": True, "autorange": "reversed"})
    caption = "Client-side times from perf_analyzer; queue and compute from Triton's statistics API."
    return kit.Figure(f"breakdown-{i}", title, caption, tuple(data), layout)


#: the measurement table's metric columns: (heading, metric, format)
COLUMNS = (
    ("throughput (infer/s)", "throughput", "{:,.0f}"),
    ("p50 ms", "p50_ms", "{:.3f}"),
    ("p99 ms", "p99_ms", "{:.3f}"),
    ("memory MB", "memory_mb", "{:,.0f}"),
)
#: ... and an LLM analysis's, by tokens (:mod:`sextant_triton.llmperf`)
LLM_COLUMNS = (
    ("output tokens/s", "throughput", "{:,.1f}"),
    ("requests/s", "requests_per_s", "{:,.2f}"),
    ("TTFT p50 ms", "ttft_p50_ms", "{:.2f}"),
    ("TTFT p99 ms", "ttft_p99_ms", "{:.2f}"),
    ("ITL p50 ms", "p50_ms", "{:.3f}"),
    ("ITL p90 ms", "p90_ms", "{:.3f}"),
    ("ITL p99 ms", "p99_ms", "{:.3f}"),
    ("request p99 ms", "request_p99_ms", "{:.2f}"),
    ("memory MB", "memory_mb", "{:,.0f}"),
)


def _table(group: GroupResult, settings: AnalyzeSettings) -> str:
    """Every measurement of the group: its load, its metrics (by tokens for an LLM analysis), whether
    it meets the constraints, and why it failed or did not settle."""
    metrics = LLM_COLUMNS if settings.model_type == "llm" else COLUMNS
    columns = [
        kit.Column("configuration"),
        kit.Column("load"),
        *(kit.Column(name, True) for name, _, _ in metrics),
        kit.Column("meets constraints"),
        kit.Column("note"),
    ]
    rows = []
    for point, record in group.history:
        m = record.metrics or {}
        load = f"{m['request_rate']:g}/s" if m.get("request_rate") else f"c={m.get('concurrency', 0):g}" if m else ""
        ok = bool(record.metrics) and settings.objective.feasible(m)
        note = record.error or ("did not settle" if m and not m.get("stable", 1.0) else "")
        rows.append(
            [
                kit.text_cell(config_of(group.space, point)),
                kit.text_cell(load),
                *(kit.number_cell(m.get(metric), shown) for _, metric, shown in metrics),
                kit.text_cell("yes" if ok else "no", "" if ok else "bad"),
                kit.text_cell(note),
            ]
        )
    return kit.table(columns, rows)


def write(analysis: Analysis, settings: AnalyzeSettings, hardware: str, path: Path) -> Path:
    sections, figures = [], []
    for i, (group, best) in enumerate(zip(analysis.groups, analysis.best)):
        shown = _figures(i, group, best, settings)
        figures += shown
        plots = "".join(kit.plot_block(f) for f in shown)
        body = f"<p>{kit.esc(best.summary)}</p>" + plots
        body += f"<h3>Every measurement ({len(group.history)})</h3>" + _table(group, settings)
        sections.append(kit.Section(f"group-{i}", ", ".join(u.name for u in group.space.units), body))
    facts = [
        ("hardware", hardware),
        ("search", settings.search),
        ("objective", ", ".join(f"{k} x{v:g}" for k, v in settings.objective.weights.items())),
        (
            "constraints",
            llm_view.constraints_text(settings.objective)
            if settings.model_type == "llm"
            else settings.objective.constraints_text(),
        ),
        *([("token metrics", llmperf.method())] if settings.model_type == "llm" else []),
        ("measured by this run", str(analysis.measured)),
        ("found stored", str(analysis.reused)),
    ]
    sections.insert(0, kit.Section("summary", "Summary", kit.key_values(facts)))
    banners = tuple(kit.Banner("warn", kit.esc(e)) for e in analysis.events)
    banners += tuple(kit.Banner("good" if b.point else "bad", kit.esc(b.summary)) for b in analysis.best)
    page = kit.Page(
        "Serving analysis",
        ", ".join(u.name for g in analysis.groups for u in g.space.units),
        banners,
        tuple(sections),
        tuple(figures),
        kit.footer(kit.esc(str(analysis.output))),
    )
    path.write_text(kit.render_page(page))
    return path
