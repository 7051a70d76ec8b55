"""One self-contained HTML page: sections of HTML, plots drawn by the embedded plotly.js, sortable
tables, a print layout. Nothing is fetched: the styles, the script, the figures and plotly.js are
all inside the file.

The page's script draws every figure, then adds ``<div id="report-ready" data-plots="N" data-ms="T">``
(T: milliseconds since navigation started); any script error is shown at the top of the page in
``#script-errors`` (so a browser test, or a person, sees it). This module knows nothing of optimize runs: a :class:`Page` is a title, banners
and sections; ``sextant analyze`` builds its own.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from string import Template
from typing import Any

from sextant.htmlreport.bundle import Bundle
from sextant.htmlreport.figures import Figure


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


@dataclass(frozen=True)
class Banner:
    """A line at the top of the page; ``kind`` is ``good``, ``warn`` or ``bad``."""

    kind: str
    html: str


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    html: str


@dataclass(frozen=True)
class Page:
    title: str
    subtitle: str
    banners: tuple[Banner, ...]
    sections: tuple[Section, ...]
    figures: tuple[Figure, ...]
    footer: str
    plots_missing: str | None = None  # why the page has no plots, with what to run


# -- building blocks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A table column: its heading, whether it sorts as numbers, and an optional tooltip."""

    title: str
    numeric: bool = False
    help: str = ""


@dataclass(frozen=True)
class Cell:
    """A table cell: its HTML, the value it sorts by, and optional classes and tooltip."""

    html: str
    sort: Any = None
    css: str = ""
    title: str = ""


def text_cell(value: Any, css: str = "") -> Cell:
    return Cell(esc(value) if value is not None else "", value if value is not None else "", css)


def number_cell(value: float | None, fmt: str = "{:,.3g}") -> Cell:
    if value is None:
        return Cell("", None, "num")
    return Cell(esc(fmt.format(value)), value, "num")


