"""sextant plugin for Triton Inference Server: the ``triton`` deployer (``sextant deploy triton``,
a command the core builds from the spec below) and ``sextant serve``.

- :func:`deploy` writes a package's candidate into a Triton model repository: a native backend
  where Triton has one (ONNX Runtime, LibTorch, TensorFlow, TensorRT) with the settings the
  candidate was measured with, else a Python-backend model running sextant's runner; serving
  settings derived from the package's profile; ``config.pbtxt`` through Triton's protobuf schema;
  a tritonclient example next to the repository. A text-generation package's candidate becomes a
  streaming (decoupled) Python-backend model, one response per token (:mod:`sextant_triton.stream_deploy`).
- :func:`serve` serves a candidate through PyTriton until Ctrl-C or SIGTERM; :func:`serving` does
  it for the length of a ``with`` block.
- :mod:`sextant_triton.server` starts the real ``tritonserver`` on a repository (tests, analysis).

This module only declares; tritonclient, protobuf and PyTriton are imported by the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer  # the CLI's own dependency, already loaded when commands are registered
from sextant.api import ONNX, TENSORRT_ENGINE, TF_SAVEDMODEL, TORCHSCRIPT, DeployerSpec, DeployOption, hookimpl

if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from pathlib import Path

    from sextant.api import Deployment

    from sextant_triton.serve import Served

INSTALL = "pip install sextant-triton (tritonclient[grpc,http])"


@hookimpl
def sextant_register_deployers() -> list[DeployerSpec]:
    from sextant_triton.settings import OPTIONS

    return [
        DeployerSpec(
            "triton",
            deploy="sextant_triton.repository:deploy",
            formats=(ONNX, TORCHSCRIPT, TF_SAVEDMODEL, TENSORRT_ENGINE),
            requires=("tritonclient",),
            install=INSTALL,
            description="a Triton model repository: native backend where Triton has one, else sextant's runner "
            "in the Python backend; settings from the profile",
            target=DeployOption(
                "repository",
                "path",
                short="-r",
                required=True,
                help="The model repository folder (created if missing).",
            ),
            options=OPTIONS,
        )
    ]


@hookimpl
def sextant_register_commands(app: typer.Typer) -> None:
    from sextant_triton import cli
    from sextant_triton.analyze.cli import analyze_command

    app.command(rich_help_panel=cli.PANEL)(cli.serve)
    app.command("analyze", rich_help_panel=cli.PANEL)(analyze_command)


def deploy(package: str | Path, repository: str | Path, **options: Any) -> Deployment:
    """Write ``package``'s selected candidate (or ``candidate=``) into the Triton model repository
    ``repository``; see :func:`sextant_triton.repository.deploy_package` for the options."""
    from sextant_triton.repository import deploy_package

    return deploy_package(package, repository, **options)


def serve(package: str | Path, **options: Any) -> None:
    """Serve ``package``'s candidate through PyTriton until Ctrl-C or SIGTERM (127.0.0.1:8000 HTTP,
    :8001 gRPC by default); see :func:`sextant_triton.serve.serving` for the options."""
    from sextant_triton.serve import serve as _serve

    _serve(package, **options)


def serving(package: str | Path, **options: Any) -> AbstractContextManager[Served]:
    """Serve for the length of a ``with`` block: ``with serving(pkg, http_port=0) as served: ...``."""
    from sextant_triton.serve import serving as _serving

    return _serving(package, **options)
