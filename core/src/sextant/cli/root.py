"""The root ``sextant`` application: its commands, ``--debug`` and ``--version``, and the entry
point that builds the plugin catalog, adds the plugins' commands, and turns errors into exit codes.

Tests run commands on :data:`app` with a catalog of their choice::

    CliRunner().invoke(app, ["plugins", "--json"], obj=State(catalog))
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from sextant import __version__
from sextant.cli import bundle, deploy, optimize, plugins, report
from sextant.cli._common import State, debugging, report_error, set_debug
from sextant.errors import ExitCode, SextantError

if TYPE_CHECKING:
    from sextant.plugins import Catalog


class SextantGroup(TyperGroup):
    """Runs a command; a :class:`SextantError` becomes one paragraph on stderr and its exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except SextantError as exc:
            raise typer.Exit(report_error(exc, debugging(ctx.obj))) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sextant {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="sextant",
    cls=SextantGroup,
    help="Find the fastest way to run a trained model that still gives the right answers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


@app.callback()
def root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    if ctx.obj is None:  # run without main(), e.g. app() from Python: the installed plugins
        from sextant.plugins import load_catalog

        ctx.obj = State(catalog=load_catalog())
    set_debug(ctx, debug or debugging())


app.command(rich_help_panel="Plugins")(plugins.plugins)
app.command(rich_help_panel="Plugins")(plugins.formats)
app.command(rich_help_panel="Optimize", cls=optimize.OptimizeCommand)(optimize.optimize)
app.command(rich_help_panel="Optimize")(optimize.inspect)
app.command(rich_help_panel="Optimize")(report.report)
app.command(rich_help_panel="Optimize")(bundle.bundle)
app.add_typer(deploy.group, name="deploy", rich_help_panel=deploy.PANEL)


def with_plugin_commands(catalog: Catalog) -> typer.Typer:
    """:data:`app` plus the commands ``catalog``'s plugins add, on a copy (``app`` stays as built)."""
    extended = copy.copy(app)
    extended.registered_commands = list(app.registered_commands)
    extended.registered_groups = list(app.registered_groups)
    catalog.manager.hook.sextant_register_commands(app=extended)
    return extended


def main(argv: list[str] | None = None) -> int:
    """Console entry point: build the catalog, run the app, return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        from sextant.plugins import load_catalog

        catalog = load_catalog()
        command = typer.main.get_command(with_plugin_commands(catalog))
        command.main(args=args, prog_name="sextant", standalone_mode=True, obj=State(catalog=catalog))
        return ExitCode.OK
    except SystemExit as exc:  # Typer ends every run this way; usage errors exit with 2
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else ExitCode.ERROR)
    except Exception as exc:  # a broken plugin catalog, or a bug: still one paragraph
        return report_error(exc, debugging() or "--debug" in args)


def entry() -> None:
    """The console script: :func:`main`, then :func:`leave` with its exit code."""
    leave(main())


def leave(code: int) -> NoReturn:
    """End the process with ``code`` once the exit handlers have run and the streams are flushed,
    skipping the interpreter's teardown: with torch imported, freeing its modules one by one takes
    0.6-0.8 s (issue 27), and nothing of sextant's is left to do by then (every file it writes is
    closed, and the exit handlers stop what it started). :func:`main` returns normally, for tests
    and callers in-process."""
    atexit._run_exitfuncs()  # noqa: SLF001 - the handlers Python runs at exit, in their order
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing more can reach it
            stream.flush()
    os._exit(code)
