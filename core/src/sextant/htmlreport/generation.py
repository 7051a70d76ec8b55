"""The page of a text-generation run (``sextant optimize --task text-generation``): what users of a
generative model judge it by, per candidate, and the teacher-forcing verdicts.

Its plots: time to first token against prompt length; inter-token latency (p50, p90, p99) against
batch (concurrent sequences); output tokens/s against batch; peak memory against batch; the largest
logits error of each prompt against the tolerance. Its tables: the candidates (tokens/s, TTFT at
each prompt length, ITL, peak memory, agreement) and, per candidate and prompt, the teacher-forcing
verdict: logits error, steps out of tolerance, the share of greedy tokens equal to the reference's,
the first divergence and the near-ties (steps where the reference scored the candidate's token
within the tolerance of its own, so either token is right). The plots are :mod:`.genplots`'; the page's look, cards,
failures and notes the optimize page's (:mod:`.sections`); every number comes from the records.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sextant.htmlreport import sections
from sextant.htmlreport.csvexport import to_csv
from sextant.htmlreport.data import Candidate, RunReport
from sextant.htmlreport.figures import Figure
from sextant.htmlreport.genplots import agreement, at_batch, prompt_lengths, ttft_by_length, verdicts_of
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

# -- the page ---------------------------------------------------------------------------------------------


def generation_page(
    report: RunReport,
    figures: Sequence[Figure],
    *,
    link: sections.Linker,
    downloads: str,
    written: str,
    plots_missing: str | None = None,
) -> Page:
    """The page of one generation run, laid out as an optimize run's."""
    parts = [
        Section("summary", "Summary", summary(report)),
        Section("plots", "Plots", '<div class="plots">' + "".join(plot_block(f) for f in figures) + "</div>"),
        Section("candidates", "Candidates", candidates(report, downloads)),
        Section("verdicts", "Teacher forcing", verdicts(report)),
        Section("failures", f"Failures ({len(report.problems)})", sections.failures(report.problems, link)),
    ]
    if report.skipped:
        parts.append(Section("skipped", f"Not tried ({len(report.skipped)})", sections.skipped(report)))
    if report.notes:
        parts.append(Section("notes", "Notes", "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in report.notes) + "</ul>"))
    return Page(
        title=f"sextant: {report.model}",
        subtitle=sections._subtitle(report) + " · text generation",
        banners=tuple(banners(report)),
        sections=tuple(parts),
        figures=tuple(figures),
        footer=written,
        plots_missing=plots_missing,
    )


def banners(report: RunReport) -> list[Banner]:
    out = sections.banners(report)
    best = report.best_candidate
    if best is None or not out:
        return out
    words = "Best so far (the run did not finish) " if report.incomplete else "Selected "
    return [Banner(out[0].kind, words + best_line(report, best)), *out[1:]]


def best_line(report: RunReport, best: Candidate) -> str:
    text = f"<strong class=id>★ {esc(best.id)}</strong>"
    point = best.record.best_point
    if point is not None:
        text += f": {point.throughput:,.1f} tokens/s at batch {point.batch} (ITL p50 {point.p50_ms:.3f} ms"
        ttft = ttft_by_length(best)
        if ttft:
            length, ms = list(ttft.items())[-1]
            text += f", TTFT {ms:.3f} ms at prompt {length}"
        text += ")"
    if best.record.speedup is not None and report.baseline and not best.baseline:
        text += f", <strong>{best.record.speedup:.2f}×</strong> the reference"
    elif best.baseline:
        text += ", which is the reference itself"
    return text + "."


def summary(report: RunReport) -> str:
    cards = [
        ("Result", result_card(report)),
        ("Generation", settings_card(report)),
        ("Machine", sections.machine_card(report)),
        ("Run", sections.run_card(report)),
    ]
    return '<div class="cards">' + "".join(f'<div class="card"><h3>{esc(t)}</h3>{h}</div>' for t, h in cards) + "</div>"


def result_card(report: RunReport) -> str:
    best, base = report.best_candidate, report.baseline_candidate
    items: list[tuple[str, str]] = []
    if best is None:
        items.append(("best", f'<span class="nr">none: {esc(report.no_selection_reason)}</span>'))
    else:
        items.append(("best", f"<span class=id>★ {esc(best.id)}</span>"))
        items += _measures(best)
        items.append(
            (
                "speedup",
                f"{best.record.speedup:.2f}× the reference" if best.record.speedup is not None else not_recorded(),
            )
        )
        items.append(("correctness", verdict_text(best)))
    if base is not None:
        items.append(("reference", f"<span class=id>{esc(base.id)}</span>"))
        items += [(f"reference {k}", v) for k, v in _measures(base)]
    counts = Counter(c.state for c in report.candidates)
    items.append(("candidates", ", ".join(f"{n} {s}" for s, n in counts.most_common()) or "none"))
    return key_values(items + sections.objective_items(report))


def _measures(c: Candidate) -> list[tuple[str, str]]:
    point, one = c.record.best_point, at_batch(c, 1)
    items = []
    if point is not None:
        items.append(
            (
                "at its best",
                f"{point.throughput:,.1f} tokens/s at batch {point.batch}; "
                f"ITL p50 {point.p50_ms:.3f} ms, p99 {point.p99_ms:.3f} ms",
            )
        )
    if one is not None and (point is None or point.batch != 1):
        items.append(("at batch 1", f"{one.throughput:,.1f} tokens/s; ITL p50 {one.p50_ms:.3f} ms"))
    ttft = ttft_by_length(c)
    if ttft:
        items.append(("TTFT", ", ".join(f"{ms:.3f} ms at prompt {n}" for n, ms in ttft.items())))
    return items


def verdict_text(c: Candidate) -> str:
    r = c.record.correctness
    if r is None:
        return not_recorded()
    return esc(r.summary or ("passed" if r.passed else "failed")) + f" (atol {r.atol:g}, rtol {r.rtol:g})"


def settings_card(report: RunReport) -> str:
    g, p = report.generation or {}, report.prompts or {}
    if not g and not p:
        return not_recorded()
    lengths = ", ".join(str(n) for n in p.get("lengths") or ()) or not_recorded()
    given = "given" if p.get("given") else "generated at random (seeded)"
    items = [
        ("prompts", f"{p.get('count', '?')} {given}, of {lengths} tokens" if p else not_recorded()),
        ("new tokens", esc(g.get("new_tokens", "?"))),
        ("batches", esc(", ".join(str(b) for b in g.get("batch_sizes") or ())) + " concurrent sequences"),
        ("repeats", f"{esc(g.get('repeats', '?'))} measured after {esc(g.get('warmup', '?'))} warm-up"),
        ("reduced precision", f"agreement ≥ {float(g.get('min_agreement', 0.9)):.0%} of greedy tokens"),
    ]
    limits = [f"TTFT ≤ {g['max_ttft_ms']:g} ms" for _ in [0] if g.get("max_ttft_ms")]
    limits += [f"ITL p99 ≤ {g['max_itl_ms']:g} ms" for _ in [0] if g.get("max_itl_ms")]
    items.append(("limits", esc("; ".join(limits)) or "none"))
    return key_values(items)


# -- tables -----------------------------------------------------------------------------------------------


def columns(lengths: Sequence[int]) -> tuple[Column, ...]:
    return (
        Column("rank", True, "place in the selection; empty: did not compete"),
        Column("candidate"),
        Column("precision"),
        Column("status"),
        Column("logits err", True, "largest absolute logits error at any teacher-forced step of any prompt"),
        Column("agree", True, "share of greedy tokens equal to the reference's"),
        Column("tokens/s", True, "output tokens/s of the point that represents it under the objective"),
        Column("@batch", True),
        Column("tokens/s @1", True, "output tokens/s of one sequence"),
        *(Column(f"TTFT ms @{n}", True, f"time to first token at prompt length {n}, batch 1") for n in lengths),
        Column("ITL p50 ms", True),
        Column("ITL p99 ms", True),
        Column("peak MB", True, "peak resident memory at that point"),
        Column("speedup", True, "times the reference under the objective"),
        Column("s", True, "seconds its check and measurement took (cached: when measured)"),
    )


def candidate_row(c: Candidate, lengths: Sequence[int]) -> list[Cell]:
    base = sections.candidate_row(c)  # rank, candidate, format, precision, status, ...
    r, point, one = c.record, c.record.best_point, at_batch(c, 1)
    ttft = ttft_by_length(c)
    share = agreement(c)
    return [
        base[0],
        base[1],
        base[3],
        base[4],
        number_cell(c.max_abs_error, "{:.1e}"),
        number_cell(share * 100 if share is not None else None, "{:.1f} %"),
        number_cell(point.throughput if point else None, "{:,.1f}"),
        number_cell(point.batch if point else None, "{}"),
        number_cell(one.throughput if one else None, "{:,.1f}"),
        *(number_cell(ttft.get(n), "{:.3f}") for n in lengths),
        number_cell(point.p50_ms if point else None, "{:.3f}"),
        number_cell(point.p99_ms if point else None, "{:.3f}"),
        number_cell(point.memory_mb if point else None, "{:,.0f}"),
        number_cell(r.speedup, "{:.2f}×"),
        number_cell(r.seconds, "{:.1f}"),
    ]


def candidates(report: RunReport, downloads: str) -> str:
    lengths = prompt_lengths(report)
    html = sections._mark_best(table(columns(lengths), [candidate_row(c, lengths) for c in report.candidates]), report)
    note = f'<p class="downloads">Every number as CSV: {downloads}</p>' if downloads else ""
    return '<p class="nr">Click a heading to sort; hover a status for its reason.</p>' + html + note


VERDICT_COLUMNS = (
    Column("candidate"),
    Column("prompt"),
    Column("steps", True),
    Column("logits err", True, "largest absolute logits error at any step"),
    Column("out of tol.", True, "steps whose logits are not within the tolerance"),
    Column("agree", True, "share of steps whose greedy token equals the reference's"),
    Column("first divergence", True, "the first step whose greedy token differs"),
    Column(
        "near-ties",
        False,
        "differing steps where the reference scored the candidate's token within the tolerance of its own",
    ),
    Column("verdict"),
)


def verdicts(report: RunReport) -> str:
    rows = []
    for c in report.candidates:
        if c.id == report.baseline:
            continue
        for v in verdicts_of(c):
            passed = bool(v.get("passed"))
            word = "passed" if passed else "failed"
            ties = list(v.get("near_ties") or ())
            rows.append(
                [
                    Cell(esc(c.id), c.id, "id"),
                    text_cell(v.get("name")),
                    number_cell(v.get("steps"), "{}"),
                    number_cell(v.get("max_abs_error"), "{:.1e}"),
                    number_cell(v.get("out_of_tolerance"), "{}"),
                    number_cell(v["agreement"] * 100 if v.get("agreement") is not None else None, "{:.1f} %"),
                    number_cell(v.get("first_divergence"), "{}"),
                    text_cell(", ".join(f"step {t}" for t in ties) if ties else ""),
                    Cell(f'<span class="badge {"ok" if passed else "incorrect"}">{word}</span>', passed),
                ]
            )
    if not rows:
        return "<p>No candidate was judged against the reference.</p>"
    intro = (
        "<p>Each candidate was fed the reference's greedy continuation of every prompt, one token at a time "
        "(teacher forcing), so one early difference cannot derail the later steps. At fp32 it passes when its "
        "logits are within the tolerance at every step and every greedy token that differs is a near-tie; at a "
        "reduced precision, when its agreement reaches the stated share.</p>"
    )
    return intro + table(VERDICT_COLUMNS, rows)


# -- CSV ----------------------------------------------------------------------------------------------------

POINT_COLUMNS = (
    "candidate",
    "batch",
    "prompt_length",
    "new_tokens",
    "throughput",
    "ttft_ms",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "memory_mb",
    "repeats",
    "screened",
)


def points_csv(report: RunReport) -> str:
    """One row per measured batch: output tokens/s (``throughput``), TTFT of that batch, ITL percentiles."""
    rows = [
        {**p.to_json(), "candidate": c.id, "screened": c.record.screened}
        for c in report.candidates
        for p in sorted(c.record.points, key=lambda p: p.batch)
    ]
    return to_csv(POINT_COLUMNS, rows)


def ttft_csv(report: RunReport) -> str:
    """One row per candidate and prompt length: the time to first token at batch 1."""
    rows = [
        {"candidate": c.id, "prompt_length": n, "ttft_ms": ms}
        for c in report.candidates
        for n, ms in ttft_by_length(c).items()
    ]
    return to_csv(("candidate", "prompt_length", "ttft_ms"), rows)
