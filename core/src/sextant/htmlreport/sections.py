"""The page of one optimize run: summary, plots, the candidate table, failures, what was skipped.

Every number comes from a :class:`~sextant.htmlreport.data.RunReport`; what the package did not
record is said to be "not recorded", never guessed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from sextant.htmlreport.data import Candidate, Problem, RunReport
from sextant.objective import Objective
from sextant.htmlreport.figures import Figure
from sextant.htmlreport.page import (
    Banner,
    Cell,
    Column,
    Page,
    Section,
    esc,
    key_values,
    not_recorded,
    number_cell,
    plot_block,
    table,
    text_cell,
)
from sextant.records import Status
from sextant.selection import REGIME_WORDS

#: how a log path inside the package becomes a link from the page (``None``: no link)
Linker = Callable[[str], "str | None"]


def run_page(
    report: RunReport,
    figures: Sequence[Figure],
    *,
    link: Linker,
    downloads: str,
    written: str,
    plots_missing: str | None = None,
) -> Page:
    """The page of one run. ``downloads``: HTML links to its CSV files; ``written``: the footer."""
    sections = [
        Section("summary", "Summary", summary(report)),
        Section("plots", "Plots", '<div class="plots">' + "".join(plot_block(f) for f in figures) + "</div>"),
        Section("candidates", "Candidates", candidates(report, downloads)),
        Section("failures", f"Failures ({len(report.problems)})", failures(report.problems, link)),
    ]
    if report.skipped:
        sections.append(Section("skipped", f"Not tried ({len(report.skipped)})", skipped(report)))
    if report.notes:
        sections.append(
            Section("notes", "Notes", "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in report.notes) + "</ul>")
        )
    return Page(
        title=f"sextant: {report.model}",
        subtitle=_subtitle(report),
        banners=tuple(banners(report)),
        sections=tuple(sections),
        figures=tuple(figures),
        footer=written,
        plots_missing=plots_missing,
    )


def _subtitle(report: RunReport) -> str:
    parts = [f"model {report.model}" + (f" ({report.model_format})" if report.model_format else "")]
    if report.run.started:
        parts.append(f"run started {report.run.started}")
    if report.goal:
        parts.append(f"objective: {report.goal.name}")
    return " · ".join(parts)


def banners(report: RunReport) -> list[Banner]:
    out = []
    best = report.best_candidate
    if best is not None and report.incomplete:
        out.append(Banner("warn", "Best so far (the run did not finish) " + _best_line(report, best)))
    elif best is not None:
        out.append(Banner("good", "Selected " + _best_line(report, best)))
    else:
        out.append(
            Banner(
                "bad",
                f"No candidate was selected: {esc(report.no_selection_reason)}. "
                '<a href="#failures">Failures</a> says what went wrong with each.',
            )
        )
    if report.incomplete:
        out.append(Banner("warn", f"Incomplete results: {esc(report.incomplete)}"))
    if report.busy:
        out.append(Banner("warn", f"Timings may be off: {esc(report.busy)}."))
    return out


def _best_line(report: RunReport, best: Candidate) -> str:
    point = best.best_point
    text = f"<strong class=id>★ {esc(best.id)}</strong>"
    if point is not None:
        text += (
            f": {point.throughput:,.0f}/s at batch {point.batch} (p50 {point.p50_ms:.3f} ms, p99 {point.p99_ms:.3f} ms)"
        )
    if report.paired_speedup is not None:
        text += f", <strong>{esc(report.paired_speedup)}</strong> the baseline"
    elif best.record.speedup is not None and report.baseline and not best.baseline:
        text += f", <strong>{best.record.speedup:.2f}×</strong> the baseline"
    elif best.baseline:
        text += ", which is the baseline itself"
    return text + "."


# -- summary ------------------------------------------------------------------------------------------


def summary(report: RunReport) -> str:
    cards = [("Result", result_card(report)), ("Machine", machine_card(report)), ("Run", run_card(report))]
    if report.searches:
        cards.insert(1, ("Option search", search_card(report)))
    return '<div class="cards">' + "".join(f'<div class="card"><h3>{esc(t)}</h3>{h}</div>' for t, h in cards) + "</div>"


def result_card(report: RunReport) -> str:
    best, base = report.best_candidate, report.baseline_candidate
    items: list[tuple[str, str]] = []
    if best is None:
        items.append(("best", f'<span class="nr">none: {esc(report.no_selection_reason)}</span>'))
    else:
        items.append(("best", f"<span class=id>★ {esc(best.id)}</span>"))
        point = best.best_point
        if point is not None:
            items.append(
                (
                    "at its best",
                    f"{point.throughput:,.0f}/s at batch {point.batch}; p50 {point.p50_ms:.3f} ms, p99 {point.p99_ms:.3f} ms",
                )
            )
        items.append(
            (
                "speedup",
                f"{esc(report.paired_speedup)} the baseline"
                if report.paired_speedup is not None
                else f"{best.record.speedup:.2f}× the baseline"
                if best.record.speedup is not None
                else not_recorded(),
            )
        )
        items.append(("correctness", correctness_text(best, report)))
        for regime, cid in report.regimes.items():
            items.append((f"best for {regime}", f"<span class=id>{esc(cid)}</span> ({REGIME_WORDS[regime]})"))
    if report.history_first:
        first = ", ".join(f"<span class=id>{esc(c)}</span>" for c in report.history_first)
        items.append(("order", f"from this machine's history: {first} first"))
    if base is not None:
        bp = base.best_point
        items.append(
            (
                "baseline",
                f"<span class=id>{esc(base.id)}</span>"
                + (f": {bp.throughput:,.0f}/s at batch {bp.batch}, p50 {bp.p50_ms:.3f} ms" if bp else ""),
            )
        )
    elif report.baseline:
        items.append(("baseline", f"<span class=id>{esc(report.baseline)}</span>"))
    counts = Counter(c.state for c in report.candidates)
    items.append(("candidates", ", ".join(f"{n} {s}" for s, n in counts.most_common()) or "none"))
    return key_values(items + objective_items(report))


def correctness_text(c: Candidate, report: RunReport) -> str:
    r = c.record.correctness
    if r is None:
        return not_recorded()
    lines = []
    for e in c.errors:
        err = "exact" if e.max_abs_error == 0 else f"max abs {e.max_abs_error:.2e}, max rel {e.max_rel_error:.2e}"
        lines.append(f"<span class=id>{esc(e.output)}</span>: {esc(err)}")
    text = "; ".join(lines) or esc(r.summary) or not_recorded("per output")
    text += f" (atol {r.atol:g}, rtol {r.rtol:g}"
    if report.correctness_batches:
        text += f"; batches of {', '.join(str(b) for b in report.correctness_batches)}"
    text += ")"
    if c.record.verified:
        text += "; your verify function accepted it"
    return text


def objective_items(report: RunReport) -> list[tuple[str, str]]:
    goal = report.goal
    if goal is None:
        return [("objective", not_recorded("(the run stopped before it selected)"))]
    weights = ", ".join(f"{k} × {v:g}" for k, v in goal.weights.items())
    preset = dict(goal.weights) == {goal.name: 1.0} or goal.name in ("throughput", "latency", "memory")
    return [
        ("objective", esc(goal.name) + ("" if preset or not weights else f" <span class=nr>({esc(weights)})</span>")),
        ("constraints", esc("; ".join(_constraints(goal))) or "none"),
    ]


def _constraints(goal: Objective) -> list[str]:
    out = []
    if goal.max_p99_ms is not None:
        out.append(f"p99 ≤ {goal.max_p99_ms:g} ms")
    if goal.min_throughput is not None:
        out.append(f"throughput ≥ {goal.min_throughput:g}/s")
    if goal.max_memory_mb is not None:
        out.append(f"peak memory ≤ {goal.max_memory_mb:g} MB")
    if goal.max_batch is not None:
        out.append(f"batch ≤ {goal.max_batch}")
    return out


def machine_card(report: RunReport) -> str:
    h = report.host
    cores = f"{h.cores} cores" if h.cores is not None else not_recorded("(cores)")
    threads = f"{h.threads} threads used per runner" if h.threads is not None else not_recorded("(threads)")
    gpu = esc(h.gpu) if h.gpu else ("none used" if "cuda" not in h.devices else not_recorded())
    versions = [f"sextant {esc(report.sextant_version or '?')}"]
    versions.append(f"Python {esc(h.python)}" if h.python else "Python " + not_recorded())
    versions += [f"{esc(name)} {esc(version)}" for name, version in report.plugins.items()]
    return key_values(
        [
            ("CPU", esc(h.cpu) if h.cpu else not_recorded()),
            ("cores", f"{cores}; {threads}"),
            ("architecture", esc(h.machine) if h.machine else not_recorded()),
            ("devices", esc(", ".join(h.devices)) if h.devices else not_recorded()),
            ("GPU and driver", gpu),
            ("versions", ", ".join(versions)),
        ]
    )


def run_card(report: RunReport) -> str:
    run = report.run
    took = _duration(run.seconds) if run.seconds is not None else not_recorded()
    cached, ran, counted = run.cached, run.ran, ""
    if cached is None or ran is None:  # an earlier sextant: count as the run would have
        records = [*report.steps.values(), *(c.record for c in report.candidates)]
        cached = sum(r.cached for r in records)
        ran = sum(not r.cached and r.seconds is not None for r in records)
        counted = ' <span class="nr">(counted from the records)</span>'
    cache = f"{cached} of {cached + ran} results reused from the workspace, {ran} run anew{counted}"
    complete = (
        {True: "yes", False: "no"}.get(run.complete, not_recorded()) if run.complete is not None else not_recorded()
    )
    return key_values(
        [
            ("started", esc(run.started) if run.started else not_recorded()),
            ("took", took),
            ("from cache", cache),
            ("finished", complete),
            (
                "model",
                esc(report.model)
                + (f" <span class=nr>({esc(report.model_source)})</span>" if report.model_source else ""),
            ),
        ]
    )


def search_card(report: RunReport) -> str:
    items = []
    for cid, s in report.searches.items():
        gain = (
            f"<strong>{s.gain_over_defaults * 100:.1f} % better than the defaults</strong>"
            if s.gain_over_defaults is not None
            else "no gain measured over the defaults"
        )
        options = ", ".join(f"{k}={v}" for k, v in (s.best_options or {}).items()) or "the defaults"
        detail = f"{s.strategy}: best options {esc(options)}; {gain}"
        if s.configurations is not None:
            detail += f"; {s.configurations} configurations"
            if s.measured is not None:
                detail += f" ({s.measured} measured now)"
        if s.stopped:
            detail += f"; stopped: {esc(s.stopped)}"
        items.append((cid, detail))
    return key_values(items)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


# -- the candidate table --------------------------------------------------------------------------------

COLUMNS = (
    Column("rank", True, "place in the selection; empty: did not compete"),
    Column("candidate"),
    Column("format"),
    Column("precision"),
    Column("status"),
    Column("max abs err", True, "largest absolute error over every output and correctness batch"),
    Column("max rel err", True, "largest relative error"),
    Column("best tput/s", True, "throughput of the point that represents it under the objective"),
    Column("@batch", True),
    Column("p50 ms", True),
    Column("p99 ms", True),
    Column("peak MB", True, "peak resident memory at that point"),
    Column("speedup", True, "times the baseline under the objective"),
    Column("s", True, "seconds its check and profile took (cached: the time it took when measured)"),
)


def candidates(report: RunReport, downloads: str) -> str:
    html = _mark_best(table(COLUMNS, [candidate_row(c) for c in report.candidates]), report)
    note = f'<p class="downloads">Every number as CSV: {downloads}</p>' if downloads else ""
    return '<p class="nr">Click a heading to sort; hover a status for its reason.</p>' + html + note


def _mark_best(html: str, report: RunReport) -> str:
    """The selected candidate's row highlighted (rows carry the id in their candidate cell)."""
    if report.best is None:
        return html
    marker = f'<td data-v="{esc(report.best)}" class="id">'
    at = html.find(marker)
    if at < 0:
        return html
    row = html.rfind("<tr>", 0, at)
    return html[:row] + '<tr class="best">' + html[row + 4 :]


