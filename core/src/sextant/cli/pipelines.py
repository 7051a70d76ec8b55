"""``sextant inspect`` of a pipeline workspace: one table per module, then the end-to-end result."""

from __future__ import annotations

from rich.table import Table

from sextant.cli._common import console, print_json, stderr
from sextant.pipelines.records import CompositeRecord, speedup


def render_composite(record: CompositeRecord, path: str, as_json: bool) -> None:
    """The record as one JSON document on stdout, or as tables (stdout) and the verdict (stderr)."""
    if as_json:
        return print_json({"workspace": path, **record.to_json()})
    out = console()
    timings = {m.module: m for m in record.end_to_end.modules}
    for module in record.modules():
        table = Table(title=f"{module}", title_justify="left")
        for column in ("structure", "calls", "serving", "candidate", "tried"):
            table.add_column(column)
        for s in (s for s in record.structures if s.module == module):
            tried = ", ".join(f"{a.candidate} {'ok' if a.passed else 'FAILED'}" for a in s.attempts) or "-"
            table.add_row(
                f"{s.description}\n[dim]{s.package}[/dim]",
                str(s.calls),
                s.serving.value,
                s.chosen or s.reason,
                tried,
            )
        out.print(table)
        timing = timings.get(module)
        if timing is not None:
            gain = speedup(timing.original, timing.optimized)
            out.print(
                f"  per pipeline run: original {timing.original.spread()}, optimized {timing.optimized.spread()}"
                + (f", {gain:.2f}x" if gain else "")
            )
    end = record.end_to_end
    gain = speedup(end.original, end.optimized)
    err = stderr()
    err.print(
        f"[bold]{path}[/bold]: {record.inputs} inputs; end to end: {'passed' if end.passed else 'FAILED'} ({end.detail})"
    )
    err.print(
        f"pipeline: original {end.original.spread()}, optimized {end.optimized.spread()}"
        + (f", speedup {gain:.2f}x" if gain else "")
    )
