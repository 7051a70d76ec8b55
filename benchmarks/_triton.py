"""What the Model Analyzer benchmarks share: the tools' own virtualenv, our perf_analyzer behind a
wrapper that finds its libraries, Model Analyzer's settings for launching the tritonserver of the nvidia-pytriton wheel
itself (no Docker, no GPU), and a Model Analyzer run that a timeout stops with all it started.

sextant_triton is imported by the functions, so a script's ``--help`` needs none of it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def install_venv(venv: Path, requirements: Path, what: str) -> None:
    """Make ``venv`` and pip-install ``requirements`` into it (``what`` names them in the messages);
    a failed install is said, not raised: the benchmark then runs sextant's side only."""
    print(f"installing {what} into {venv} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(requirements)], check=False)
    if done.returncode:
        print(f"!!! could not install {what} (pip exit {done.returncode}): only sextant's side runs")


def perf_analyzer_wrapper(path: Path) -> Path:
    """A shell script at ``path`` that runs our perf_analyzer with ``LD_LIBRARY_PATH`` set for its
    libraries (Model Analyzer and GenAI-Perf start the binary they are given, or find on PATH)."""
    from sextant_triton import perf

    pa = perf.binary()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'#!/bin/sh\nLD_LIBRARY_PATH="{pa.parent / "libs"}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"\n'
        f'export LD_LIBRARY_PATH\nexec "{pa}" "$@"\n'
    )
    path.chmod(0o755)
    return path


def local_server(work: Path, path: str) -> dict[str, Any]:
    """Model Analyzer's settings for a tritonserver it launches itself (``triton_launch_mode: local``):
    the wheel's binary, with ``backend-directory`` pointing at a copy of the Python backend plus the
    stub for this interpreter (in ``work``), ``triton_server_environment`` carrying the
    ``LD_LIBRARY_PATH`` the stub needs and ``path`` as ``PATH``, free ports in ``triton_*_endpoint`` /
    ``triton_metrics_url`` (the defaults are 8000-8002), and the server's log in ``work``."""
    from sextant_triton.server import Distribution, Ports, make_backends, server_env

    dist = Distribution.find()
    backends = make_backends(dist, work / "backends")
    env = server_env(dist, {"PATH": path})
    ports = Ports.free()
    return {
        "triton_launch_mode": "local",
        "triton_server_path": str(dist.binary),
        "triton_server_flags": {
            "backend-directory": str(backends),
            "http-address": "127.0.0.1",
            "grpc-address": "127.0.0.1",
            "metrics-address": "127.0.0.1",
        },
        "triton_server_environment": {"LD_LIBRARY_PATH": env["LD_LIBRARY_PATH"], "PATH": env["PATH"]},
        "triton_http_endpoint": f"127.0.0.1:{ports.http}",
        "triton_grpc_endpoint": f"127.0.0.1:{ports.grpc}",
        "triton_metrics_url": f"http://127.0.0.1:{ports.metrics}/metrics",
        "triton_output_path": str(work / "tritonserver.log"),
    }


def profile(
    binary: Path, config: Path, work: Path, log: Path, timeout_s: float, env: dict[str, str] | None = None
) -> tuple[int | None, float]:
    """``model-analyzer profile -f CONFIG`` in ``work``, its output in ``log``: ``(exit code, wall
    seconds)``, the code ``None`` when it ran past ``timeout_s``. It runs in a session of its own, so
    a timeout stops its tritonserver and perf_analyzer too. ``env``: the environment (``None``: ours)."""
    start = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(binary), "profile", "-f", str(config)],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code: int | None = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()
            code = None
    return code, time.perf_counter() - start
