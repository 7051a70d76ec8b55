"""``sextant serve`` under faults: a hang-up (SIGHUP, a closed SSH session) stops it as Ctrl-C and
SIGTERM do, ``kill -9`` leaves no tritonserver behind, and serving on anything but a loopback address
warns, saying what it exposes. The real PyTriton server on a real package; processes are found by PID
and waited for by a bounded number of polls."""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

import pytest
from _models import onnx_package
from _processes import children, cmdline, left_alive
from sextant_triton.server import exposure, loopback
from sextant_triton.testing import NO_SERVER


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_a_loopback_host_exposes_nothing(host):
    assert loopback(host) and exposure(host, 8000, 8001, 8002) is None


@pytest.mark.parametrize(("host", "where"), [("0.0.0.0", "every network"), ("192.168.1.7", "192.168.1.7")])
def test_any_other_host_says_what_it_exposes(host, where):
    said = exposure(host, 8000, 8001, 8002)
    assert not loopback(host) and said is not None
    for part in (where, "without authentication", "HTTP port 8000", "gRPC port 8001", "model-control API", "8002"):
        assert part in said


def test_serve_warns_when_it_binds_beyond_loopback(monkeypatch, tmp_path):
    """The command's rendering alone: the server is replaced by one that says it is ready."""
    from sextant.cli import State, with_plugin_commands
    from sextant.plugins import load_catalog
    from sextant_triton.serve import Served
    from sextant.api import ServingSettings
    from typer.testing import CliRunner

    def ready_at_once(package, *, on_ready, host, http_port, grpc_port, metrics_port, **options):
        settings = ServingSettings(4, True, (), 0, 1, "cpu", 1)
        on_ready(Served("m", "c", host, http_port, grpc_port, settings, metrics_port=metrics_port))

    monkeypatch.setattr(importlib.import_module("sextant_triton.serve"), "serve", ready_at_once)
    catalog = load_catalog()
    app, state = with_plugin_commands(catalog), State(catalog)
    exposed = CliRunner().invoke(app, ["serve", str(tmp_path), "--host", "0.0.0.0"], obj=state)
    text = " ".join(exposed.output.split())
    assert exposed.exit_code == 0, text
    assert "warning: serving on 0.0.0.0 exposes it to every network this machine is on" in text
    assert "Triton's model-control API" in text and "metrics on port 8002" in text
    local = CliRunner().invoke(app, ["serve", str(tmp_path)], obj=state)
    assert local.exit_code == 0 and "warning" not in local.output


MISSING = [m for m in ("onnx", "onnxruntime") if find_spec(m) is None]


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEXTANT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield onnx_package(tmp_path_factory.mktemp("onnx") / "ws")


@pytest.mark.skipif(bool(NO_SERVER), reason=str(NO_SERVER))
@pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)}")
@pytest.mark.parametrize("stop", [signal.SIGHUP, signal.SIGKILL], ids=["SIGHUP", "SIGKILL"])
def test_serve_stopped_by_a_hang_up_or_killed_leaves_no_server(package, tmp_path, stop):
    scratch = Path(tempfile.mkdtemp(prefix="sx-", dir="/tmp"))  # short: PyTriton's sockets live under TMPDIR
    command = [
        *(sys.executable, "-c", "import sys; from sextant.cli import main; sys.exit(main())"),
        *("serve", str(package.path), "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"),
    ]
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(scratch)}
    )
    try:
        lines = []
        for line in process.stderr:  # the end of the output bounds the wait
            lines.append(line)
            if line.startswith("serving "):
                break
        assert lines and lines[-1].startswith("serving "), "".join(lines)
        servers = [p for p in children(process.pid) if "tritonserver" in cmdline(p)]
        assert servers, "PyTriton's tritonserver is not a child of sextant serve"
        ours = [*servers, *(c for s in servers for c in children(s))]
        process.send_signal(stop)
        rest = process.stderr.read()
        process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(scratch, ignore_errors=True)
    if stop == signal.SIGHUP:
        assert process.returncode == 0, rest
        assert rest.rstrip().endswith("stopped")
    assert left_alive(ours) == [], "tritonserver outlived sextant serve"

