"""Any stop of ``sextant analyze`` is handled, not only Ctrl-C: SIGTERM and SIGHUP release its claims,
stop its server and say that the same command resumes, exiting 128 + the signal; ``kill -9`` leaves
no server behind, and the claim it strands is taken over at once by the next run, within its budget.
Real ``sextant analyze`` processes, the real tritonserver and perf_analyzer; processes are found by
PID and waited for by a bounded number of polls, never by a timing."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from _processes import children, cmdline, left_alive, servers_of
from _serving import write_repository
from sextant_triton.analyze import analyze
from sextant_triton.analyze.settings import read_file
from sextant_triton.perf import missing
from sextant_triton.testing import NO_SERVER

pytestmark = [
    pytest.mark.skipif(NO_SERVER is not None, reason=str(NO_SERVER)),
    pytest.mark.skipif(missing() is not None, reason=str(missing())),
]

#: a search long enough to be stopped in the middle (quick, over 2 x 2 x 2 configurations)
YAML = (
    "models: [scale]\nsearch: quick\nmax_batch_size: [4, 8]\ninstance_count: {min: 1, max: 2}\n"
    "dynamic_batching: [true, false]\ntop_n: 0\nmeasurement: {interval_ms: 200, stability: 50, max_trials: 5}\n"
)
#: polls of the measurements file while waiting for a claim in flight (a bound, not a timing)
CLAIM_POLLS = 6000
POLL_S = 0.05
#: claims seen finishing before the run could be stopped, at most (each try waits for a new claim)
STOP_TRIES = 100


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    return write_repository(tmp_path_factory.mktemp("repo") / "models")


def _start(repository: Path, tmp_path: Path) -> tuple[subprocess.Popen, Path, Path]:
    out, settings = tmp_path / "out", tmp_path / "analyze.yaml"
    settings.write_text(YAML)
    command = [sys.executable, "-m", "sextant.cli", "analyze", str(repository), "-f", str(settings), "-o", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, out, settings


def _read_until(process: subprocess.Popen, text: str) -> list[str]:
    """stderr's lines up to the first holding ``text`` (the end of the output bounds the wait)."""
    lines = []
    for line in process.stderr:
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"the run ended (code {process.wait()}) before printing {text!r}:\n{''.join(lines)}")


def _rows(out: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(f"file:{out / 'measurements.sqlite'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM sextant_measurements").fetchall()


def _claim_in_flight(process: subprocess.Popen, out: Path) -> sqlite3.Row:
    """A claim row of the running ``process`` (a configuration being measured), once there is one."""
    for _ in range(CLAIM_POLLS):
        assert process.poll() is None, f"the run ended (code {process.returncode}) before it claimed anything"
        try:
            claims = [r for r in _rows(out) if not r["done"]]
        except sqlite3.Error:  # not created yet, or being written
            claims = []
        if claims:
            return claims[0]
        time.sleep(POLL_S)
    raise AssertionError(f"no claim in flight after {CLAIM_POLLS} polls")


def _stopped_holding_a_claim(process: subprocess.Popen, out: Path) -> sqlite3.Row:
    """A claim in flight, with ``process`` stopped (SIGSTOP) while it still holds it: only the run
    marks a claim done, so it cannot finish between the test seeing it and killing the run."""
    for _ in range(STOP_TRIES):
        claim = _claim_in_flight(process, out)
        process.send_signal(signal.SIGSTOP)
        try:
            if not any(r["done"] for r in _rows(out) if r["key"] == claim["key"]):
                return claim
        except sqlite3.Error:  # stopped while writing: let it finish
            pass
        process.send_signal(signal.SIGCONT)
        time.sleep(POLL_S)
    raise AssertionError(f"no claim held by a stopped run after {STOP_TRIES} tries")


def _perf_analyzers(pid: int) -> list[int]:
    return [child for child in children(pid) if "perf_analyzer" in cmdline(child)]


def _ours(out: Path) -> list[int]:
    """The server this run started, and its Python-backend stubs."""
    (server,) = servers_of(out / "server")
    return [server, *children(server)]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stopped_analysis_keeps_its_work_stops_its_server_and_resumes(repository, tmp_path, stop):
    process, out, settings = _start(repository, tmp_path)
    try:
        _read_until(process, "  measured {")
        processes = _ours(out)
        assert len(processes) >= 2  # the server and its model's stub
        process.send_signal(stop)
        _, err = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + stop, err[-3000:]
    said = " ".join(err.split())  # as one line: the console may fold it
    assert f"stopped by {stop.name}: every finished measurement is kept; the same command resumes" in said
    assert "unexpected" not in err
    assert left_alive(processes) == []
    rows = _rows(out)
    assert rows and all(r["done"] for r in rows)  # its claims were released, its measurements kept

    again = analyze(repository, replace(read_file(settings), max_measurements=1), output=out)
    assert again.reused >= len(rows)


def test_a_killed_analysis_leaves_no_server_and_the_next_run_takes_its_claim_at_once(repository, tmp_path):
    process, out, settings = _start(repository, tmp_path)
    try:
        _read_until(process, "searching")
        claim = _stopped_holding_a_claim(process, out)
        processes = _ours(out) + _perf_analyzers(process.pid)  # one may be measuring now
        process.kill()  # SIGKILL (a stopped process dies of it too): nothing runs in sextant after it
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert left_alive(processes) == [], "tritonserver, its stub or perf_analyzer outlived the run that started it"
    (left,) = [r for r in _rows(out) if r["key"] == claim["key"]]
    assert not left["done"] and (left["pid"], left["host"]) == (process.pid, socket.gethostname())

    # the run that resumes takes the dead run's claim over at once: its budget is never spent waiting
    again = analyze(repository, replace(read_file(settings), max_measurements=1, budget_s=600.0), output=out)
    (taken,) = [r for r in _rows(out) if r["key"] == claim["key"]]
    assert taken["done"] and taken["pid"] != process.pid
    assert not (taken["error"] or "").startswith("not measured")
    assert any(f"process {process.pid} on {socket.gethostname()}, which is gone" in e for e in again.events)
    assert not servers_of(out / "server")
