"""The ``sextant deploy triton`` and ``sextant serve`` commands: parse, call one function, render.

``deploy`` is a group that other deployer plugins can add subcommands to: :func:`register` finds a
group named ``deploy`` already on the app, or adds it. Messages go to stderr; ``--json`` prints one
JSON document on stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

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


def deploy_group(app: typer.Typer) -> typer.Typer:
    """The app's ``deploy`` group, added if no plugin has added it yet."""
    for info in app.registered_groups:
        if info.name == "deploy" and info.typer_instance is not None:
            return info.typer_instance
    group = typer.Typer(
        name="deploy",
        help="Write a package's candidate to a serving target (one subcommand per deployer).",
        no_args_is_help=True,
    )
    app.add_typer(group, name="deploy", rich_help_panel=PANEL)
    return group


def _sizes(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: give batch sizes as integers separated by commas, e.g. 4,8") from None


def deploy_triton(
    package: Annotated[Path, typer.Argument(help="A package folder written by sextant optimize.")],
    repository: Annotated[
        Path, typer.Option("--repository", "-r", help="The model repository folder (created if missing).")
    ],
    candidate: Candidate = None,
    name: Name = None,
    version: Annotated[int, typer.Option(help="The model version folder to write.")] = 1,
    backend: Annotated[
        str, typer.Option(help="native (refuse when Triton has none), python (sextant's runner), or auto.")
    ] = "auto",
    max_batch_size: Annotated[
        int | None, typer.Option(help="0 disables batching. Default: the largest batch size profiled.")
    ] = None,
    instances: Annotated[
        int | None, typer.Option(help="Model instances. Default: host threads / threads per call as measured.")
    ] = None,
    dynamic_batching: Annotated[
        bool | None,
        typer.Option("--dynamic-batching/--no-dynamic-batching", help="Default: on when batches above 1 are allowed."),
    ] = None,
    preferred_batch_sizes: Annotated[
        str | None, typer.Option(help="Comma-separated. Default: batch sizes within 10 % of the best throughput.")
    ] = None,
    queue_delay_us: Annotated[
        int | None, typer.Option(help="Dynamic batcher's max queue delay. Default: the median batch-1 latency.")
    ] = None,
    warmup: Annotated[bool, typer.Option("--warmup/--no-warmup", help="Warmup requests from the samples.")] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace a model folder or client file that differs.")] = False,
    trust_source: TrustSource = False,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")] = False,
    debug: Debug = False,
) -> None:
    """Write a package's candidate into a Triton model repository, with settings from its profile.

    A native backend where Triton has one for the artifact, else sextant's runner in Triton's Python
    backend; a tritonclient example is written next to the repository."""
    from sextant_triton import config
    from sextant_triton.repository import deploy_package

    deployment = deploy_package(
        package,
        repository,
        candidate=candidate,
        name=name,
        force=force,
        version=version,
        backend=backend,
        max_batch_size=max_batch_size,
        instances=instances,
        dynamic_batching=dynamic_batching,
        preferred_batch_sizes=_sizes(preferred_batch_sizes),
        queue_delay_us=queue_delay_us,
        warmup=warmup,
        trust_source=trust_source,
    )
    written = config.to_dict(config.read(Path(deployment.target) / deployment.name / "config.pbtxt"))
    chosen = written.get("parameters", {}).get("sextant_candidate", {}).get("string_value", "")
    if json_:
        document: dict[str, Any] = {
            "repository": deployment.target,
            "name": deployment.name,
            "candidate": chosen,
            "files": [str(f) for f in deployment.files],
            "notes": list(deployment.notes),
            "config": written,
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    err = sys.stderr
    print(f"deployed {deployment.name} ({chosen}) to {deployment.target}", file=err)
    for note in deployment.notes:
        print(f"  {note}", file=err)
    for path in deployment.files:
        print(f"  wrote {path}", file=err)
    client = next((f for f in deployment.files if f.name.endswith("_client.py")), None)
    print(f"start:  python -m sextant_triton.server {deployment.target}", file=err)
    if client is not None:
        print(f"client: python {client}", file=err)


def serve(
    package: Annotated[Path, typer.Argument(help="A package folder written by sextant optimize.")],
    candidate: Candidate = None,
    name: Name = None,
    host: Annotated[str, typer.Option(help="Address every endpoint binds to.")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option(help="HTTP port (0: a free one).")] = 8000,
    grpc_port: Annotated[int, typer.Option(help="gRPC port (0: a free one).")] = 8001,
    metrics_port: Annotated[int, typer.Option(help="Metrics port (0: a free one).")] = 8002,
    trust_source: TrustSource = False,
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
        on_ready=ready,
    )
    print("stopped", file=sys.stderr)


def register(app: typer.Typer) -> None:
    from sextant_triton.analyze.cli import analyze_command

    deploy_group(app).command("triton")(deploy_triton)
    app.command(rich_help_panel=PANEL)(serve)
    app.command("analyze", rich_help_panel=PANEL)(analyze_command)
