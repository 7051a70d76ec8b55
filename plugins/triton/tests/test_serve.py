"""``sextant serve`` and ``sextant_triton.serving``: PyTriton answers real requests with the
reference outputs, then stops cleanly on SIGTERM or Ctrl-C and leaves no workspace behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from _models import MAX_BATCH, correctness_cases
from sextant.api import SextantError
from sextant_triton import serving
from sextant_triton.testing import needs_triton

pytestmark = [*needs_triton(modules=("torch", "onnx", "onnxruntime")), pytest.mark.slow]
READY_POLLS = 1500  # of 0.2 s: a bound, not a timing assertion


def _check_answers(url_http, url_grpc, model, package, candidate):
    import tritonclient.grpc as grpc
    import tritonclient.http as http
    from tritonclient.utils import np_to_triton_dtype

    for client, url in ((http, url_http), (grpc, url_grpc)):
        triton = client.InferenceServerClient(url)
        try:
            for inputs, reference, atol, rtol in correctness_cases(package, candidate, (1, MAX_BATCH)):
                requests = []
                for name, array in inputs.items():
                    tensor = client.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
                    tensor.set_data_from_numpy(np.ascontiguousarray(array))
                    requests.append(tensor)
                result = triton.infer(model, requests)
                for name, expected in reference.items():
                    got = result.as_numpy(name)
                    assert got is not None and got.size > 0, f"{name}: empty output"
                    np.testing.assert_allclose(got.reshape(expected.shape), expected, atol=atol, rtol=rtol)
        finally:
            triton.close()


def _wait_for_ready(process, log: Path, model: str) -> tuple[str, int, int, int]:
    """The candidate, HTTP and gRPC ports and max batch size of the ready line ``sextant serve``
    prints once the model answers."""
    ready = rf"^serving {model} \((\S+)\): HTTP 127\.0\.0\.1:(\d+), gRPC 127\.0\.0\.1:(\d+); max_batch_size (\d+),"
    line = re.compile(ready, re.M)
    for _ in range(READY_POLLS):
        found = line.search(log.read_text())
        if found:
            return found.group(1), int(found.group(2)), int(found.group(3)), int(found.group(4))
        assert process.poll() is None, f"sextant serve exited with {process.returncode}:\n{log.read_text()}"
        time.sleep(0.2)
    raise AssertionError(f"{model} was not ready after {READY_POLLS} polls:\n{log.read_text()}")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_sextant_serve_answers_then_stops_cleanly(packages, tmp_path, stop):
    package = packages["torch"]
    best = package.status["selection"]["best"]
    regimes = package.status["selection"].get("regimes") or {}
    scratch = Path(tempfile.mkdtemp(prefix="sx-", dir="/tmp"))  # short: PyTriton's sockets live under TMPDIR
    # ports 0: serve picks free ones just before the server binds them (ports picked here could be
    # taken, in the seconds serve takes to start, as the local port of any outgoing connection)
    command = [
        sys.executable, "-c", "import sys; from sextant.cli import main; sys.exit(main())",
        "serve", str(package.path), "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0",
        "--trust-source",  # the best may be the eager nn.Module
    ]  # fmt: skip
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TMPDIR": str(scratch)}
    )
    try:
        served, http, grpc, batch = _wait_for_ready(process, tmp_path / "serve.log", "twoheads")
        # the regime pick that fits its serving batch size: the best unless the package names
        # a latency pick that is faster there (which one depends on the run's measurements)
        assert served == package.best_for_batch(batch).id and served in (best, *regimes.values())
        _check_answers(f"127.0.0.1:{http}", f"127.0.0.1:{grpc}", "twoheads", package, served)
        process.send_signal(stop)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    assert (tmp_path / "serve.log").read_text().rstrip().endswith("stopped")
    # ONNX Runtime itself keeps a ".ses" marker in TMPDIR for every process that opens a session
    left = [p.name for p in scratch.iterdir() if p.name != ".ses"]
    shutil.rmtree(scratch)
    assert left == [], "sextant serve left files in TMPDIR"


def test_serving_from_python_binds_loopback_and_cleans_up(packages, monkeypatch):
    package = packages["onnx"]
    scratch = Path(tempfile.mkdtemp(prefix="sx-", dir="/tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    try:
        with serving(package.path, http_port=0, grpc_port=0, metrics_port=0) as served:
            assert served.host == "127.0.0.1" and served.settings.max_batch_size == MAX_BATCH
            assert [p.name for p in scratch.iterdir() if p.name.startswith("sextant-serve-")]
            _check_answers(served.http_url, served.grpc_url, served.name, package, served.candidate)
        assert [p.name for p in scratch.iterdir() if p.name != ".ses"] == []  # .ses: ONNX Runtime's
    finally:
        shutil.rmtree(scratch)


def test_a_temporary_folder_too_deep_for_sockets_is_refused(packages, tmp_path, monkeypatch):
    deep = tmp_path / ("d" * 60)
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    with pytest.raises(SextantError, match="too deep for PyTriton's sockets"), serving(packages["onnx"].path):
        pass
    assert list(deep.iterdir()) == []
