"""Measure a served model with ``perf_analyzer``: real requests, stability windows, latency
percentiles and Triton's own server-side breakdown.

The binary is the one of ``tritonclient==2.51.0`` (the last build that runs on glibc 2.36). Only the
binary is taken out of that wheel, because the wheel pins ``protobuf<5``, which breaks ``onnx``;
it links ``libb64`` and ``libcudart``, both shipped (under hashed names) in the ``nvidia-pytriton``
wheel's ``nvidia_pytriton.libs``: :func:`install` writes links with the names the binary asks for.

``python -m sextant_triton.perf install`` puts it in this environment (``make`` does it);
``SEXTANT_PERF_ANALYZER`` names another binary.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from sextant.api import SextantError

VERSION = "2.51.0"
INSTALL = "python -m sextant_triton.perf install (downloads tritonclient==2.51.0 and keeps only perf_analyzer)"
HOME = Path(sys.prefix) / "lib" / "sextant-perf-analyzer"
#: the libraries the binary links, as the nvidia-pytriton wheel names them (hashed) → the name asked for
LINKED = {"libb64-": "libb64.so.0d", "libcudart-": "libcudart.so.12"}

#: perf_analyzer's CSV columns (microseconds) → our metric names (milliseconds)
COLUMNS = {
    "p50 latency": "p50_ms",
    "p90 latency": "p90_ms",
    "p95 latency": "p95_ms",
    "p99 latency": "p99_ms",
    "Avg latency": "avg_ms",
    "Client Send": "client_send_ms",
    "Client Recv": "client_recv_ms",
    "Network+Server Send/Recv": "network_ms",
    "Server Queue": "queue_ms",
    "Server Compute Input": "compute_input_ms",
    "Server Compute Infer": "compute_infer_ms",
    "Server Compute Output": "compute_output_ms",
}


@dataclass(frozen=True)
class Windows:
    """How long to measure: windows of ``interval_ms`` until three in a row agree within
    ``stability`` percent (at most ``max_trials`` windows)."""

    interval_ms: int = 1000
    stability: float = 10.0
    max_trials: int = 10

    def relaxed(self) -> Windows:
        """Longer windows and a looser rule, for a second try after a load that did not settle."""
        return Windows(self.interval_ms * 2, max(self.stability * 2, 25.0), self.max_trials)


@dataclass(frozen=True)
class Load:
    """The client's load: ``concurrency`` requests in flight, or ``request_rate`` per second; each
    request a batch of ``batch`` rows."""

    concurrency: int | None = 1
    request_rate: float | None = None
    batch: int = 1

    def describe(self) -> str:
        what = f"{self.request_rate:g} req/s" if self.request_rate else f"concurrency {self.concurrency}"
        return what + (f", batch {self.batch}" if self.batch != 1 else "")


def binary() -> Path:
    """The ``perf_analyzer`` to run, or a clear error saying how to get it."""
    given = os.environ.get("SEXTANT_PERF_ANALYZER")
    for candidate in (Path(given) if given else None, HOME / "perf_analyzer"):
        if candidate is not None and candidate.is_file():
            return candidate
    found = shutil.which("perf_analyzer")
    if found:
        return Path(found)
    raise SextantError("perf_analyzer is not installed", hint=INSTALL)


def missing() -> str | None:
    """Why perf_analyzer cannot be run here, or ``None`` when it can."""
    try:
        binary()
    except SextantError as exc:
        return f"{exc.message}: {exc.hint}"
    return None


def _environment(path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(path.parent / "libs"), env.get("LD_LIBRARY_PATH")) if p)
    return env


def measure(
    model: str,
    url: str,
    load: Load,
    *,
    windows: Windows = Windows(),
    input_data: Path | str = "random",
    shapes: Mapping[str, Sequence[int]] | None = None,
    workdir: Path,
    timeout_s: float = 300.0,
) -> dict[str, float]:
    """One measurement of ``model`` at ``url`` (``host:grpc_port``) under ``load``: throughput
    (inferences/s), latency percentiles and the server-side breakdown in ms, and ``stable`` (1.0 when
    the windows settled; a load that did not is measured once more with :meth:`Windows.relaxed`,
    then kept with ``stable`` 0.0)."""
    try:
        return _run(model, url, load, windows, input_data, shapes, workdir, timeout_s)
    except _Unstable:
        pass
    try:
        return _run(model, url, load, windows.relaxed(), input_data, shapes, workdir, timeout_s)
    except _Unstable:
        pass
    loose = Windows(windows.interval_ms * 4, 1000.0, 4)  # long windows, nearly whatever they say
    try:
        return {**_run(model, url, load, loose, input_data, shapes, workdir, timeout_s), "stable": 0.0}
    except _Unstable as exc:
        raise SextantError(
            f"the load did not settle ({load.describe()}), even with {loose.interval_ms} ms windows"
        ) from exc


class _Unstable(SextantError):
    """perf_analyzer's windows did not agree within the stability rule."""