def table(columns: Sequence[Column], rows: Iterable[Sequence[Cell]], *, css: str = "", sortable: bool = True) -> str:
    """An HTML table; with ``sortable``, clicking a heading sorts by that column (again: reversed)."""
    head = "".join(
        f'<th scope="col" data-type="{"num" if c.numeric else "text"}"'
        + (f' title="{esc(c.help)}"' if c.help else "")
        + f">{esc(c.title)}</th>"
        for c in columns
    )
    body = []
    for row in rows:
        cells = []
        for cell in row:
            attrs = f' data-v="{esc(_sort_key(cell.sort))}"'
            if cell.css:
                attrs += f' class="{esc(cell.css)}"'
            if cell.title:
                attrs += f' title="{esc(cell.title)}"'
            cells.append(f"<td{attrs}>{cell.html}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    classes = " ".join(c for c in ("data", "sortable" if sortable else "", css) if c)
    return (
        f'<div class="table-wrap"><table class="{classes}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _sort_key(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(float(value))
    return str(value)


def key_values(items: Iterable[tuple[str, str]]) -> str:
    """A definition list; values are HTML."""
    return '<dl class="kv">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def not_recorded(what: str = "") -> str:
    return f'<span class="nr">not recorded{esc(" " + what) if what else ""}</span>'


def plot_block(figure: Figure) -> str:
    """Where a figure goes on the page; an absent one says why there is nothing to draw."""
    caption = f"<figcaption>{esc(figure.caption)}</figcaption>" if figure.caption else ""
    if figure.absent is not None:
        return (
            f'<figure class="plot-block absent" id="fig-{esc(figure.id)}"><h3>{esc(figure.title)}</h3>'
            f'<p class="absent-why">Nothing to plot: {esc(figure.absent)}.</p></figure>'
        )
    return (
        f'<figure class="plot-block" id="fig-{esc(figure.id)}"><h3>{esc(figure.title)}</h3>'
        f'<div class="plot" id="plot-{esc(figure.id)}" data-figure="{esc(figure.id)}">'
        f'<p class="plot-loading">drawing…</p></div>{caption}</figure>'
    )


def data_link(name: str, text: str, mime: str = "text/csv") -> str:
    """A link that downloads ``text`` as the file ``name`` (a base64 data URL: no script needed)."""
    import base64

    payload = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return (
        f'<a class="download" download="{esc(name)}" href="data:{mime};charset=utf-8;base64,{payload}">{esc(name)}</a>'
    )


# -- the page --------------------------------------------------------------------------------------------


def render(page: Page, bundle: Bundle | None) -> str:
    """The page as one HTML document."""
    drawable = [f for f in page.figures if f.absent is None]
    banners = "".join(f'<p class="banner {esc(b.kind)}">{b.html}</p>' for b in page.banners)
    if page.plots_missing:
        banners += f'<p class="banner warn">This page has no plots: {esc(page.plots_missing)}.</p>'
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in page.sections)
    sections = "".join(f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>{s.html}</section>' for s in page.sections)
    figures = [f.to_json() for f in drawable] if bundle is not None else []
    packed = (
        f'<script id="plotly-bundle" type="application/octet-stream" data-version="{esc(bundle.js_version)}">'
        f"{bundle.packed}</script>"
        if bundle is not None and drawable
        else ""
    )
    return _TEMPLATE.substitute(
        title=esc(page.title),
        subtitle=esc(page.subtitle),
        style=_STYLE,
        guard=_GUARD,
        banners=banners,
        nav=nav,
        sections=sections,
        footer=page.footer,
        figures=_json_script(figures),
        bundle=packed,
        script=_SCRIPT,
    )


def _json_script(value: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>`` or ``<!--`` can end it early)."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_TEMPLATE = Template(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="sextant">
<title>$title</title>
<style>$style</style>
<script>$guard</script>
</head>
<body>
<header>
<h1>$title</h1>
<p class="subtitle">$subtitle</p>
<div id="script-errors" class="banner bad" hidden><strong>This page hit script errors:</strong><ul></ul></div>
$banners
<nav>$nav</nav>
</header>
<main>
$sections
</main>
<footer>$footer</footer>
<script id="figures" type="application/json">$figures</script>
$bundle
<script>$script</script>
</body>
</html>
"""
)

_STYLE = """
:root { --fg: #1d1d1f; --muted: #666; --line: #e3e3e3; --bg-soft: #f6f7f9; --good: #1e7d34; --warn: #9a6700;
  --bad: #b3261e; --accent: #4e79a7; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header, main, footer { max-width: 1240px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 18px; }
h1 { font-size: 24px; margin: 0 0 2px; }
h2 { font-size: 19px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 0 0 6px; }
.subtitle { color: var(--muted); margin: 0 0 10px; }
nav { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 10px 0 0; font-size: 13px; }
nav a, a { color: var(--accent); }
.banner { margin: 8px 0; padding: 9px 12px; border-radius: 6px; border-left: 5px solid; }
.banner.good { background: #eef7f0; border-color: var(--good); }
.banner.warn { background: #fff7e0; border-color: #d4a72c; }
.banner.bad { background: #fdecea; border-color: var(--bad); }
.banner ul { margin: 4px 0 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 12px; }
.card { background: var(--bg-soft); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.kv { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; margin: 0; }
.kv dt { color: var(--muted); }
.kv dd { margin: 0; overflow-wrap: anywhere; }
.nr { color: var(--muted); font-style: italic; }
.id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.plots { display: grid; grid-template-columns: 1fr; gap: 18px; }
.plot-block { margin: 0; padding: 10px 12px; border: 1px solid var(--line); border-radius: 8px; break-inside: avoid; }
.plot { min-height: 120px; width: 100%; }
.plot-loading, .absent-why { color: var(--muted); }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 4px; }
.table-wrap { overflow-x: auto; }
table.data { border-collapse: collapse; width: 100%; font-size: 13px; }
table.data th, table.data td { padding: 4px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
table.data th { background: var(--bg-soft); position: sticky; top: 0; white-space: nowrap; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #aaa; font-size: 11px; }
table.sortable th[aria-sort="ascending"]::after { content: " \\2191"; color: var(--fg); }
table.sortable th[aria-sort="descending"]::after { content: " \\2193"; color: var(--fg); }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.best td { background: #fffbe6; font-weight: 600; }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px; font-weight: 600; white-space: nowrap; }
.badge.ok { background: #dff3e4; color: var(--good); }
.badge.failed { background: #fdecea; color: var(--bad); }
.badge.incorrect, .badge.rejected { background: #fff0d6; color: var(--warn); }
.badge.skipped, .badge.duplicate, .badge.pending, .badge.profiling { background: #eee; color: #555; }
.tag { font-size: 11px; color: var(--muted); border: 1px solid var(--line); border-radius: 8px; padding: 0 5px; }
.problem { border: 1px solid var(--line); border-left: 4px solid var(--bad); border-radius: 6px; padding: 8px 12px; margin: 10px 0; }
.problem.incorrect, .problem.rejected { border-left-color: #d4a72c; }
.reason { white-space: pre-wrap; overflow-wrap: anywhere; margin: 4px 0; }
pre.log { background: #1f2328; color: #e6edf3; padding: 8px 10px; border-radius: 6px; max-height: 320px; overflow: auto;
  font-size: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
details > summary { cursor: pointer; color: var(--accent); }
.downloads a { margin-right: 14px; }
footer { color: var(--muted); font-size: 12px; margin-top: 30px; padding-bottom: 30px; border-top: 1px solid var(--line); padding-top: 10px; }
@media print {
  @page { margin: 14mm; }
  body { font-size: 11px; }
  header, main, footer { max-width: none; padding: 0; }
  nav, .download, .modebar-container { display: none !important; }
  h2 { break-after: avoid; }
  .plot-block, .problem, .card { break-inside: avoid; }
  table.data th { position: static; }
  pre.log { max-height: none; background: #f4f4f4; color: #000; }
  details:not([open]) > :not(summary) { display: none; }
}
"""

# installed first, in <head>: every later error (plotly's own included) is shown and counted
_GUARD = """
window.__reportErrors = [];
(function () {
  function flush() {
    var box = document.getElementById("script-errors");
    if (!box) return;
    var list = box.querySelector("ul");
    while (list.children.length < window.__reportErrors.length) {
      var li = document.createElement("li");
      li.textContent = window.__reportErrors[list.children.length];
      list.appendChild(li);
    }
    box.hidden = window.__reportErrors.length === 0;
  }
  window.__reportError = function (message) { window.__reportErrors.push(String(message)); flush(); };
  document.addEventListener("DOMContentLoaded", flush);
  window.addEventListener("error", function (e) {
    window.__reportError((e.message || "error") + (e.filename ? " (" + e.filename + ":" + e.lineno + ")" : ""));
  });
  window.addEventListener("unhandledrejection", function (e) {
    var r = e.reason;
    window.__reportError("unhandled rejection: " + (r && r.message ? r.message : String(r)));
  });
})();
"""

_SCRIPT = """
(function () {
  "use strict";
  var CONFIG = { responsive: true, displaylogo: false, scrollZoom: false,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"],
    toImageButtonOptions: { format: "svg" } };

  function sortBy(th) {
    var table = th.closest("table"), body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute("data-type") === "num";
    var descending = th.getAttribute("aria-sort") !== "descending" && (th.getAttribute("aria-sort") === "ascending" || numeric);
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[index].getAttribute("data-v"), y = b.cells[index].getAttribute("data-v");
      if (x === "" && y !== "") return 1;
      if (y === "" && x !== "") return -1;
      var c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return descending ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.sortable th").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });

  function ready(drawn, note) {
    var marker = document.createElement("div");
    marker.id = "report-ready";
    marker.hidden = true;
    marker.setAttribute("data-plots", String(drawn));
    marker.setAttribute("data-ms", String(Math.round(performance.now())));  // since navigation started
    if (note) marker.setAttribute("data-note", note);
    document.body.appendChild(marker);
  }

  function unpack(node) {
    if (typeof DecompressionStream === "undefined") {
      return Promise.reject(new Error("this browser cannot unpack the embedded plotly.js: it needs " +
        "DecompressionStream (Chrome 80, Firefox 113, Safari 16.4 or later); the tables have every number"));
    }
    var binary = atob(node.textContent.trim()), bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text().then(function (code) {
      var script = document.createElement("script");
      script.textContent = code;
      document.head.appendChild(script);
      if (typeof window.Plotly === "undefined") throw new Error("plotly.js did not load");
    });
  }

  function resizeAll() {
    if (!window.Plotly) return;
    document.querySelectorAll(".plot[data-drawn]").forEach(function (div) { window.Plotly.Plots.resize(div); });
  }
  window.addEventListener("beforeprint", resizeAll);
  window.addEventListener("afterprint", resizeAll);

  var figures = JSON.parse(document.getElementById("figures").textContent);
  var bundle = document.getElementById("plotly-bundle");
  if (!figures.length || !bundle) { ready(0, figures.length ? "no plotly.js" : "no figures"); return; }
  unpack(bundle).then(function () {
    return figures.reduce(function (done, fig) {
      return done.then(function () {
        var div = document.getElementById("plot-" + fig.id);
        div.textContent = "";
        return window.Plotly.newPlot(div, fig.data, fig.layout, CONFIG).then(function () {
          div.setAttribute("data-drawn", "1");
        });
      });
    }, Promise.resolve());
  }).then(function () {
    ready(figures.length);
  }, function (error) {
    window.__reportError("plots could not be drawn: " + (error && error.message ? error.message : error));
    document.querySelectorAll(".plot-loading").forEach(function (p) { p.textContent = "not drawn (see the error above)"; });
    ready(document.querySelectorAll(".plot[data-drawn]").length, "error");
  });
})();
"""
