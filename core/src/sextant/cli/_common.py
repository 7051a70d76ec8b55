"""What every command shares: the per-run state, consoles, JSON output, errors, rendering a package.

Messages and tables for people go to stderr when stdout carries data; ``--json`` writes exactly one
JSON document on stdout. Nothing here imports more than typer and rich.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from sextant.errors import ExitCode, SextantError

if TYPE_CHECKING:
    from sextant.package import Package
    from sextant.plugins import Catalog

PANEL_RUN = "Run"
PANEL_CHECK = "Correctness"
PANEL_SELECT = "Selection and profiling"


@dataclass
class State:
    """Per-run state, in ``ctx.obj``: the plugin catalog and whether to show tracebacks."""

    catalog: Catalog
    debug: bool = False


def console(stderr: bool = False) -> Console:
    """A console for tables; wide when not a terminal, so piped tables and logs are not folded."""
    out = Console(stderr=stderr)
    if out.is_terminal or "COLUMNS" in os.environ:
        return out
    return Console(stderr=stderr, width=200)


def stderr() -> Console:
    return console(stderr=True)


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def set_debug(ctx: typer.Context, value: bool) -> bool:
    """``--debug``, before the command or after it: tracebacks for every error of this run."""
    if value and isinstance(ctx.obj, State):
        ctx.obj.debug = True
    return value


def debugging(state: Any = None) -> bool:
    """Whether to show tracebacks: ``--debug`` was given to this run (``state``), or, before a
    run has a state, ``SEXTANT_DEBUG=1`` is set."""
    return bool(getattr(state, "debug", False)) if state is not None else os.environ.get("SEXTANT_DEBUG") == "1"


#: a command's ``--debug`` (the root command has its own, so both positions work)
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.", callback=set_debug)]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def report_error(exc: BaseException, debug: bool) -> int:
    """Print one paragraph about ``exc`` on stderr (and its traceback with ``--debug``); return
    the exit code: the error's own for a :class:`SextantError`, 1 for anything else."""
    out = stderr()
    if debug:
        out.print(traceback.format_exc(), markup=False, highlight=False)
    if isinstance(exc, SextantError):
        out.print(f"[bold red]error:[/bold red] {escape(exc.message)}", highlight=False)
        if exc.hint:
            out.print(exc.hint, markup=False, highlight=False)
        return exc.exit_code
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:  # the system said no: not a bug
        where = f": {exc.filename}" if exc.filename else ""
        out.print(f"[bold red]error:[/bold red] {escape(exc.strerror + where)}", highlight=False)
        out.print(
            "The operating system refused this (permissions, a read-only or full file system, a missing "
            "path): fix that, then run the same command again; what finished is kept.",
            markup=False,
            highlight=False,
        )
        return ExitCode.ERROR
    out.print(f"[bold red]error:[/bold red] {escape(f'{type(exc).__name__}: {exc}')}", highlight=False)
    if not debug:
        out.print("This is unexpected; run again with --debug for the traceback and report it.")
    return ExitCode.ERROR


def render_package(package: Package, as_json: bool, problems: Sequence[str] = (), said: Sequence[str] = ()) -> None:
    """A package's results: one JSON document on stdout (its ``status.json``; ``incomplete``: why
    the results are partial, else null; ``problems``: what else is wrong with the package now), or
    the table on stdout and the reasons, notes (less those ``said`` while the run went), warnings
    and the summary on stderr."""
    from sextant.cli import tables as report

    document, path = package.document, str(package.path)
    incomplete = document.incomplete
    if as_json:
        return print_json({"package": path, **package.document.to_json(), "incomplete": incomplete, "problems": list(problems)})
    out = stderr()
    console().print(report.results_table(document))
    lines = report.reasons(document)
    if document.generates:
        from sextant.cli import generation_tables as tables

        console().print(tables.generation_table(document))
        lines += tables.verdict_lines(document)
    for line in lines:
        out.print(f"  {line}", highlight=False)
    for line in report.regime_lines(document):
        out.print(f"  {line}", highlight=False)
    for note in document.notes:
        if note in said:
            continue
        out.print(f"[cyan]note:[/cyan] {escape(note)}")
    for warning in (incomplete, *problems):
        if warning:
            out.print(f"[bold yellow]warning:[/bold yellow] {escape(warning)}", highlight=False)
    out.print(report.summary_line(document, path))
