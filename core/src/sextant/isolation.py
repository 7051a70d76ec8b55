"""Run one job in a child process, so a crash, hang or out-of-memory cannot take the run down.

Children are forked from a fork server (``sextant.forkserver``) that has already imported the heavy
modules the plan needs (``preload``), so each child starts in milliseconds instead of re-importing
torch. A child gets its own session (so a kill takes its helpers too), writes its stdout and stderr
to the step's log, and talks to the parent over a socket: ``emit`` sends an event, ``ask`` waits
for the parent's reply.

The time limit counts from the child's last message: a step that keeps reporting progress (a
profile sweep) runs on; one that goes quiet for ``timeout`` seconds is killed.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sextant.forkserver import ForkServer
from sextant.specs import resolve

Handler = Callable[[str, Any], Any]


@dataclass
class ChildResult:
    """How a child ended: its return value, or the real cause of its failure."""

    ok: bool
    value: Any = None
    error: str | None = None
    traceback: str | None = None
    exitcode: int | None = None
    timed_out: bool = False
    log_tail: str = ""
    seconds: float = 0.0
    events: list[tuple[str, Any]] = field(default_factory=list)

    def reason(self) -> str:
        """One line: what went wrong."""
        if self.ok:
            return "ok"
        if self.error:
            return self.error
        if self.timed_out:
            return "timed out (no progress for the step timeout; raise --step-timeout if it is only slow)"
        if self.exitcode is not None and self.exitcode < 0:
            name = signal.Signals(-self.exitcode).name
            hint = " (likely out of memory)" if name == "SIGKILL" else ""
            return f"child process killed by {name}{hint}"
        return f"child process exited with code {self.exitcode} without a result"


class Channel:
    """The child's end of the pipe."""

    def __init__(self, conn: Connection | None = None, answer: Handler | None = None) -> None:
        self._conn = conn
        self._answer = answer

    def emit(self, kind: str, data: Any = None) -> None:
        if self._conn is not None:
            self._conn.send(("event", kind, data))
        elif self._answer is not None:  # replayed in-process: show the event
            self._answer(kind, data)

    def ask(self, kind: str, data: Any = None) -> Any:
        if self._conn is None:
            return self._answer(kind, data) if self._answer else None
        self._conn.send(("ask", kind, data))
        return self._conn.recv()


def child_main(conn: Connection) -> None:
    """Entry point inside the child: isolate, redirect output, run ``target(payload, channel)``."""
    os.setsid()
    target, payload, log_path, env = conn.recv()
    os.environ.update(env)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    faulthandler.enable()  # a segfault leaves its Python traceback in the log
    try:
        result = resolve(target)(payload, Channel(conn))
        conn.send(("result", result))
    except BaseException as exc:  # report everything, including SystemExit from a library
        conn.send(("error", f"{type(exc).__name__}: {exc}".strip(), traceback.format_exc()))
    finally:
        conn.close()


class Isolator:
    """Runs jobs in children forked from one fork server, started on first use."""

    def __init__(self, preload: Sequence[str] = (), server_log: Path | None = None) -> None:
        self._preload = ["sextant.worker", *preload]
        self._server_log = server_log
        self._server: ForkServer | None = None

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def start(self) -> None:
        """Start the fork server now (it starts on first use otherwise)."""
        if self._server is None or not self._server.alive():
            self._server = ForkServer(self._preload, str(self._server_log) if self._server_log else None)

    def _fork(self) -> tuple[int, Connection]:
        self.start()
        assert self._server is not None
        return self._server.fork()

    def run(
        self,
        target: str,
        payload: dict[str, Any],
        *,
        log_path: Path,
        timeout: float,
        handler: Handler | None = None,
        env: dict[str, str] | None = None,
    ) -> ChildResult:
        """Run ``target`` in a child; ``handler(kind, data)`` sees events and answers asks."""
        started = time.perf_counter()
        pid, conn = self._fork()
        result = ChildResult(ok=False)
        try:
            conn.send((target, payload, str(log_path), env or {}))
            deadline = time.monotonic() + timeout
            while True:
                if not conn.poll(0.05):
                    if time.monotonic() > deadline:
                        result.timed_out = True
                        break
                    continue
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    break  # the child died
                deadline = time.monotonic() + timeout
                if message[0] == "result":
                    result.ok, result.value = True, message[1]
                    break
                if message[0] == "error":
                    result.error, result.traceback = message[1], message[2]
                    break
                kind, data = message[1], message[2]
                result.events.append((kind, data))
                answer = handler(kind, data) if handler else None
                if message[0] == "ask":
                    conn.send(answer)
                    deadline = time.monotonic() + timeout
        finally:
            conn.close()
            result.exitcode = self._stop(pid, graceful=result.ok or result.error is not None)
        result.seconds = time.perf_counter() - started
        result.log_tail = _tail(log_path)
        return result

    def _stop(self, pid: int, graceful: bool) -> int | None:
        """Kill the child's process group (the child if it did not end by itself, and helpers it
        left behind, such as compile workers); return its exit status."""
        assert self._server is not None
        status = self._server.exit_status(pid, timeout=5.0) if graceful else None
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            if status is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if status is None:
            status = self._server.exit_status(pid, timeout=5.0)
        return status


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])
