"""``sextant analyze``: parse, call :func:`sextant_triton.analyze.analyze`, render. Messages go to
stderr; ``--json`` prints ``analysis.json`` on stdout.

Ctrl-C, SIGTERM (``timeout``, CI, ``docker stop``) and SIGHUP (a closed SSH session) stop a run the
same way: the claims it holds are released, the server it started is stopped, it says that every
finished measurement is kept and the same command resumes, and it exits as the signal would
(128 + its number: 130, 143, 129)."""

from __future__ import annotations

import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from sextant.api import SextantError, UsageError, stop_signals

from sextant_triton.cli import Candidate, Debug, TrustSource


class AnalysisStopped(SextantError):
    """A run stopped by Ctrl-C or a signal; it exits as that signal would (128 + its number)."""

    def __init__(self, exc: KeyboardInterrupt) -> None:
        signum = int(getattr(exc, "signum", signal.SIGINT))
        said = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        super().__init__(f"{said}: every finished measurement is kept; the same command resumes")
        self.exit_code = 128 + signum  # type: ignore[assignment]


def analyze_command(
    ctx: typer.Context,
    target: Annotated[Path, typer.Argument(help="A package (sextant optimize's folder) or a Triton model repository.")],
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="A model to analyze (repeat for several).")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="An analyze.yaml with the search space and settings.")
    ] = None,
    search: Annotated[str | None, typer.Option("--search", help="brute, quick or optuna (default: quick).")] = None,
    url: Annotated[str | None, typer.Option("--url", help="A running server's gRPC address (remote mode).")] = None,
    objective: Annotated[
        str | None,
        typer.Option(
            "--objective",
            help="throughput, latency or memory; with --model-type llm also ttft, itl, tokens-per-second.",
        ),
    ] = None,
    model_type: Annotated[
        str | None,
        typer.Option(
            "--model-type", help="llm: a streaming generation model, measured by tokens (TTFT, ITL, tokens/s)."
        ),
    ] = None,
    max_ttft_ms: Annotated[
        float | None, typer.Option("--max-ttft-ms", help="Time to first token budget (p99, ms; --model-type llm).")
    ] = None,
    max_itl_ms: Annotated[
        float | None, typer.Option("--max-itl-ms", help="Inter-token latency budget (p99, ms; --model-type llm).")
    ] = None,
    min_output_tokens_per_s: Annotated[
        float | None,
        typer.Option("--min-output-tokens-per-s", help="Least output token throughput (--model-type llm)."),
    ] = None,
    max_p99_ms: Annotated[float | None, typer.Option("--max-p99-ms", help="Latency budget (p99, ms).")] = None,
    min_throughput: Annotated[
        float | None, typer.Option("--min-throughput", help="Least throughput (infer/s).")
    ] = None,
    max_memory_mb: Annotated[float | None, typer.Option("--max-memory-mb", help="Most server memory (MB).")] = None,
    concurrent: Annotated[bool, typer.Option("--concurrent", help="Analyze the models at once (joint space).")] = False,
    rerank: Annotated[bool, typer.Option("--rerank", help="Rank stored measurements again; measure nothing.")] = False,
    top_n: Annotated[int | None, typer.Option("--top-n", help="Configurations swept over concurrency.")] = None,
    paired_rounds: Annotated[
        int | None,
        typer.Option(
            "--paired-rounds",
            help="Rounds in which the best is re-measured interleaved with the default before a gain is claimed "
            "(3; 0 turns it off).",
        ),
    ] = None,
    max_measurements: Annotated[
        int | None, typer.Option("--max-measurements", help="Measurements this run may make (all models together).")
    ] = None,
    budget_s: Annotated[float | None, typer.Option("--budget-s", help="Time budget in seconds.")] = None,
    storage: Annotated[
        str | None, typer.Option("--storage", help="Database URL shared by workers (PostgreSQL).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output folder (default: PACKAGE/analysis).")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print analysis.json on stdout.")] = False,
    candidate: Candidate = None,
    trust_source: TrustSource = False,
    debug: Debug = False,
) -> None:
    """Search serving configurations (batch sizes, dynamic batching, instances, client load) against
    a real Triton server and report the best under your objective and constraints. With --model-type
    llm, a streaming generation model is measured by time to first token, inter-token latency and
    output tokens/s (prompts: the YAML's llm: section)."""
    from sextant.api import Objective

    from sextant_triton.analyze.job import analyze
    from sextant_triton.analyze.settings import AnalyzeSettings, ModelSettings, read_file

    settings = read_file(file) if file else AnalyzeSettings()
    changes: dict[str, Any] = {}
    if model_type is not None:
        changes["model_type"] = model_type.lower()
    llm = (changes.get("model_type") or settings.model_type) == "llm"
    generation = {
        "--max-ttft-ms": max_ttft_ms,
        "--max-itl-ms": max_itl_ms,
        "--min-output-tokens-per-s": min_output_tokens_per_s,
    }
    given = [flag for flag, value in generation.items() if value is not None]
    if given and not llm:
        said = f"{', '.join(given)} measure{'s' if len(given) == 1 else ''} generation"
        raise UsageError(said, hint="Add --model-type llm (a streaming model).")
    if llm:  # in an LLM measurement p99_ms is the inter-token latency's and throughput is output tokens/s
        max_p99_ms = max_itl_ms if max_itl_ms is not None else max_p99_ms
        min_throughput = min_output_tokens_per_s if min_output_tokens_per_s is not None else min_throughput
    if model:
        known = {m.name: m for m in settings.models}
        changes["models"] = tuple(known.get(name, ModelSettings(name)) for name in model)
    for key, value in (
        ("search", search),
        ("top_n", top_n),
        ("paired_rounds", paired_rounds),
        ("max_measurements", max_measurements),
        ("budget_s", budget_s),
        ("storage", storage),
    ):
        if value is not None:
            changes[key] = value
    if url:
        changes.update(url=url, launch_mode="remote")
    if concurrent:
        changes["concurrent"] = True
    if trust_source:
        changes["trust_source"] = True
    if candidate is not None:
        changes["candidate"] = candidate
    if objective or any(v is not None for v in (max_p99_ms, min_throughput, max_memory_mb, max_ttft_ms)):
        base = settings.objective
        chosen = Objective.named(objective) if objective else base
        changes["objective"] = replace(
            chosen,
            max_p99_ms=max_p99_ms if max_p99_ms is not None else base.max_p99_ms,
            min_throughput=min_throughput if min_throughput is not None else base.min_throughput,
            max_memory_mb=max_memory_mb if max_memory_mb is not None else base.max_memory_mb,
            max_ttft_ms=max_ttft_ms if max_ttft_ms is not None else base.max_ttft_ms,
        )
    settings = replace(settings, **changes)

    def progress(point: dict, record: Any) -> None:
        from sextant_triton.analyze.outputs import numbers

        m = record.metrics
        what = numbers(m) if m else f"failed: {record.error}"
        print(f"  measured {point}: {what}", file=sys.stderr, flush=True)

    said: set[str] = set()

    def say(line: str) -> None:
        said.add(line)
        print(line, file=sys.stderr, flush=True)

    catalog = getattr(ctx.obj, "catalog", None)
    try:
        with stop_signals():
            result = analyze(
                target,
                settings,
                output=output,
                rerank=rerank,
                catalog=catalog,
                on_measured=progress,
                log=say,
            )
    except KeyboardInterrupt as exc:
        raise AnalysisStopped(exc) from None
    if json_:
        sys.stdout.write((result.output / "analysis.json").read_text() + "\n")
        return
    print(result.summary, file=sys.stderr)
    for event in result.events:
        if f"note: {event}" not in said:  # said while it ran
            print(f"  note: {event}", file=sys.stderr)
    print(f"measured {result.measured}, found stored {result.reused}; results in {result.output}:", file=sys.stderr)
    for path in result.files:
        print(f"  {path}", file=sys.stderr)
