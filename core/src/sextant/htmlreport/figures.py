"""Generic plots as plotly figure specifications: plain dicts of traces and layout, drawn in the
browser by the plotly.js bundle the page embeds.

Building the dicts needs no plotting library in Python (so a 100-candidate report takes
milliseconds, and ``sextant --help`` imports nothing of plotly); the tests check every figure
against plotly's own schema. The builders (:func:`lines_figure`, :func:`paired_lines_figure`,
:func:`tradeoff_figure`) take :class:`~sextant.htmlreport.data.Series` and
labelled points (:class:`~sextant.records.Point`), so an optimize run (``sextant.htmlreport.plots``) and
``sextant analyze`` draw their measurements with the same code.

Each series keeps one colour in every plot. With many series the most important ones get colours
and legend entries; the rest are drawn thin and grey as one legend group ("others"), still named
on hover.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sextant.htmlreport.data import Labelled, Series, front

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#59a14f",
    "#b07aa1",
    "#76b7b2",
    "#edc948",
    "#9c755f",
    "#ff9da7",
    "#17becf",
    "#bcbd22",
    "#8c564b",
)
OTHER = "#b8b8b8"
OTHERS = "others"
FONT = {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12, "color": "#222"}


@dataclass(frozen=True)
class Figure:
    """One plot: a plotly figure (``data``, ``layout``) with an id for the page, a title, and a
    caption saying how to read it. ``absent`` says why there is nothing to draw (no data)."""

    id: str
    title: str
    caption: str = ""
    data: tuple[Mapping[str, Any], ...] = ()
    layout: Mapping[str, Any] = field(default_factory=dict)
    absent: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "data": list(self.data), "layout": dict(self.layout)}


@dataclass(frozen=True)
class Style:
    """How one named series is drawn: its colour, whether it is labelled in the legend, its label."""

    color: str
    label: str
    legend: bool = True
    width: float = 2.0
    dash: str = "solid"
    group: str | None = None  # legend group (default: the series name)


def styles(names: Sequence[str], *, best: str | None = None, baseline: str | None = None) -> dict[str, Style]:
    """A style per name: ``names`` come most important first; the first :data:`PALETTE`-many get
    colours (the best drawn thick, the baseline dashed), the rest grey in one legend group."""
    ordered = sorted(names, key=lambda n: (n != best, n != baseline))
    colored = ordered if len(ordered) <= len(PALETTE) else ordered[: len(PALETTE) - 2]
    out: dict[str, Style] = {}
    for i, name in enumerate(colored):
        label = ("★ " if name == best else "") + name + (" (baseline)" if name == baseline else "")
        out[name] = Style(
            PALETTE[i % len(PALETTE)],
            label,
            width=3.0 if name == best else 2.0,
            dash="dash" if name == baseline and name != best else "solid",
        )
    rest = [n for n in ordered if n not in out]
    for i, name in enumerate(rest):
        out[name] = Style(OTHER, f"other candidates ({len(rest)})", legend=i == 0, width=1.0, group=OTHERS)
    return out


# -- axes and layout ---------------------------------------------------------------------------------


def batch_axis(batches: Sequence[float], title: str = "batch size") -> dict[str, Any]:
    """A log-2 axis: log scale with a tick at each power of two in range."""
    top = max(batches, default=1)
    ticks = [2**i for i in range(0, max(1, math.ceil(math.log2(max(top, 1)))) + 1)]
    return {
        "type": "log",
        "tickvals": ticks,
        "ticktext": [str(t) for t in ticks],
        "title": {"text": title},
        "gridcolor": "#e6e6e6",
        "zeroline": False,
    }


def value_axis(title: str, log: bool = False, values: Sequence[float | None] = ()) -> dict[str, Any]:
    """A linear axis from zero, or a log one; a log axis spanning over a decade or so of ``values``
    is labelled at powers of ten only (plotly's default labels 2 and 5 of each decade too)."""
    axis: dict[str, Any] = {"title": {"text": title}, "gridcolor": "#e6e6e6", "zeroline": False}
    if not log:
        axis["rangemode"] = "tozero"
        return axis
    axis["type"] = "log"
    positive = [v for v in values if v is not None and v > 0]
    if positive and math.log10(max(positive) / min(positive)) >= 1.2:
        axis["dtick"] = 1
        axis["minor"] = {"showgrid": True, "gridcolor": "#f3f3f3"}
    return axis


def base_layout(*, height: int = 440, legend_entries: int = 0) -> dict[str, Any]:
    """White background, a legend under the plot, room for it."""
    return {
        "height": height + 22 * math.ceil(legend_entries / 2),
        "margin": {"l": 70, "r": 20, "t": 20, "b": 50},
        "font": FONT,
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "hovermode": "closest",
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": -0.18, "yanchor": "top"},
        "showlegend": True,
    }


def line_trace(
    series: Series, style: Style, *, xaxis: str = "x", yaxis: str = "y", legend: bool | None = None
) -> dict[str, Any]:
    trace: dict[str, Any] = {
        "type": "scatter",
        "mode": "markers" if series.markers_only else "lines+markers",
        "name": style.label,
        "x": list(series.x),
        "y": list(series.y),
        "xaxis": xaxis,
        "yaxis": yaxis,
        "line": {"color": style.color, "width": style.width, "dash": style.dash},
        "marker": {"color": style.color, "size": 7 if style.group != OTHERS else 4},
        "legendgroup": style.group or series.name,
        "showlegend": style.legend if legend is None else legend and style.legend,
        "connectgaps": series.name != OTHERS,  # the merged grey trace's gaps separate its lines
    }
    if series.text:
        trace["text"] = list(series.text)
        extra = "" if series.name == OTHERS else escape_text(series.name)
        trace["hovertemplate"] = "%{text}<extra>" + extra + "</extra>"
    return trace


def unstable_trace(
    series: Sequence[Series], *, xaxis: str = "x", yaxis: str = "y", legend: bool = True
) -> dict[str, Any] | None:
    """A ring around each point marked hollow (a measurement that did not settle), one legend entry."""
    marked = [(s, i) for s in series for i, hollow in enumerate(s.hollow) if hollow and s.y[i] is not None]
    if not marked:
        return None
    return {
        "type": "scatter",
        "mode": "markers",
        "name": "did not settle",
        "x": [s.x[i] for s, i in marked],
        "y": [s.y[i] for s, i in marked],
        "text": [f"{s.name}: {s.text[i]}" if s.text else s.name for s, i in marked],
        "hovertemplate": "%{text}<extra>unstable</extra>",
        "xaxis": xaxis,
        "yaxis": yaxis,
        "marker": {"symbol": "circle-open", "size": 14, "color": "#555", "line": {"width": 1.5, "color": "#555"}},
        "legendgroup": "unstable",
        "showlegend": legend,
    }


def escape_text(text: str) -> str:
    """Text plotly shows as HTML-like labels: angle brackets and ampersands escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- generic builders ----------------------------------------------------------------------------------


def lines_figure(
    fig_id: str,
    title: str,
    series: Sequence[Series],
    style: Mapping[str, Style],
    *,
    y_title: str,
    log_y: bool = False,
    caption: str = "",
    absent: str = "nothing was measured",
    x_title: str = "batch size",
) -> Figure:
    """One line per series against batch size (or ``x_title``: any doubling quantity; log-2 x axis)."""
    if not series:
        return Figure(fig_id, title, caption, absent=absent)
    layout = base_layout(legend_entries=sum(style[s.name].legend for s in series))
    layout["xaxis"] = batch_axis([x for s in series for x in s.x], x_title)
    layout["yaxis"] = value_axis(y_title, log=log_y, values=[y for s in series for y in s.y])
    data = [line_trace(s, how) for s, how in _drawing_order(series, style)]
    data += [t for t in (unstable_trace(series),) if t is not None]
    return Figure(fig_id, title, caption, tuple(data), layout)


def paired_lines_figure(
    fig_id: str,
    title: str,
    left: Sequence[Series],
    right: Sequence[Series],
    style: Mapping[str, Style],
    *,
    titles: tuple[str, str],
    y_title: str,
    log_y: bool = True,
    caption: str = "",
    absent: str = "nothing was measured",
) -> Figure:
    """Two side-by-side panels against batch size sharing one legend (a series is one entry)."""
    return panels_figure(
        fig_id, title, (left, right), style, titles=titles, y_title=y_title, log_y=log_y, caption=caption, absent=absent
    )


def panels_figure(
    fig_id: str,
    title: str,
    panels: Sequence[Sequence[Series]],
    style: Mapping[str, Style],
    *,
    titles: Sequence[str],
    y_title: str,
    log_y: bool = True,
    caption: str = "",
    absent: str = "nothing was measured",
) -> Figure:
    """Side-by-side panels against batch size sharing one legend (the first panel's series are the
    entries; a series keeps its colour in every panel)."""
    if not panels or not panels[0]:
        return Figure(fig_id, title, caption, absent=absent)
    first = panels[0]
    layout = base_layout(legend_entries=sum(style[s.name].legend for s in first))
    batches = [x for s in first for x in s.x]
    count, gap = len(panels), 0.06
    width = (1.0 - gap * (count - 1)) / count
    data: list[dict[str, Any]] = []
    annotations = []
    ringed = False
    for i, (series, text) in enumerate(zip(panels, titles)):
        x, y = ("x", "y") if i == 0 else (f"x{i + 1}", f"y{i + 1}")
        start = i * (width + gap)
        layout["xaxis" if i == 0 else f"xaxis{i + 1}"] = {
            **batch_axis(batches),
            "domain": [round(start, 4), round(start + width, 4)],
            **({"anchor": y} if i else {}),
        }
        layout["yaxis" if i == 0 else f"yaxis{i + 1}"] = {
            **value_axis(y_title, log=log_y, values=[v for s in series for v in s.y]),
            **({"anchor": x} if i else {}),
        }
        annotations.append(_panel_title(text, f"{x} domain"))
        data += [line_trace(s, how, xaxis=x, yaxis=y, legend=i == 0) for s, how in _drawing_order(series, style)]
        ring = unstable_trace(series, xaxis=x, yaxis=y, legend=not ringed)
        if ring is not None:
            data.append(ring)
            ringed = True
    layout["annotations"] = annotations
    layout["margin"] = {**layout["margin"], "t": 36}
    return Figure(fig_id, title, caption, tuple(data), layout)


def _panel_title(text: str, xref: str) -> dict[str, Any]:
    return {
        "text": f"<b>{escape_text(text)}</b>",
        "xref": xref,
        "yref": "paper",
        "x": 0.5,
        "y": 1.0,
        "yanchor": "bottom",
        "showarrow": False,
    }


def _drawing_order(series: Sequence[Series], style: Mapping[str, Style]) -> list[tuple[Series, Style]]:
    """What to draw, in order: the grey series first (under the others), merged into one trace
    (lines separated by gaps; the browser draws one trace far faster than a hundred), then the
    coloured ones. The legend keeps colour order."""
    grey = [s for s in series if style[s.name].group == OTHERS]
    colored = [(s, style[s.name]) for s in series if style[s.name].group != OTHERS]
    if not grey:
        return colored
    grey = [_apart(s) if s.markers_only else s for s in grey]
    merged = Series(
        OTHERS,
        x=tuple(v for s in grey for v in (*s.x, None)),
        y=tuple(v for s in grey for v in (*s.y, None)),
        text=tuple(t for s in grey for t in (*(f"{s.name}: {line}" for line in s.text), ""))
        if all(s.text for s in grey)
        else (),
    )
    label = f"other candidates ({len(grey)})"
    return [(merged, Style(OTHER, label, width=1.0, group=OTHERS)), *colored]


def _apart(series: Series) -> Series:
    """A markers-only series with a gap after each point, so a merged line trace leaves them unjoined."""

    def gaps(values: Sequence[Any], fill: Any) -> tuple[Any, ...]:
        return tuple(v for value in values for v in (value, fill))[:-1]

    return replace(
        series,
        x=gaps(series.x, None),
        y=gaps(series.y, None),
        text=gaps(series.text, "") if series.text else (),
        hollow=gaps(series.hollow, False) if series.hollow else (),
    )


def tradeoff_figure(
    fig_id: str,
    title: str,
    points: Sequence[Labelled],
    style: Mapping[str, Style],
    *,
    best: Labelled | None = None,
    budget_ms: float | None = None,
    caption: str = "",
    absent: str = "nothing was measured",
    load_word: str = "batch",
) -> Figure:
    """Throughput against p99 latency: every point (by series, its label), the front no point beats
    on both, the chosen point starred, the latency budget as a vertical line."""
    if not points:
        return Figure(fig_id, title, caption, absent=absent)
    by_name: dict[str, list[Labelled]] = {}
    for labelled in points:
        by_name.setdefault(labelled[0], []).append(labelled)
    layout = base_layout(legend_entries=sum(style[n].legend for n in by_name) + 2)
    layout["xaxis"] = value_axis("p99 latency (ms)", log=True, values=[p.p99_ms for _, p in points])
    layout["yaxis"] = value_axis("throughput (samples/s)")
    data: list[dict[str, Any]] = []
    grey = [p for name in by_name if style[name].group == OTHERS for p in by_name[name]]
    groups: list[tuple[str, Style, list[Labelled]]] = []
    if grey:
        label = f"other candidates ({sum(style[n].group == OTHERS for n in by_name)})"
        groups.append((OTHERS, Style(OTHER, label, width=1.0, group=OTHERS), grey))
    groups += [(name, style[name], pts) for name, pts in by_name.items() if style[name].group != OTHERS]
    for name, s, pts in groups:
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": s.label,
                "x": [p.p99_ms for _, p in pts],
                "y": [p.throughput for _, p in pts],
                "text": [
                    f"{label}: {load_word} {p.batch}, {p.throughput:,.0f}/s, p50 {p.p50_ms:.3f} ms, p99 {p.p99_ms:.3f} ms"
                    for label, p in pts
                ],
                "hovertemplate": "%{text}<extra></extra>",
                "marker": {"color": s.color, "size": 8 if s.group != OTHERS else 5, "opacity": 0.85},
                "legendgroup": s.group or name,
                "showlegend": s.legend,
            }
        )
    edge = front([p for _, p in points])
    data.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": "trade-off front",
            "x": [p.p99_ms for p in edge],
            "y": [p.throughput for p in edge],
            "line": {"color": "#333", "width": 1.5, "dash": "dot", "shape": "hv"},
            "hoverinfo": "skip",
        }
    )
    if best is not None:
        chosen, best_point = best
        data.append(
            {
                "type": "scatter",
                "mode": "markers+text",
                "name": "selected",
                "x": [best_point.p99_ms],
                "y": [best_point.throughput],
                "text": ["best"],
                "textposition": "top center",
                "hovertemplate": f"selected: {escape_text(chosen)} at {load_word} {best_point.batch}<extra></extra>",
                "marker": {"symbol": "star", "size": 18, "color": "#ffd400", "line": {"color": "#222", "width": 1.5}},
            }
        )
    if budget_ms is not None:
        layout["shapes"] = [
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": budget_ms,
                "x1": budget_ms,
                "y0": 0,
                "y1": 1,
                "line": {"color": "#c0392b", "width": 1.5, "dash": "dash"},
            }
        ]
        layout["annotations"] = [
            {
                "text": f"latency budget {budget_ms:g} ms",
                "xref": "x",
                "yref": "paper",
                "x": math.log10(budget_ms),
                "y": 1,
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"color": "#c0392b"},
            }
        ]
    return Figure(fig_id, title, caption, tuple(data), layout)
