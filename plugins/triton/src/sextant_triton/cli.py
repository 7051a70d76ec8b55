"""The ``sextant serve`` command (parse, call one function, render) and the options Triton's commands
share (``sextant analyze`` is :mod:`sextant_triton.analyze.cli`; the plugin's hook registers both).

``sextant deploy triton`` is the core's command (:mod:`sextant.cli.deploy`), built from the
deployer's spec. Messages go to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

PANEL = "Serving"


def _debug(ctx: typer.Context, value: bool) -> bool:
    """``--debug`` after the command: tracebacks for this run (the root command has its own)."""
    if value and hasattr(ctx.obj, "debug"):
        ctx.obj.debug = True
    return value


Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.", callback=_debug)]
Candidate = Annotated[
    str | None, typer.Option("--candidate", help="A candidate id (default: the package's selected best).")
]
Name = Annotated[str | None, typer.Option("--name", help="The served model's name (default: the package's).")]
TrustSource = Annotated[
    bool,
    typer.Option(
        "--trust-source",
        help="Allow loading a candidate that unpickles the package's files (a source nn.Module, Keras custom "
        "classes), which runs any code they hold: only for packages you made or trust.",
    ),
]


def serve(
    package: Annotated[Path, typer.Argument(help="A package folder written by sextant optimize.")],
    candidate: Candidate = None,
    name: Name = None,
    host: Annotated[str, typer.Option(help="Address every endpoint binds to.")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option(help="HTTP port (0: a free one).")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="gRPC port (0: a free one).")] = 8001,
    metrics_port: Annotated[int, typer.Option(help="Metrics port (0: a free one).")] = 8002,
    trust_source: TrustSource = False,
    max_sequences: Annotated[
        int | None,
        typer.Option(
            help="A text-generation package: the most requests decoded together (continuous batching, where its "
            "generator can; default 8)."
        ),
    ] = None,
    debug: Debug = False,
) -> None:
    """Serve a package's candidate through PyTriton until Ctrl-C, SIGTERM or SIGHUP.

    Triton Inference Server answers on HTTP and gRPC; sextant's runner computes in this process.
    Any --host but a loopback address is served with a warning that says what it exposes."""
    from sextant_triton.serve import Served
    from sextant_triton.serve import serve as run
    from sextant_triton.server import exposure

    def ready(served: Served) -> None:
        print(
            f"serving {served.name} ({served.candidate}): HTTP {served.http_url}, gRPC {served.grpc_url}; "
            f"max_batch_size {served.settings.max_batch_size}, {served.settings.instances} instance(s). "
            f"Ctrl-C or SIGTERM stops. Server log: {served.log}",
            file=sys.stderr,
            flush=True,
        )
        for note in served.notes:
            print(note, file=sys.stderr, flush=True)
        exposed = exposure(served.host, served.http_port, served.grpc_port, served.metrics_port)
        if exposed:
            print(f"warning: {exposed}", file=sys.stderr, flush=True)

    run(
        package,
        candidate=candidate,
        name=name,
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        trust_source=trust_source,
        max_sequences=max_sequences,
        on_ready=ready,
    )
    print("stopped", file=sys.stderr)

