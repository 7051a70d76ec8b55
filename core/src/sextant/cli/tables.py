"""Turning catalogs, plans and packages into rich tables and JSON documents. No logic lives here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

from sextant.optimizer.events import (
    CandidateEnded,
    CandidatePoint,
    CandidateStarted,
    Event,
    Noted,
    Planned,
    StepEnded,
    StepStarted,
)
from sextant.package.document import RunDocument
from sextant.planner import Plan, make_plan
from sextant.plugins import Catalog, availability
from sextant.records import CandidateRecord, Status, StepRecord
from sextant.specs import DEVICES, PRECISIONS, DeployerSpec, Format, GeneratorSpec, RunnerSpec

STATUS_STYLE = {Status.OK: "green", Status.FAILED: "red", Status.INCORRECT: "yellow", Status.REJECTED: "yellow"}


# -- plugins and formats ------------------------------------------------------------------------


def _describe(contribution: Any) -> dict[str, Any]:
    spec = contribution.spec
    out: dict[str, Any] = {"kind": contribution.kind, "name": spec.name, "description": spec.description}
    for attr in ("consumes", "produces"):
        if hasattr(spec, attr):
            out[attr] = str(getattr(spec, attr))
    if isinstance(spec, (RunnerSpec, GeneratorSpec)):
        out["devices"] = {device: availability(spec, device) for device in spec.devices}
        out["precisions"] = list(spec.precisions)
        out["options"] = [
            {"name": p.name, "kind": p.kind, "values": list(p.values), "default": p.default} for p in spec.options
        ]
    elif isinstance(spec, DeployerSpec):
        out["formats"] = [str(f) for f in spec.formats]
        out["runners"] = list(spec.runners)
    elif hasattr(spec, "precision"):
        out["precision"] = spec.precision
    reason = availability(spec)
    out["available"] = reason is None
    out["reason"] = reason
    out["requires"] = list(spec.requires)
    return out


def plugins_document(catalog: Catalog) -> dict[str, Any]:
    plugins = []
    for info in catalog.plugins:
        contributions = [_describe(c) for c in catalog.contributions if c.plugin == info]
        plugins.append(
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "error": info.error,
                "contributions": contributions,
            }
        )
    return {"plugins": plugins}


def plugins_table(catalog: Catalog) -> Table:
    table = Table(title="sextant plugins", show_lines=False)
    for column in ("plugin", "distribution", "kind", "name", "what", "available"):
        table.add_column(column)
    for plugin in plugins_document(catalog)["plugins"]:
        label = f"{plugin['distribution']} {plugin['version']}"
        if plugin["error"]:
            table.add_row(plugin["name"], label, "", "", "", f"[red]failed to load: {escape(plugin['error'])}[/red]")
            continue
        for c in plugin["contributions"]:
            what = f"{c.get('consumes', '')} → {c['produces']}" if "produces" in c else c.get("consumes", "")
            if c["kind"] == "deployer":
                native = ", ".join(c["formats"]) or "any format"
                what = f"native: {native}; runners: {', '.join(c['runners']) or 'any'}"
            if c["kind"] in ("runner", "generator"):
                devices = escape(", ".join(f"{d}" if r is None else f"{d}: {r}" for d, r in c["devices"].items()))
                state = f"[green]{devices}[/green]" if c["available"] else f"[red]{devices}[/red]"
            else:
                state = "[green]yes[/green]" if c["available"] else f"[red]no: {escape(c['reason'])}[/red]"
            table.add_row(plugin["name"] if label else "", label, c["kind"], c["name"], what, state)
            label = ""
    return table


def formats_document(catalog: Catalog) -> dict[str, Any]:
    edges = [
        {
            "kind": c.kind,
            "name": c.name,
            "from": str(c.spec.consumes),
            "to": str(c.spec.produces),
            "available": availability(c.spec) is None,
        }
        for c in catalog.contributions
        if c.kind in ("exporter", "converter")
    ]
    runners = [
        {
            "name": c.name,
            "format": str(c.spec.consumes),
            "devices": list(c.spec.devices),
            "available": availability(c.spec) is None,
        }
        for c in catalog.of("runner")
    ]
    sources = sorted(
        {e["from"] for e in edges if e["kind"] == "exporter"}
        | {r["format"] for r in runners if _is_reference(catalog, r)}
    )
    return {"sources": sources, "edges": edges, "runners": runners}


def _is_reference(catalog: Catalog, runner: Mapping[str, Any]) -> bool:
    return catalog.get("runner", runner["name"]).spec.reference


def formats_tree(catalog: Catalog) -> Tree:
    """Each source's steps as the planner would chain them (every precision allowed), then which
    runners take each format."""
    doc = formats_document(catalog)
    root = Tree("[bold]formats reachable from each source[/bold]")
    for source in doc["sources"]:
        plan = make_plan(catalog, Format(source), devices=DEVICES, precisions=PRECISIONS)
        nodes = {None: root.add(f"[bold cyan]{escape(source)}[/bold cyan]")}
        for step in plan.steps:
            label = f"{escape(step.spec.name)} → [bold]{step.format}[/bold]"
            if step.precision != "fp32":
                label += f" ({step.precision})"
            nodes[step.id] = nodes[step.parent].add(label)
    runners = root.add("[bold]runners by format[/bold]")
    for fmt in sorted({r["format"] for r in doc["runners"]}):
        names = [
            r["name"] if r["available"] else f"[dim]{r['name']}[/dim]" for r in doc["runners"] if r["format"] == fmt
        ]
        runners.add(f"[bold]{escape(fmt)}[/bold]: {', '.join(names)}")
    return root


# -- plans and results --------------------------------------------------------------------------


def plan_document(plan: Plan) -> dict[str, Any]:
    return {
        "source": str(plan.source),
        "steps": [
            {
                "id": s.id,
                "kind": s.kind,
                "from": s.parent or "source",
                "format": str(s.format),
                "precision": s.precision,
            }
            for s in plan.steps
        ],
        "candidates": [
            {
                "id": c.id,
                "format": str(c.format),
                "runner": c.runner.name,
                "device": c.device,
                "precision": c.precision,
                "options": c.options,
            }
            for c in plan.candidates
        ],
        "skipped": [{"what": what, "reason": reason} for what, reason in plan.skipped],
    }


def plan_table(plan: Plan) -> Table:
    table = Table(title=f"plan from {plan.source}")
    table.add_column("candidate", no_wrap=True)
    for column in ("format", "runner", "device", "precision"):
        table.add_column(column)
    for c in plan.candidates:
        table.add_row(escape(c.id), str(c.format), c.runner.name, c.device, c.precision)
    for what, reason in plan.skipped:
        table.add_row(f"[dim]{escape(what)}[/dim]", "", "", "", f"[dim]skipped: {escape(reason)}[/dim]")
    return table


def _status_text(record: StepRecord | CandidateRecord, limit: int = 70) -> str:
    style = STATUS_STYLE.get(record.status, "dim")
    text = (
        str(record.status) if record.status == Status.OK else f"{record.status}: {_short(record.reason or '', limit)}"
    )
    if record.cached:
        text += " (cached)"
    return f"[{style}]{escape(text)}[/{style}]"


def _short(text: str, limit: int = 70) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _document(status: RunDocument | Mapping[str, Any]) -> RunDocument:
    return status if isinstance(status, RunDocument) else RunDocument.from_json(status)


def results_table(status: RunDocument | Mapping[str, Any]) -> Table:
    document = _document(status)
    best = document.best
    objective = document.selection.objective.name if document.selection else "throughput"
    title = f"sextant: {escape(document.model.name if document.model else 'model')} (objective: {objective})"
    if document.incomplete:
        title += " [bold yellow]— incomplete run[/bold yellow]"
    table = Table(title=title)
    table.add_column("candidate", overflow="fold", ratio=1)
    for column in ("precision", "status"):
        table.add_column(column, no_wrap=True)
    measures = ("best tput/s", "@batch", "p50 ms", "p99 ms")
    if document.generates:  # a point is tokens/s and inter-token latency
        measures = ("tokens/s", "@batch", "ITL p50 ms", "ITL p99 ms")
    for column in ("max abs err", *measures, "speedup", "load s"):
        table.add_column(column, justify="right", no_wrap=True)
    for cid, record in document.candidates.items():
        point = record.best_point
        correctness = record.correctness
        row = [
            f"[bold green]★ {escape(cid)}[/bold green]" if cid == best else escape(cid),
            record.precision,
            _status_word(record),
            f"{correctness.max_abs_error:.1e}" if correctness else "",
            f"{point.throughput:,.0f}" if point else "",
            str(point.batch) if point else "",
            f"{point.p50_ms:.3f}" if point else "",
            f"{point.p99_ms:.3f}" if point else "",
            f"{record.speedup:.2f}×" if record.speedup else "",
            f"{record.load_seconds:.1f}" if record.load_seconds is not None else "",  # a compile's build time
        ]
        table.add_row(*row)
    for step_id, step in document.steps.items():
        if step.status != Status.OK:
            table.add_row(f"[dim]{escape(step_id)} (step)[/dim]", step.precision, _status_word(step), *[""] * 7)
    return table


def _status_word(record: StepRecord | CandidateRecord) -> str:
    style = STATUS_STYLE.get(record.status, "dim")
    word = "screened" if isinstance(record, CandidateRecord) and record.screened else str(record.status)
    return f"[{style}]{word}{' (cached)' if record.cached else ''}[/{style}]"


def reasons(status: RunDocument | Mapping[str, Any]) -> list[str]:
    """Why each step or candidate that is not ok is not, and each candidate screened out at what
    estimate; the same reason for several is one line."""
    document = _document(status)
    by_reason: dict[str, list[str]] = {}
    for records in (document.steps, document.candidates):
        for name, record in records.items():
            if record.status != Status.OK and record.reason:
                by_reason.setdefault(_status_text(record, limit=160), []).append(name)
            elif isinstance(record, CandidateRecord) and record.screened and record.profile:
                by_reason.setdefault(f"[dim]{escape(record.profile.stopped or '')}[/dim]", []).append(name)
    return [
        f"{escape(names[0])}: {text}" if len(names) == 1 else f"{len(names)} candidates: {text}"
        for text, names in by_reason.items()
    ]


def regime_lines(status: RunDocument | Mapping[str, Any]) -> list[str]:
    """The best for each serving regime when they differ (``Selection.regimes``), one line each."""
    from sextant.selection import REGIME_WORDS

    selection = _document(status).selection
    regimes = (selection.regimes if selection else None) or {}
    return [f"best for {regime} ({REGIME_WORDS[regime]}): {escape(cid)}" for regime, cid in regimes.items()]


def summary_line(status: RunDocument | Mapping[str, Any], workspace: str) -> str:
    """One line naming the best candidate (escaped: ids hold ``[option=value]``, not markup)."""
    document = _document(status)
    best, selection = document.best, document.selection
    if best is not None and document.generates:  # tokens/s, inter-token latency, time to first token
        from sextant.cli.generation_tables import summary_line as generation_line

        return generation_line(document, workspace) or ""
    if best is None:
        reason = (selection.reason if selection else None) or "the run stopped before it selected one"
        return f"no candidate selected: {escape(str(reason))}. Package: {escape(workspace)}"
    record = document.candidates[best]
    point = record.best_point
    assert point is not None, "the selected candidate has its best point"
    speed = f", {record.speedup:.2f}× the baseline" if record.speedup else ""
    paired = selection.paired_speedup if selection else None
    if paired:  # measured again, interleaved with the baseline: the number to trust (sextant.pairing)
        speed = f", {paired.describe()} the baseline"
    unmeasured = document.run.unmeasured if document.run else None
    label = "best"
    if document.incomplete:
        label = "best so far" + (f" ({len(unmeasured)} candidates not measured)" if unmeasured is not None else "")
    return (
        f"{label}: {escape(best)} — {point.throughput:,.0f}/s at batch {point.batch}, p50 {point.p50_ms:.3f} ms"
        f"{speed}. Package: {escape(workspace)}"
    )


class ProgressView:
    """Pipeline events → rich progress on a console (stderr when stdout carries data)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task: Any = None
        self.said: list[str] = []  # the notes printed while the run went (not printed again at its end)

    def __enter__(self) -> ProgressView:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, event: Event) -> None:
        if isinstance(event, Planned):
            total = len(event.plan.steps) + len(event.plan.candidates)
            self.task = self.progress.add_task("planning", total=total, info="")
        elif isinstance(event, (StepStarted, CandidateStarted)):
            doing = "building" if isinstance(event, StepStarted) else "checking"
            self.progress.update(self.task, description=f"{doing} {escape(event.id)}", info="")
        elif isinstance(event, CandidatePoint):
            self.progress.update(
                self.task,
                description=f"{'screening' if event.screen else 'profiling'} {escape(event.id)}",
                info=f"batch {event.point.batch}: {event.point.throughput:,.0f}/s",
            )
        elif isinstance(event, (StepEnded, CandidateEnded)):
            self.progress.advance(self.task)
            if event.record.status not in (Status.OK, Status.SKIPPED, Status.DUPLICATE):
                self.console.print(f"  {escape(event.id)}: {_status_text(event.record, limit=200)}")
        elif isinstance(event, Noted):
            self.said.append(event.text)
            self.console.print(f"[cyan]note:[/cyan] {escape(event.text)}")
