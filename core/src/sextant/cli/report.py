"""``sextant report``: a package's HTML report again (``report.html``), and its CSV files.

The page and the CSV files come from :mod:`sextant.htmlreport`; this only parses and prints. The
paths written go to stdout, one a line (``--json``: one JSON document); warnings go to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from sextant.cli._common import Debug, Json, print_json, stderr


def report(
    package: Annotated[Path, typer.Argument(help="A package folder written by sextant optimize.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write the page \\[default: PACKAGE/report.html]."),
    ] = None,
    csv: Annotated[
        Path | None,
        typer.Option(
            "--csv",
            help="Also write points.csv (every profile point) and candidates.csv (every candidate) in this folder.",
        ),
    ] = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Write a package's report: one self-contained HTML page with plots, and CSV files."""
    from sextant.htmlreport import missing_reason, write_csv, write_report

    page = write_report(package, output)
    tables = write_csv(package, csv) if csv is not None else []
    missing = missing_reason()
    if missing:
        stderr().print(f"[yellow]warning:[/yellow] the page has no plots: {escape(missing)}", highlight=False)
    if as_json:
        return print_json({"report": str(page), "csv": [str(p) for p in tables], "plots": missing is None})
    for path in (page, *tables):
        typer.echo(str(path))
