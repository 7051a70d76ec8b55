"""``sextant optimize`` and ``sextant inspect``: parse the flags (or a run file), call the pipeline
once, render what it returns.

Each flag that sets an option is a :data:`sextant.options.SETTINGS` entry of the same name; the
options object is built once, by :meth:`OptimizeOptions.from_settings`, from the run file's values
overridden by the flags given on the command line. Defaults are the dataclasses'; the help reads
them there when it is printed (reading them imports the profiler, so plain ``sextant --help`` does
not).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperCommand

from sextant.cli._common import (
    PANEL_CHECK,
    PANEL_RUN,
    PANEL_SELECT,
    Debug,
    Json,
    console,
    print_json,
    render_package,
    stderr,
)
from sextant.errors import Interrupted, UsageError
from sextant.objective import PRESETS
from sextant.specs import PRECISIONS

PANEL_GENERATE = "Text generation"

if TYPE_CHECKING:
    from sextant.package import Package


class OptimizeCommand(TyperCommand):
    """Shows each option's default, read from the dataclasses, when the help is printed."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from sextant.options import SETTINGS, setting_name

        for param in self.params:
            setting = SETTINGS.get(setting_name(param.name or ""))
            if setting is not None and param.default is None:
                param.default = setting.default()
        super().format_help(ctx, formatter)