def _run(
    model: str,
    url: str,
    load: Load,
    windows: Windows,
    input_data: Path | str,
    shapes: Mapping[str, Sequence[int]] | None,
    workdir: Path,
    timeout_s: float,
) -> dict[str, float]:
    path = binary()
    workdir.mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkstemp(suffix=".csv", dir=workdir)[1])
    rate = f"{load.request_rate or 0:g}"
    command = [
        str(path),
        *("-m", model, "-u", url, "-i", "grpc", "-b", str(load.batch)),
        *(
            [f"--request-rate-range={rate}:{rate}"]
            if load.request_rate
            else [f"--concurrency-range={load.concurrency}:{load.concurrency}"]
        ),
        f"--measurement-interval={windows.interval_ms}",
        f"--stability-percentage={windows.stability:g}",
        f"--max-trials={windows.max_trials}",
        f"--input-data={input_data}",
        *(f"--shape={name}:{','.join(map(str, dims))}" for name, dims in (shapes or {}).items()),
        *("-f", str(out)),
        "--verbose-csv",
    ]
    try:
        done = _run_tracked(command, timeout_s, _environment(path))
        text = out.read_text() if out.stat().st_size else ""
    except subprocess.TimeoutExpired as exc:
        raise SextantError(f"perf_analyzer did not finish within {timeout_s:g} s ({load.describe()})") from exc
    finally:
        out.unlink(missing_ok=True)
    said = (done.stdout + done.stderr).strip()
    if "Failed to obtain stable measurement" in said:
        raise _Unstable(said.splitlines()[-1] if said else "unstable")
    if done.returncode != 0 or not text or said.startswith("error") or "\nerror:" in said:
        lines = [ln for ln in said.splitlines() if "rror" in ln] or said.splitlines()[-5:]
        raise SextantError(
            f"perf_analyzer could not measure {model!r} at {load.describe()}: " + " ".join(lines)[:800],
            hint="Check that the server is up and the model loaded: " + " ".join(command),
        )
    return parse(text)


#: the perf_analyzer processes running now (each in a thread of the search), for :func:`stop_all`
_running: set[subprocess.Popen] = set()
_running_lock = threading.Lock()


def _run_tracked(command: list[str], timeout_s: float, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``subprocess.run`` that :func:`stop_all` can end; the process ends with this one, too
    (:func:`~sextant_triton.server.with_parent`)."""
    from sextant_triton.server import with_parent

    with subprocess.Popen(
        with_parent(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        with _running_lock:
            _running.add(process)
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        except BaseException:
            process.kill()
            process.wait()
            raise
        finally:
            with _running_lock:
                _running.discard(process)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def stop_all() -> None:
    """Kill every perf_analyzer this process runs (the analysis is stopping: what they measure now
    would not be stored)."""
    with _running_lock:
        running = list(_running)
    for process in running:
        if process.poll() is None:
            process.kill()


def parse(text: str) -> dict[str, float]:
    """The first row of perf_analyzer's ``--verbose-csv`` output as our metrics."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise SextantError("perf_analyzer wrote no measurement")
    row = rows[0]
    metrics = {"throughput": float(row["Inferences/Second"]), "stable": 1.0}
    for column, name in COLUMNS.items():
        if row.get(column) not in (None, ""):
            metrics[name] = float(row[column]) / 1000.0
    return metrics


def install(index_url: str | None = None) -> Path:
    """Download the ``tritonclient==2.51.0`` wheel (no dependencies), keep its ``perf_analyzer``
    and link the two libraries it needs from ``nvidia_pytriton.libs``."""
    spec = find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise SextantError("perf_analyzer needs libraries from nvidia-pytriton", hint="pip install nvidia-pytriton")
    libs = Path(next(iter(spec.submodule_search_locations))).parent / "nvidia_pytriton.libs"
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", f"tritonclient=={VERSION}", "-d", tmp]
        command += ["--index-url", index_url] if index_url else []
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("tritonclient-*.whl"))
        if done.returncode or not wheels:
            raise SextantError(f"could not download tritonclient=={VERSION}: {done.stderr.strip()[-500:]}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            member = next(n for n in wheel.namelist() if n.endswith("/bin/perf_analyzer"))
            (HOME / "libs").mkdir(parents=True, exist_ok=True)
            target = HOME / "perf_analyzer"
            target.write_bytes(wheel.read(member))
    target.chmod(0o755)
    for prefix, name in LINKED.items():
        found = sorted(libs.glob(prefix + "*"))
        if not found:
            raise SextantError(f"nvidia_pytriton.libs has no {prefix}*: perf_analyzer cannot run")
        link = HOME / "libs" / name
        link.unlink(missing_ok=True)
        link.symlink_to(found[0])
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["install"]:
        print("usage: python -m sextant_triton.perf install", file=sys.stderr)
        return 2
    try:
        path = binary() if "--if-missing" in args and _runs() else install()
    except SextantError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(f"perf_analyzer {VERSION}: {path}")
    return 0


def _runs() -> bool:
    try:
        path = binary()
    except SextantError:
        return False
    done = subprocess.run([str(path), "--version"], capture_output=True, env=_environment(path), check=False)
    return done.returncode == 0


if __name__ == "__main__":
    sys.exit(main())
