"""The child's side of an isolated job: its channel to the parent, and its entry point.

A child is forked from the fork server (``sextant.forkserver``), gets its own session, writes its
stdout and stderr to the job's log, runs ``target(document, channel)`` and sends back the result
or the error with its traceback. ``emit`` sends an event; ``ask`` waits for the parent's reply.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from sextant.specs import resolve

Handler = Callable[[str, Any], Any]


class Channel:
    """The child's end of the pipe (or, when a job is replayed in-process, a function that answers)."""

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
    """Entry point inside the child: isolate, redirect output, run ``target(document, channel)``."""
    os.setsid()
    target, document, log_path, env = conn.recv()
    os.environ.update(env)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    faulthandler.enable()  # a segfault leaves its Python traceback in the log
    try:
        result = resolve(target)(document, Channel(conn))
        conn.send(("result", result))
    except BaseException as exc:  # report everything, including SystemExit from a library
        conn.send(("error", f"{type(exc).__name__}: {exc}".strip(), traceback.format_exc()))
    finally:
        conn.close()
