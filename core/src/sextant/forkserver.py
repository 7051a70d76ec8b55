"""A fork server: one helper process that imports heavy modules once and forks a child per job.

Python's own ``forkserver`` start method re-imports the caller's ``__main__`` in every child, which
re-runs a user's script that lacks a main guard; this one never touches ``__main__``.

The parent talks to the server over a datagram socket pair. To start a job it sends ``b"fork"``
with one end of a fresh socket pair attached (``SCM_RIGHTS``); the server forks, the child wraps
that end as a ``multiprocessing.connection.Connection``, and the server answers ``started PID``.
When a child ends the server reaps it and sends ``exited PID STATUS`` (``-N``: killed by signal N).
``b"import M1 M2"`` has it import more modules for the children it forks from then on. A server
started without a log file logs to a temporary one until ``b"log PATH"`` moves it (what it logged so
far included) to PATH: a run starts its server before it knows its workspace. The server
runs in its own session (Ctrl-C in the terminal does not reach it) and exits when the parent's end
closes.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection


#: the environment variable that tells the server where it logs
LOG = "SEXTANT_FORKSERVER_LOG"


class ForkServer:
    """The parent's handle on one fork server."""

    def __init__(self, preload: Sequence[str], stderr_path: str | None = None) -> None:
        self._ctrl, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._temporary = None  # the temporary log, until relog() moves it
        if stderr_path is None:
            handle, stderr_path = tempfile.mkstemp(prefix="sextant-forkserver-", suffix=".log")
            os.close(handle)
            self._temporary = stderr_path
        stderr = open(stderr_path, "ab")  # noqa: SIM115
        self._process = subprocess.Popen(
            [sys.executable, "-m", "sextant.forkserver", str(server_end.fileno()), *preload],
            pass_fds=[server_end.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            start_new_session=True,
            # children import what the parent could: its sys.path (a script's folder, a test's rootdir)
            env={**os.environ, "SEXTANT_FORKSERVER_PATH": json.dumps(sys.path), LOG: stderr_path},
        )
        stderr.close()
        server_end.close()
        self._exited: dict[int, int] = {}

    def alive(self) -> bool:
        return self._process.poll() is None

    def preload(self, modules: Sequence[str]) -> None:
        """Have the server import more modules, for the children it forks from now on."""
        if modules:
            self._ctrl.send(("import " + " ".join(modules)).encode())

    def relog(self, path: str | os.PathLike[str]) -> None:
        """Have a server started without a log file log to ``path`` (what it logged so far first);
        one started with a log file keeps it."""
        if self._temporary is not None:
            self._ctrl.send(f"log {os.fspath(path)}".encode())
            self._temporary = None

    def fork(self, timeout: float = 60.0) -> tuple[int, Connection]:
        """Start a child; returns its pid and the parent's end of its connection."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            socket.send_fds(self._ctrl, [b"fork"], [theirs.fileno()])
        finally:
            theirs.close()
        while True:
            message = self._receive(timeout)
            if message is None:
                mine.close()
                raise RuntimeError("the fork server did not answer (see logs/forkserver.log)")
            if message[0] == "started":
                return message[1], Connection(mine.detach())

    def exit_status(self, pid: int, timeout: float) -> int | None:
        """The child's exit status (negative: killed by that signal), waiting up to ``timeout``."""
        while pid not in self._exited:
            if self._receive(timeout) is None:
                return None
        return self._exited.pop(pid)

    def _receive(self, timeout: float) -> tuple[str, int] | None:
        ready, _, _ = select.select([self._ctrl], [], [], timeout)
        if not ready:
            return None
        words = self._ctrl.recv(256).decode().split()
        if not words:
            return None
        if words[0] == "exited":
            self._exited[int(words[1])] = int(words[2])
        return words[0], int(words[1])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._ctrl.send(b"exit")
        self._ctrl.close()
        try:  # a server still importing its preload (a run that found everything cached) is not waited for
            self._process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._temporary)


def serve(ctrl: socket.socket, child: Callable[[Connection], None]) -> None:
    """The server loop: fork on request, report exits, stop when told or when the parent goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    while os.getppid() == parent:
        _reap(ctrl)
        ready, _, _ = select.select([ctrl], [], [], 0.05)
        if not ready:
            continue
        try:
            message, fds, _, _ = socket.recv_fds(ctrl, 65536, 1)
        except OSError:
            return
        if message.startswith(b"import "):
            _import(message.decode().split()[1:])
            continue
        if message.startswith(b"log "):
            _log_to(message.decode()[4:])
            continue
        if message != b"fork":
            return
        pid = os.fork()
        if pid == 0:
            ctrl.close()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                child(Connection(fds[0]))
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(fds[0])
        ctrl.send(f"started {pid}".encode())


def _reap(ctrl: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        try:
            ctrl.send(f"exited {pid} {code}".encode())
        except OSError:
            return


def _import(modules: Sequence[str]) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # the child will meet the same error, with its real message
            print(f"preloading {module} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def _log_to(path: str) -> None:
    """Log to ``path`` from now on, after what the temporary log holds, which goes."""
    old = os.environ[LOG]
    sys.stdout.flush()
    sys.stderr.flush()
    with open(path, "ab") as new:
        with contextlib.suppress(OSError), open(old, "rb") as logged:
            new.write(logged.read())
        new.flush()
        os.dup2(new.fileno(), 1)
        os.dup2(new.fileno(), 2)
    with contextlib.suppress(OSError):
        os.unlink(old)
    os.environ[LOG] = path


def main(argv: list[str]) -> None:
    ctrl = socket.socket(fileno=int(argv[0]))
    parent_path = json.loads(os.environ.pop("SEXTANT_FORKSERVER_PATH", "[]"))
    sys.path[:] = list(dict.fromkeys([*parent_path, *sys.path]))
    _import(argv[1:])
    from sextant.child import child_main

    serve(ctrl, child_main)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # without the interpreter's teardown (half a second with torch imported), which the parent waits for


if __name__ == "__main__":
    main(sys.argv[1:])
