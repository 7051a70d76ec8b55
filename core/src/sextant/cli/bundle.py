"""``sextant bundle``: a package or pipeline workspace as one file, to load on another machine.

The file's path goes to stdout (``--json``: one JSON document); ``sextant inspect``,
``sextant.load`` and ``sextant.load_optimized`` open the file as they open the folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sextant.cli._common import Debug, Json, print_json, stderr


def bundle(
    workspace: Annotated[
        Path, typer.Argument(help="A package folder (sextant optimize) or a pipeline workspace (optimize_pipeline).")
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The file to write \\[default: WORKSPACE.sextant.tgz beside it]."),
    ] = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Write a workspace into one file, with the SHA-256 of every file in it."""
    from sextant.bundle import bundle as write
    from sextant.bundle import describe

    bundled = write(workspace, output)
    if as_json:
        return print_json(describe(bundled))
    stderr().print(f"{bundled.kind}: {bundled.files} files, {bundled.size / 1e6:.1f} MB", highlight=False)
    typer.echo(str(bundled.path))