def candidate_row(c: Candidate) -> list[Cell]:
    r = c.record
    point = c.best_point
    label = esc(c.id)
    if c.best:
        label = "★ " + label
    if c.baseline:
        label += ' <span class="tag">baseline</span>'
    if c.reference_only:
        label += ' <span class="tag">reference only</span>'
    if r.screened:
        label += ' <span class="tag">screened out</span>'
    status = f'<span class="badge {esc(r.status)}">{esc(r.status)}</span>' + (
        ' <span class="tag">cached</span>' if r.cached else ""
    )
    why = (r.reason or "").strip()
    if r.status == Status.OK and c.stopped:
        why = c.stopped if r.screened else f"profiling: {c.stopped}"
    return [
        Cell(str(c.rank) if c.rank else "", c.rank, "num"),
        Cell(label, c.id, "id"),
        text_cell(r.format),
        text_cell(r.precision),
        Cell(status, str(r.status), "", why[:600]),
        number_cell(c.max_abs_error, "{:.1e}"),
        number_cell(c.max_rel_error, "{:.1e}"),
        number_cell(point.throughput if point else None, "{:,.0f}"),
        number_cell(point.batch if point else None, "{}"),
        number_cell(point.p50_ms if point else None, "{:.3f}"),
        number_cell(point.p99_ms if point else None, "{:.3f}"),
        number_cell(point.memory_mb if point else None, "{:,.0f}"),
        number_cell(r.speedup, "{:.2f}×"),
        number_cell(r.seconds, "{:.1f}"),
    ]


