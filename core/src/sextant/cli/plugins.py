"""``sextant plugins`` and ``sextant formats``: what the installed plugins contribute.

Both must stay fast with every framework installed: they read the catalog, never a plugin's
run-time code.
"""

from __future__ import annotations

import typer

from sextant.cli._common import Debug, Json, console, print_json


def plugins(ctx: typer.Context, as_json: Json = False, debug: Debug = False) -> None:
    """List installed plugins, what each contributes, and whether it is available here."""
    from sextant.cli import tables as report

    if as_json:
        return print_json(report.plugins_document(ctx.obj.catalog))
    console().print(report.plugins_table(ctx.obj.catalog))


def formats(ctx: typer.Context, as_json: Json = False, debug: Debug = False) -> None:
    """Show the graph of formats the installed plugins can reach from each source."""
    from sextant.cli import tables as report

    if as_json:
        return print_json(report.formats_document(ctx.obj.catalog))
    console().print(report.formats_tree(ctx.obj.catalog))