def optimize(
    ctx: typer.Context,
    model: Annotated[
        str | None,
        typer.Argument(
            help="Model file/folder, or path/to/file.py:factory, or package.module:factory "
            "(optional when the run file names it).",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Run file (TOML): keys are these flags' long names, plus model and samples; "
            "flags given here override it.",
            rich_help_panel=PANEL_RUN,
        ),
    ] = None,
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
            help="Package folder \\[default: ./sextant-workspace/<model-name>].",
            rich_help_panel=PANEL_RUN,
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Model name (workspace folder, reports).", rich_help_panel=PANEL_RUN)
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or auto.", rich_help_panel=PANEL_RUN)] = None,
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
    steps: Annotated[
        str | None,
        typer.Option(
            "--steps",
            help="Only artifacts built by these exporters and converters (comma-separated, e.g. "
            "torch-onnx-legacy,onnx-slim); the source's own candidates stay.",
            rich_help_panel=PANEL_RUN,
        ),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help=f"Allowed precisions: {','.join(PRECISIONS)} or auto (all).",
            rich_help_panel=PANEL_RUN,
        ),
    ] = None,
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
        float | None,
        typer.Option(help="Seconds a step may go without progress before it is killed.", rich_help_panel=PANEL_RUN),
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Ignore results recorded in the workspace.", rich_help_panel=PANEL_RUN)
    ] = False,
    reload: Annotated[
        bool,
        typer.Option(
            "--reload",
            help="Load the model even when nothing the workspace's package depends on changed (files it "
            "read, arguments, options, installation, machine), reusing what is cached.",
            rich_help_panel=PANEL_RUN,
        ),
    ] = False,
    no_history: Annotated[
        bool,
        typer.Option(
            "--no-history",
            help="Neither read nor write this machine's history of what won (measure in the plan's order).",
            rich_help_panel=PANEL_RUN,
        ),
    ] = False,
    plan: Annotated[
        bool, typer.Option("--plan", help="Print the plan and exit without running it.", rich_help_panel=PANEL_RUN)
    ] = False,
    atol: Annotated[
        float | None, typer.Option(help="Absolute tolerance \\[default: by precision].", rich_help_panel=PANEL_CHECK)
    ] = None,
    rtol: Annotated[
        float | None, typer.Option(help="Relative tolerance \\[default: by precision].", rich_help_panel=PANEL_CHECK)
    ] = None,
    tolerance: Annotated[
        list[str] | None,
        typer.Option(
            "--tolerance", help="Per-output override NAME:ATOL:RTOL (repeatable).", rich_help_panel=PANEL_CHECK
        ),
    ] = None,
    comparator: Annotated[
        str | None,
        typer.Option(help="Comparator that judges outputs (see sextant plugins).", rich_help_panel=PANEL_CHECK),
    ] = None,
    allow_nan: Annotated[
        bool,
        typer.Option(
            "--allow-nan",
            help="Accept NaN/Inf in the reference outputs; candidates must have them at the same positions.",
            rich_help_panel=PANEL_CHECK,
        ),
    ] = False,
    objective: Annotated[
        str | None,
        typer.Option(help=f"{', '.join(list(PRESETS)[:-1])} or {list(PRESETS)[-1]}.", rich_help_panel=PANEL_SELECT),
    ] = None,
    latency_budget_ms: Annotated[
        float | None,
        typer.Option(help="Largest p99 latency a selected configuration may have.", rich_help_panel=PANEL_SELECT),
    ] = None,
    max_memory_mb: Annotated[
        float | None,
        typer.Option(
            help="Largest peak resident memory (MB) a selected configuration may have.", rich_help_panel=PANEL_SELECT
        ),
    ] = None,
    min_throughput: Annotated[
        float | None,
        typer.Option(
            help="Smallest throughput (samples/s) a selected configuration may have.", rich_help_panel=PANEL_SELECT
        ),
    ] = None,
    max_batch_size: Annotated[
        int | None, typer.Option(help="Largest batch size checked and profiled.", rich_help_panel=PANEL_SELECT)
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(help="CPU threads per runner \\[default: all cores].", rich_help_panel=PANEL_SELECT),
    ] = None,
    batch_budget_s: Annotated[
        float | None,
        typer.Option(
            help="Seconds at most per batch size before a point is reported unstable.", rich_help_panel=PANEL_SELECT
        ),
    ] = None,
    dense_sweep: Annotated[
        bool,
        typer.Option(
            "--dense-sweep",
            help="Profile batch sizes 1, 2, 4, ... up to the plateau rather than 1, 4, 16, ... up to the "
            "plateau and then the sizes beside the best.",
            rich_help_panel=PANEL_SELECT,
        ),
    ] = False,
    cutoff: Annotated[
        float | None,
        typer.Option(
            help="Screen out a candidate whose short measurement at batch 1 and the largest batch is under "
            "this share of the best throughput measured so far, and stop a sweep that can come within neither "
            "10 % of the best nor this share of it (0: profile every candidate in full).",
            rich_help_panel=PANEL_SELECT,
        ),
    ] = None,
    paired_rounds: Annotated[
        int | None,
        typer.Option(
            help="Rounds of paired windows in which the best, its close runners-up and the baseline are "
            "measured again, interleaved, to decide close calls and give the speedup with its spread; at least 3, "
            "then no more once the rest cannot change which is best (0: off).",
            rich_help_panel=PANEL_SELECT,
        ),
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(
            help="Search each runner's options with this strategy (sextant search --list).",
            rich_help_panel=PANEL_SELECT,
        ),
    ] = None,
    budget_s: Annotated[
        float | None,
        typer.Option(
            help="Seconds the whole run may take: after them nothing new starts, the best so far is "
            "selected and the run says what it did not try.",
            rich_help_panel=PANEL_RUN,
        ),
    ] = None,
    search_budget_s: Annotated[
        float | None,
        typer.Option(help="Seconds the search may take for each runner.", rich_help_panel=PANEL_SELECT),
    ] = None,
    window_ms: Annotated[
        float | None, typer.Option(help="Length of one measurement window.", rich_help_panel=PANEL_SELECT)
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="forward (one forward pass), text-generation (a causal LM's generation loop: prompts, "
            "TTFT, inter-token latency, tokens/s), or auto (text-generation for a causal LM with generate).",
            rich_help_panel=PANEL_GENERATE,
        ),
    ] = None,
    prompt_lengths: Annotated[
        str | None,
        typer.Option(help="Lengths of the generated prompts (comma-separated).", rich_help_panel=PANEL_GENERATE),
    ] = None,
    new_tokens: Annotated[
        int | None, typer.Option(help="Tokens generated per prompt.", rich_help_panel=PANEL_GENERATE)
    ] = None,
    generation_batches: Annotated[
        str | None,
        typer.Option(
            help="Concurrent sequences output tokens/s is measured at (comma-separated).",
            rich_help_panel=PANEL_GENERATE,
        ),
    ] = None,
    max_ttft_ms: Annotated[
        float | None,
        typer.Option(help="Largest time to first token (longest prompt) a pick may have.", rich_help_panel=PANEL_GENERATE),
    ] = None,
    max_itl_ms: Annotated[
        float | None,
        typer.Option(help="Largest inter-token latency (p99) a pick may have.", rich_help_panel=PANEL_GENERATE),
    ] = None,
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Export, convert, check, profile and select the fastest correct way to run MODEL."""
    from sextant.cli import tables as report
    from sextant.optimizer import run as optimizer
    from sextant.options import OptimizeOptions

    settings = run_settings(ctx, config)
    model, samples = settings.pop("model", None), settings.pop("samples", None)
    if model is None:
        raise UsageError(
            "no MODEL to optimize",
            hint='Give it on the command line, or as model = "path/to/model" in the run file (--config).',
        )
    options = OptimizeOptions.from_settings(settings)
    catalog = ctx.obj.catalog
    if plan:
        result = optimizer.optimize(model, samples, options=options, catalog=catalog, plan_only=True)
        if as_json:
            return print_json(report.plan_document(result))
        return console().print(report.plan_table(result))
    from sextant.stops import signal_of, stop_signals

    try:
        with stop_signals(), report.ProgressView(stderr()) as view:
            package = optimizer.optimize(model, samples, options=options, catalog=catalog, on_event=view)
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP
        signum = signal_of(exc)
        raise Interrupted(
            f"{'interrupted' if signum == signal.SIGINT else f'stopped by {signal.Signals(signum).name}'}: "
            "every finished step is kept in the workspace",
            hint="Run the same command again to resume where it stopped.",
            signum=signum,
        ) from None
    render_package(package, as_json, said=view.said)
    page = package.path / "report.html"
    if page.exists():
        stderr().print(f"report: {escape(str(page))}", highlight=False)


def run_settings(ctx: typer.Context, config: Path | None) -> dict[str, Any]:
    """The run's settings by flag name: the run file's, then the flags given on the command line."""
    from sextant.cli.runfile import RUN_KEYS, read_run_file
    from sextant.options import SETTINGS, setting_name

    settings = read_run_file(config, tuple(SETTINGS)) if config is not None else {}
    for parameter, value in ctx.params.items():
        name = setting_name(parameter)
        if (name in RUN_KEYS or name in SETTINGS) and given(ctx, parameter):
            settings[name] = value
    return settings


def given(ctx: typer.Context, parameter: str) -> bool:
    """Whether ``parameter`` was given (on the command line), not left at its default."""
    source = ctx.get_parameter_source(parameter)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def inspect(
    package: Annotated[
        Path, typer.Argument(help="A package folder written by sextant optimize, or a file written by sextant bundle.")
    ],
    as_json: Json = False,
    debug: Debug = False,
) -> None:
    """Show what an optimize run produced: every candidate, its status, numbers and the winner.
    For a pipeline workspace (``sextant.optimize_pipeline``): a table per module and the end-to-end result."""
    from sextant.bundle import opened
    from sextant.pipelines.records import is_composite, read_record
    from sextant.package import Package

    package = opened(package)
    if is_composite(package):
        from sextant.cli.pipelines import render_composite

        return render_composite(read_record(package), str(package), as_json)

    opened = Package(package)
    render_package(opened, as_json, package_problems(opened))


def package_problems(package: Package) -> list[str]:
    """What makes a package's table misleading now: a run still writing it, or a selected candidate
    whose files are gone or changed since the run (it would not load)."""
    from sextant.errors import PackageError
    from sextant.optimizer.lock import holder

    running = holder(package.path)
    if running is not None:
        return [f"a run is in progress in this workspace ({running.describe()}): these results are partial"]
    best = package.document.best
    if best is None:
        return []
    try:
        package.candidate(best).check_files(trust_source=True)  # the files only; nothing is loaded
    except PackageError as exc:
        return [f"the selected candidate {best} cannot be loaded: {exc.message}. {exc.hint or ''}".strip()]
    return []