# -- failures and what was not tried ---------------------------------------------------------------------


def failures(problems: Sequence[Problem], link: Linker) -> str:
    if not problems:
        return "<p>Nothing failed: every step and candidate that ran finished.</p>"
    return "".join(problem_block(p, link) for p in problems)


def problem_block(p: Problem, link: Linker) -> str:
    head = f'<h3><span class="id">{esc(p.id)}</span> <span class="tag">{esc(p.kind)}</span> '
    head += f'<span class="badge {esc(p.status)}">{esc(p.status)}</span>'
    if p.cause:
        head += f' <span class="tag">{esc(p.cause)}</span>'
    head += "</h3>"
    body = f'<p class="reason">{esc(p.reason)}</p>'
    if p.log_tail.strip():
        body += f"<details open><summary>the end of its log</summary><pre class=log>{esc(p.log_tail.rstrip())}</pre></details>"
    else:
        body += '<p class="nr">no log output recorded</p>'
    if p.traceback:
        body += f"<details><summary>traceback</summary><pre class=log>{esc(p.traceback.rstrip())}</pre></details>"
    if p.log:
        href = link(p.log)
        shown = f"<span class=id>{esc(p.log)}</span>"
        if href:
            shown = f'<a href="{esc(href)}">{shown}</a>'
        body += f'<p class="nr">full log: {shown}</p>'
    return f'<div class="problem {esc(p.status)}">{head}{body}</div>'


def skipped(report: RunReport) -> str:
    by_reason: dict[str, list[str]] = {}
    for s in report.skipped:
        by_reason.setdefault(s.reason, []).append(s.what)
    rows = [
        [Cell(", ".join(f"<span class=id>{esc(w)}</span>" for w in whats), len(whats)), text_cell(reason)]
        for reason, whats in by_reason.items()
    ]
    return (
        f"<details><summary>{len(report.skipped)} steps and candidates were not tried, for "
        f"{len(by_reason)} reasons</summary>"
        + table((Column("what"), Column("why")), rows, sortable=False)
        + "</details>"
    )
