"""Start and stop a real ``tritonserver`` for a model repository, on loopback ports.

The server is the one that ships inside the ``nvidia-pytriton`` wheel (Triton 2.51, Python backend
only). What it needs on an ordinary Linux machine, found by running it:

- the Python backend's files are *copied* into a backend directory of our own (Triton refuses a
  backend library whose real path leaves that directory, so symlinks fail), with the stub built for
  this interpreter's version;
- the stub embeds Python: ``LD_LIBRARY_PATH`` must name this interpreter's ``LIBDIR`` first (else a
  system ``libpython`` of the same minor version is picked up and the standard library does not
  match it) and the wheel's ``nvidia_pytriton.libs``; ``PATH`` starts with this environment's
  ``bin`` so the embedded interpreter finds this environment's ``site-packages``;
- every endpoint is bound to 127.0.0.1 unless asked otherwise, and ``--exit-timeout-secs`` is short
  so SIGTERM stops it within seconds.

The server never outlives the process that started it, however that process ends (``kill -9`` and
the OOM killer included): on Linux it is started through a few lines of Python that ask the kernel
for a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGTERM)``, kept across ``execve``) and then
become the server, so its PID is the one :class:`TritonServer` holds; its Python-backend stubs
follow it (each checks that its server is alive). The signal comes when the *thread* that started
the server ends, so start it from a thread that lives as long as the server is needed. It runs in
a session of its own: a terminal's Ctrl-C or hang-up reaches sextant, which stops it in order.

A *Python-based backend* is a backend directory holding only ``model.py``: Triton runs it through
the Python backend for every model whose config names that backend. :func:`start_server` takes such
directories in ``python_backends``; :data:`PYTHON_BASED` holds sextant's, named ``onnxruntime`` and
``openvino``, so that an unchanged ``onnxruntime_onnx`` or ``openvino`` configuration (what
``sextant deploy triton`` writes for those candidates) loads on this server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from sextant.api import SextantError

INSTALL = "pip install 'sextant-triton[serve]' (the tritonserver binary ships inside nvidia-pytriton)"
#: polls of the readiness endpoint before giving up, and the pause between them
READY_POLLS = 3000  # 5 minutes: a Python-backend model may compile (torch.compile) while it warms up
POLL_S = 0.1
STOP_TIMEOUT_S = 30.0
#: sextant's Python-based backends, by the backend name a config gives (see the module doc)
PYTHON_BASED: Mapping[str, Path] = {
    "onnxruntime": Path(__file__).with_name("ort_backend.py"),
    "openvino": Path(__file__).with_name("ov_backend.py"),
}


@dataclass(frozen=True)
class Distribution:
    """Where the server binary, its libraries and the Python backend's files are."""

    binary: Path
    libs: Path
    python_backend: Path
    stub: Path

    @classmethod
    def find(cls) -> Distribution:
        spec = find_spec("pytriton")
        if spec is None or not spec.submodule_search_locations:
            raise SextantError("tritonserver is not installed", hint=INSTALL)
        root = Path(next(iter(spec.submodule_search_locations)))
        server = root / "tritonserver"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        found = cls(
            binary=server / "bin" / "tritonserver",
            libs=root.parent / "nvidia_pytriton.libs",
            python_backend=server / "backends" / "python",
            stub=server / "python_backend_stubs" / version / "triton_python_backend_stub",
        )
        missing = [p for p in (found.binary, found.python_backend, found.stub) if not p.exists()]
        if missing:
            raise SextantError(
                f"the nvidia-pytriton installation lacks {', '.join(map(str, missing))}",
                hint=f"PyTriton ships stubs for Python 3.8-3.13; this is Python {version}. Reinstall: {INSTALL}",
            )
        return found


