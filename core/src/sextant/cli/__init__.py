"""The ``sextant`` command line: parse, call one pipeline function, render. No ML logic here.

Messages and progress go to stderr; ``--json`` prints exactly one JSON document on stdout. Exit
codes come from :class:`sextant.errors.ExitCode`.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from sextant import __version__
from sextant.errors import ExitCode, Interrupted, SextantError, UsageError

PANEL_RUN = "Run"
PANEL_CHECK = "Correctness"
PANEL_SELECT = "Selection and profiling"


@dataclass
class State:
    catalog: Any
    debug: bool = False


def _console(stderr: bool = False) -> Console:
    """A console for tables; wide when not a terminal, so piped tables and logs are not folded."""
    console = Console(stderr=stderr)
    if console.is_terminal or "COLUMNS" in os.environ:
        return console
    return Console(stderr=stderr, width=200)


def _stderr() -> Console:
    return _console(stderr=True)


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sextant {__version__}")
        raise typer.Exit()


def build_app(catalog: Any) -> typer.Typer:
    app = typer.Typer(
        name="sextant",
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
        ctx.obj = State(catalog=catalog, debug=debug)
        if debug:
            os.environ["SEXTANT_DEBUG"] = "1"

    @app.command(rich_help_panel="Plugins")
    def plugins(
        ctx: typer.Context,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
    ) -> None:
        """List installed plugins, what each contributes, and whether it is available here."""
        from sextant import report

        if as_json:
            return _print_json(report.plugins_document(ctx.obj.catalog))
        _console().print(report.plugins_table(ctx.obj.catalog))

    @app.command(rich_help_panel="Plugins")
    def formats(
        ctx: typer.Context,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
    ) -> None:
        """Show the graph of formats the installed plugins can reach from each source."""
        from sextant import report

        if as_json:
            return _print_json(report.formats_document(ctx.obj.catalog))
        _console().print(report.formats_tree(ctx.obj.catalog))

    @app.command(rich_help_panel="Optimize")
    def optimize(
        ctx: typer.Context,
        model: Annotated[
            str, typer.Argument(help="Model file/folder, or path/to/file.py:factory, or package.module:factory.")
        ],
        samples: Annotated[
            str | None,
            typer.Option(
                "--samples",
                "-s",
                help="NPZ file (one array per input name, first axis = batch), or file.py:function returning samples.",
                rich_help_panel=PANEL_RUN,
            ),
        ] = None,
        workspace: Annotated[
            Path | None,
            typer.Option(
                "--workspace",
                "-w",
                help="Package folder [default: ./sextant-workspace/<model-name>].",
                rich_help_panel=PANEL_RUN,
            ),
        ] = None,
        name: Annotated[
            str | None, typer.Option(help="Model name (workspace folder, reports).", rich_help_panel=PANEL_RUN)
        ] = None,
        device: Annotated[str, typer.Option(help="cpu, cuda or auto.", rich_help_panel=PANEL_RUN)] = "auto",
        formats: Annotated[
            str | None,
            typer.Option(
                "--formats", help="Only candidates of these formats (comma-separated).", rich_help_panel=PANEL_RUN
            ),
        ] = None,
        runners: Annotated[
            str | None,
            typer.Option("--runners", help="Only these runners (comma-separated).", rich_help_panel=PANEL_RUN),
        ] = None,
        precision: Annotated[
            str,
            typer.Option(help="Allowed precisions: fp32,bf16,fp16,int8,tf32 or auto (all).", rich_help_panel=PANEL_RUN),
        ] = "fp32",
        shape: Annotated[
            list[str] | None,
            typer.Option(
                "--shape",
                help="Input shape for generated samples, e.g. input:1x3x224x224 (repeatable).",
                rich_help_panel=PANEL_RUN,
            ),
        ] = None,
        source_option: Annotated[
            list[str] | None,
            typer.Option(
                "--source-option",
                help="KEY=VALUE for the model's loader, e.g. signature=serving_default (repeatable).",
                rich_help_panel=PANEL_RUN,
            ),
        ] = None,
        unbatched: Annotated[
            str | None,
            typer.Option(help="Inputs that have no batch axis (comma-separated).", rich_help_panel=PANEL_RUN),
        ] = None,
        step_timeout: Annotated[
            float,
            typer.Option(help="Seconds a step may go without progress before it is killed.", rich_help_panel=PANEL_RUN),
        ] = 600.0,
        fresh: Annotated[
            bool, typer.Option("--fresh", help="Ignore results recorded in the workspace.", rich_help_panel=PANEL_RUN)
        ] = False,
        plan: Annotated[
            bool, typer.Option("--plan", help="Print the plan and exit without running it.", rich_help_panel=PANEL_RUN)
        ] = False,
        atol: Annotated[
            float | None, typer.Option(help="Absolute tolerance [default: by precision].", rich_help_panel=PANEL_CHECK)
        ] = None,
        rtol: Annotated[
            float | None, typer.Option(help="Relative tolerance [default: by precision].", rich_help_panel=PANEL_CHECK)
        ] = None,
        tolerance: Annotated[
            list[str] | None,
            typer.Option(
                "--tolerance", help="Per-output override NAME:ATOL:RTOL (repeatable).", rich_help_panel=PANEL_CHECK
            ),
        ] = None,
        comparator: Annotated[
            str, typer.Option(help="Comparator that judges outputs (see sextant plugins).", rich_help_panel=PANEL_CHECK)
        ] = "allclose",
        objective: Annotated[
            str, typer.Option(help="throughput or latency.", rich_help_panel=PANEL_SELECT)
        ] = "throughput",
        latency_budget_ms: Annotated[
            float | None,
            typer.Option(help="Largest p99 latency a selected configuration may have.", rich_help_panel=PANEL_SELECT),
        ] = None,
        max_batch_size: Annotated[
            int, typer.Option(help="Largest batch size checked and profiled.", rich_help_panel=PANEL_SELECT)
        ] = 64,
        threads: Annotated[
            int | None, typer.Option(help="CPU threads per runner [default: all cores].", rich_help_panel=PANEL_SELECT)
        ] = None,
        batch_budget_s: Annotated[
            float,
            typer.Option(
                help="Seconds at most per batch size before a point is reported unstable.", rich_help_panel=PANEL_SELECT
            ),
        ] = 3.0,
        cutoff: Annotated[
            float,
            typer.Option(
                help="Stop profiling a candidate below this share of the best throughput at the same batch size.",
                rich_help_panel=PANEL_SELECT,
            ),
        ] = 0.7,
        search: Annotated[
            str | None,
            typer.Option(
                help="Search each runner's options with this strategy (sextant search --list).",
                rich_help_panel=PANEL_SELECT,
            ),
        ] = None,
        budget_s: Annotated[
            float | None,
            typer.Option(help="Seconds the search may take for each runner.", rich_help_panel=PANEL_SELECT),
        ] = None,
        window_ms: Annotated[
            float, typer.Option(help="Length of one measurement window.", rich_help_panel=PANEL_SELECT)
        ] = 50.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
    ) -> None:
        """Export, convert, check, profile and select the fastest correct way to run MODEL."""
        from sextant import report
        from sextant.pipeline import OptimizeOptions
        from sextant.pipeline import optimize as run_optimize
        from sextant.profiler import ProfilerConfig
        from sextant.specs import PRECISIONS

        precisions = PRECISIONS if precision == "auto" else tuple(_split(precision) or ())
        options = OptimizeOptions(
            workspace=workspace,
            name=name,
            device=device,
            formats=_split(formats),
            runners=_split(runners),
            precisions=precisions,
            step_timeout=step_timeout,
            fresh=fresh,
            objective=objective,
            latency_budget_ms=latency_budget_ms,
            max_batch_size=max_batch_size,
            atol=atol,
            rtol=rtol,
            tolerances=_tolerances(tolerance or []),
            comparator=comparator,
            shapes=_shapes(shape or []),
            source_options=_key_values(source_option or []),
            unbatched=_split(unbatched) or (),
            threads=threads,
            cutoff=cutoff,
            search=search,
            search_budget_s=budget_s,
            profiler=ProfilerConfig(batch_budget_s=batch_budget_s, window_s=window_ms / 1000.0),
        )
        console = _stderr()
        if plan:
            result = run_optimize(model, samples, options=options, catalog=ctx.obj.catalog, plan_only=True)
            if as_json:
                return _print_json(report.plan_document(result))
            return _console().print(report.plan_table(result))
        try:
            with report.ProgressView(console) as view:
                package = run_optimize(model, samples, options=options, catalog=ctx.obj.catalog, on_event=view)
        except KeyboardInterrupt:
            raise Interrupted(
                "interrupted: every finished step is kept in the workspace",
                hint="Run the same command again to resume where it stopped.",
            ) from None
        _render_package(package.status, str(package.path), as_json, console)

    @app.command(rich_help_panel="Optimize")
    def inspect(
        package: Annotated[Path, typer.Argument(help="A package folder written by sextant optimize.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
    ) -> None:
        """Show what an optimize run produced: every candidate, its status, numbers and the winner."""
        from sextant.package import Package

        opened = Package(package)
        _render_package(opened.status, str(opened.path), as_json, _stderr())

    catalog.manager.hook.sextant_register_commands(app=app)
    return app


def _render_package(status: dict[str, Any], path: str, as_json: bool, console: Console) -> None:
    from sextant import report

    if as_json:
        return _print_json({"package": path, **status})
    _console().print(report.results_table(status))
    for line in report.reasons(status):
        console.print(f"  {line}", highlight=False)
    for note in status.get("notes", []):
        console.print(f"[cyan]note:[/cyan] {escape(note)}")
    console.print(report.summary_line(status, path))


def _split(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _shapes(items: list[str]) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for item in items:
        name, sep, dims = item.rpartition(":")
        try:
            if not sep or not name:
                raise ValueError
            shapes[name] = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            raise UsageError(
                f"--shape {item!r} is not NAME:DxDxD", hint="For example --shape input:1x3x224x224."
            ) from None
    return shapes


def _key_values(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(
                f"--source-option {item!r} is not KEY=VALUE", hint="For example signature=serving_default."
            )
        out[key.strip()] = value
    return out


def _tolerances(items: list[str]) -> dict[str, tuple[float, float]]:
    out = {}
    for item in items:
        parts = item.rsplit(":", 2)
        try:
            if len(parts) != 3:
                raise ValueError
            out[parts[0]] = (float(parts[1]), float(parts[2]))
        except ValueError:
            raise UsageError(
                f"--tolerance {item!r} is not NAME:ATOL:RTOL", hint="For example --tolerance logits:1e-3:1e-3."
            ) from None
    return out


def main(argv: list[str] | None = None) -> int:
    """Console entry point: build the catalog, run the app, map errors to exit codes."""
    debug = os.environ.get("SEXTANT_DEBUG") == "1" or "--debug" in (argv if argv is not None else sys.argv[1:])
    console = _stderr()
    try:
        from sextant.plugins import load_catalog

        app = build_app(load_catalog())
        typer.main.get_command(app).main(args=argv, prog_name="sextant", standalone_mode=True)
        return ExitCode.OK
    except SystemExit as exc:  # Typer ends every run this way; usage errors exit with 2
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else ExitCode.ERROR)
    except SextantError as exc:
        if debug:
            console.print(traceback.format_exc(), markup=False, highlight=False)
        console.print(f"[bold red]error:[/bold red] {exc.message}", highlight=False)
        if exc.hint:
            console.print(exc.hint, highlight=False)
        return exc.exit_code
    except Exception as exc:  # a bug or an unexpected library error: still one paragraph
        if debug:
            console.print(traceback.format_exc(), markup=False, highlight=False)
        console.print(f"[bold red]error:[/bold red] {type(exc).__name__}: {exc}", highlight=False)
        if not debug:
            console.print("This is unexpected; run again with --debug for the traceback and report it.")
        return ExitCode.ERROR


def entry() -> None:
    sys.exit(main())
