"""Issue 30: ``sextant serve`` on a port in use says so at once, naming the port and ``--http-port 0``
(it waited two minutes, then timed out without naming it); the server's own log (some fifty lines
with GPU and NVML errors on a CPU machine) goes to a file the ready line names, not to the terminal.

The occupied ports are real: a socket this test binds and listens on, on loopback."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from sextant.api import SextantError, choose_candidate
from sextant_triton.server import check_ports, port_taken
from sextant_triton.testing import NO_SERVER

CLI = [sys.executable, "-c", "import sys; from sextant.cli import main; sys.exit(main())"]
READY_POLLS = 1500  # of 0.2 s: a bound, not a timing assertion


@pytest.fixture
def occupied():
    """A loopback port something listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_in_use_is_named_with_its_option_and_port_0(occupied):
    assert port_taken("127.0.0.1", occupied)
    with pytest.raises(SextantError) as raised:
        check_ports("127.0.0.1", {"--http-port": 0, "--grpc-port": occupied, "--metrics-port": 0})
    assert raised.value.message == f"port {occupied} on 127.0.0.1 (--grpc-port) is in use"
    assert "give --grpc-port 0 to serve on a free port" in raised.value.hint


def test_a_free_port_a_closed_one_and_0_pass():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    assert not port_taken("127.0.0.1", closed)
    check_ports("127.0.0.1", {"--http-port": closed, "--grpc-port": 0, "--metrics-port": 0})


def test_one_port_given_twice_is_refused():
    with pytest.raises(SextantError, match="port 8123 is given to both --http-port and --grpc-port"):
        check_ports("127.0.0.1", {"--http-port": 8123, "--grpc-port": 8123, "--metrics-port": 0})


@pytest.mark.skipif(bool(NO_SERVER), reason=str(NO_SERVER))
def test_sextant_serve_on_a_port_in_use_stops_at_once_naming_it(packages, occupied, tmp_path):
    done = subprocess.run(
        [*CLI, "serve", str(packages["onnx"].path), "--http-port", str(occupied), "--grpc-port", "0",
         "--metrics-port", "0"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "SEXTANT_CACHE_DIR": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"port {occupied} on 127.0.0.1 (--http-port) is in use" in done.stderr
    assert "--http-port 0" in done.stderr
    assert not (tmp_path / "serve-logs").exists()  # refused before anything started


@pytest.mark.slow
@pytest.mark.skipif(bool(NO_SERVER), reason=str(NO_SERVER))
def test_sextant_serve_prints_one_line_and_keeps_the_server_log_in_a_file(packages, tmp_path):
    scratch = Path(tempfile.mkdtemp(prefix="sx-", dir="/tmp"))  # short: PyTriton's sockets live under TMPDIR
    out = tmp_path / "serve.out"
    env = {**os.environ, "TMPDIR": str(scratch), "SEXTANT_CACHE_DIR": str(tmp_path / "cache")}
    command = [*CLI, "serve", str(packages["onnx"].path), "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]
    with out.open("w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        for _ in range(READY_POLLS):
            if "Server log: " in out.read_text() or process.poll() is not None:
                break
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0, out.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    printed = out.read_text()
    ready = next(line for line in printed.splitlines() if line.startswith("serving "))
    log = Path(re.search(r"Server log: (\S+)", ready).group(1))
    assert log.parent == tmp_path / "cache" / "serve-logs" and log.name.endswith(".log")
    assert "Started GRPCInferenceService" in log.read_text()  # the server's own log is in the file
    assert "GRPCInferenceService" not in printed and not re.search(r"^[EW]\d{4} ", printed, re.M)
    choice = choose_candidate(packages["onnx"], None)  # a regime's pick is said in a second line
    notes = [choice.reason] if choice.regime else []  # whether the package names regimes: measured
    assert [line for line in printed.splitlines() if line.strip()] == [ready, *notes, "stopped"]


def test_ports_0_are_filled_with_free_ones_none_the_same(monkeypatch):
    from sextant_triton import server

    offered = iter([5001, 5001, 5002, 5003, 8002, 5004])  # a port offered twice, then a given one: refused
    monkeypatch.setattr(server, "free_port", lambda host="127.0.0.1": next(offered))
    assert server.Ports(0, 0, 0).filled() == server.Ports(5001, 5002, 5003)
    assert server.Ports(8000, 0, 8002).filled() == server.Ports(8000, 5004, 8002)


@pytest.mark.skipif(bool(NO_SERVER), reason=str(NO_SERVER))
def test_the_server_starts_again_on_new_ports_when_one_it_chose_is_taken(occupied, tmp_path, monkeypatch):
    """The port it chose is taken before ``tritonserver`` binds it (here: always, by this test's
    listening socket, offered first): the start fails, and the next attempt, on new ports, serves."""
    from sextant_triton import server

    real, offers = server.free_port, []

    def offer(host="127.0.0.1"):
        offers.append(occupied if not offers else real(host))
        return offers[-1]

    monkeypatch.setattr(server, "free_port", offer)
    (tmp_path / "models").mkdir()
    started = server.start_server(tmp_path / "models", workdir=tmp_path / "work")
    try:
        assert started.ports.http != occupied and occupied in offers
        assert started.process.poll() is None
    finally:
        started.stop()