def server_env(dist: Distribution, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment the server and its Python stubs need (see the module's docstring)."""
    env = dict(os.environ if base is None else base)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    paths = [p for p in (libdir, str(dist.libs), env.get("LD_LIBRARY_PATH", "")) if p]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(paths)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def make_backends(dist: Distribution, folder: Path, python_backends: Mapping[str, Path] = {}) -> Path:  # noqa: B006
    """Write a backend directory: the Python backend (copied, with this interpreter's stub) and
    each Python-based backend as ``<name>/model.py``."""
    python = folder / "python"
    shutil.copytree(dist.python_backend, python, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(dist.stub, python / "triton_python_backend_stub")
    for name, model_py in python_backends.items():
        (folder / name).mkdir(parents=True)
        shutil.copy2(model_py, folder / name / "model.py")
    return folder


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_taken(host: str, port: int) -> bool:
    """Whether something already listens on (or holds) ``host:port``: binding it fails with
    "address in use" (with ``SO_REUSEADDR``, as servers bind, so a closed connection's TIME_WAIT
    does not count)."""
    import errno

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def check_ports(host: str, ports: Mapping[str, int]) -> None:
    """Refuse, before anything starts, a port (by its option, ``--http-port``) that is in use or
    given twice; 0 (a free one) is never refused. Triton itself would wait two minutes, then fail
    without naming the port."""
    given = [(option, port) for option, port in ports.items() if port]
    for option, port in given:
        twice = [other for other, p in given if p == port and other != option]
        if twice:
            raise SextantError(
                f"port {port} is given to both {option} and {twice[0]}",
                hint=f"Give each endpoint its own port, or {option} 0 for a free one.",
            )
    for option, port in given:
        if port_taken(host, port):
            raise SextantError(
                f"port {port} on {host} ({option}) is in use",
                hint=f"Stop what holds it, or give {option} 0 to serve on a free port (printed when it is ready).",
            )


def loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


def exposure(host: str, http_port: int, grpc_port: int, metrics_port: int) -> str | None:
    """What serving on ``host`` exposes to other machines, or ``None`` on a loopback address."""
    if loopback(host):
        return None
    where = "every network this machine is on" if host in ("0.0.0.0", "::", "[::]") else f"whoever can reach {host}"
    return (
        f"serving on {host} exposes it to {where}, without authentication: inference on HTTP port {http_port} "
        f"and gRPC port {grpc_port}, Triton's model-control API on both (unload the model, or load one from "
        f"files the caller sends: with the Python backend, code that runs here), and metrics on port "
        f"{metrics_port}. Serve on 127.0.0.1 (the default) behind a proxy that authenticates, or firewall "
        "these ports."
    )


@dataclass(frozen=True)
class Ports:
    http: int
    grpc: int
    metrics: int

    @classmethod
    def free(cls, host: str = "127.0.0.1") -> Ports:
        return cls(0, 0, 0).filled(host)

    def filled(self, host: str = "127.0.0.1") -> Ports:
        """These ports with each 0 replaced by a free port on ``host``, none the same as another."""
        ports = [self.http, self.grpc, self.metrics]
        for index, port in enumerate(ports):
            while not port or port in ports[:index] + ports[index + 1 :]:
                port = free_port(host)
            ports[index] = port
        return Ports(*ports)


#: the launcher (``python -S -c``): the parent-death signal, then ``execv`` into the server (the
#: same PID); it exits at once if the parent is already gone
_WITH_PARENT = """
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""


def with_parent(command: Sequence[str]) -> list[str]:
    """``command`` run so that it ends with this process (Linux; elsewhere as it is)."""
    if not sys.platform.startswith("linux"):
        return list(command)
    return [sys.executable, "-S", "-c", _WITH_PARENT, str(os.getpid()), *command]


def terminate(process: subprocess.Popen, sig: int, timeout: float = STOP_TIMEOUT_S) -> int | None:
    """Send ``sig`` to a running ``process``, wait up to ``timeout`` seconds, then SIGKILL it by PID;
    return its exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class TritonServer:
    """A running ``tritonserver`` process started by :func:`start_server`; stop it with :meth:`stop`."""

    def __init__(
        self, process: subprocess.Popen, host: str, ports: Ports, workdir: Path, log: Path, owns_workdir: bool = False
    ) -> None:
        self.process = process
        self.host = host
        self.ports = ports
        self.workdir = workdir
        self.log = log
        self.owns_workdir = owns_workdir

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def http_url(self) -> str:
        """``host:port`` of the HTTP endpoint, as tritonclient takes it."""
        return f"{self.host}:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.ports.grpc}"

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, polls: int = READY_POLLS) -> None:
        """Poll the readiness endpoint, a bounded number of times; raise with the log's tail if the
        server exits or never becomes ready."""
        for _ in range(polls):
            if self.process.poll() is not None:
                raise SextantError(
                    f"tritonserver exited with code {self.process.returncode} before it was ready",
                    hint=f"Its log ({self.log}) ends:\n{_tail(self.logs())}",
                )
            if self.ready():
                return
            time.sleep(POLL_S)
        self.stop()
        raise SextantError(
            f"tritonserver was not ready after {polls} polls", hint=f"Its log ends:\n{_tail(self.logs())}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; remove the backend folder (and the whole
        work folder when :func:`start_server` made it and the server exited cleanly, else the log
        stays there). Returns the exit code."""
        terminate(self.process, signal.SIGTERM, timeout)
        shutil.rmtree(self.workdir / "backends", ignore_errors=True)
        if self.owns_workdir and self.process.returncode == 0:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self.process.returncode

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: error lines every CPU-only start prints, which say nothing about a failure
_NOISE = ("CudaDriverHelper", "NVML", "config modification time")


def error_lines(text: str, most: int = 5) -> list[str]:
    """Triton's error lines (``E<date> ...``: the model load failures), less the noise every CPU-only
    start prints, each cut to 1,500 characters with its escaped newlines restored."""
    errors = [
        ln for ln in text.splitlines() if ln[:1] == "E" and ln[1:5].isdigit() and not any(n in ln for n in _NOISE)
    ]
    return [ln[:1500].replace("\\n", "\n") for ln in errors[:most]]


def _tail(text: str, lines: int = 30) -> str:
    """Triton's error lines, else the log's last lines."""
    errors = error_lines(text)
    if errors:
        return "\n".join(errors)
    return "\n".join(text.splitlines()[-lines:])


def start_server(
    repository: Path,
    *,
    host: str = "127.0.0.1",
    ports: Ports | None = None,
    python_backends: Mapping[str, Path] = {},  # noqa: B006 - read only
    workdir: Path | None = None,
    wait: bool = True,
    attempts: int = 3,
    exit_timeout_s: int = 5,
    extra_args: Sequence[str] = (),
) -> TritonServer:
    """Start ``tritonserver`` on ``repository`` and (by default) wait until it is ready.

    Ports default to free loopback ports (so does each port given as 0); a start that fails because
    a port it chose was taken in between is retried on new ones, ``attempts`` times in all.
    ``exit_timeout_s``: how long a stopping server waits for its models to unload (Python-backend
    models take seconds each) before it exits with code 1. ``workdir`` (default: a new temporary
    folder) holds the backend directory, removed on stop, and ``tritonserver.log``. ``extra_args``
    go to the server as they are (``--model-control-mode=explicit``, ``--load-model=NAME``).
    """
    dist = Distribution.find()
    owns_workdir = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="sextant-triton-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        chosen = (ports or Ports(0, 0, 0)).filled(host)
        workdir.mkdir(parents=True, exist_ok=True)
        backends = workdir / "backends"
        shutil.rmtree(backends, ignore_errors=True)
        make_backends(dist, backends, python_backends)
        log = workdir / "tritonserver.log"
        command = [
            str(dist.binary),
            f"--model-repository={Path(repository).resolve()}",
            f"--backend-directory={backends}",
            f"--http-address={host}",
            f"--http-port={chosen.http}",
            f"--grpc-address={host}",
            f"--grpc-port={chosen.grpc}",
            f"--metrics-address={host}",
            f"--metrics-port={chosen.metrics}",
            "--allow-gpu-metrics=false",
            "--disable-auto-complete-config",
            f"--exit-timeout-secs={exit_timeout_s}",
            *extra_args,
        ]
        with log.open("w") as out:
            process = subprocess.Popen(
                with_parent(command),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=server_env(dist),
                start_new_session=True,
            )
        server = TritonServer(process, host, chosen, workdir, log, owns_workdir)
        if not wait:
            return server
        try:
            server.wait_ready()
            return server
        except SextantError:
            server.stop()
            taken = "Address already in use" in server.logs() or "Socket '" in server.logs()
            if chosen == ports or not taken or attempt == attempts - 1:  # retried only on ports it chose
                raise
        except BaseException:  # stopped (Ctrl-C, SIGTERM) while it starts: it goes too
            server.stop()
            raise
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    """``python -m sextant_triton.server REPOSITORY``: run the wheel's tritonserver on a repository
    (with the Python-based ``onnxruntime`` and ``openvino`` backends) until Ctrl-C, SIGTERM or SIGHUP."""
    import argparse
    import threading

    parser = argparse.ArgumentParser(prog="python -m sextant_triton.server", description=main.__doc__)
    parser.add_argument("repository", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    free = " (0: a free one, named when ready)"
    parser.add_argument("--http-port", type=int, default=8000, help="default 8000" + free)
    parser.add_argument("--grpc-port", type=int, default=8001, help="default 8001" + free)
    parser.add_argument("--metrics-port", type=int, default=8002, help="default 8002" + free)
    parser.add_argument("--exit-timeout-secs", type=int, default=5, help="wait this long for models to unload")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    ports = Ports(args.http_port, args.grpc_port, args.metrics_port)
    exposed = exposure(args.host, ports.http, ports.grpc, ports.metrics)
    if exposed:
        print(f"warning: {exposed}", file=sys.stderr, flush=True)
    try:
        server = start_server(
            args.repository,
            host=args.host,
            ports=ports,
            python_backends=PYTHON_BASED,
            exit_timeout_s=args.exit_timeout_secs,
        )
    except SextantError as exc:
        print(f"error: {exc.message}\n{exc.hint or ''}", file=sys.stderr)
        return 1
    print(
        f"tritonserver (pid {server.pid}) ready: HTTP {server.http_url}, gRPC {server.grpc_url}, metrics "
        f"{args.host}:{server.ports.metrics}; log {server.log}",
        file=sys.stderr,
        flush=True,
    )
    while not stop.wait(timeout=1.0):
        if server.process.poll() is not None:
            print(f"tritonserver exited with {server.process.returncode}; log {server.log}", file=sys.stderr)
            return 1
    code = server.stop()
    print(f"stopped (exit code {code})", file=sys.stderr)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
