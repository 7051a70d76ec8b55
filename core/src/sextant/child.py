"""The child's side of an isolated job: its channel to the parent, and its entry point.

A child is forked from the fork server (``sextant.forkserver``), gets its own session, writes its
stdout and stderr to the job's log, runs ``target(document, channel)`` and sends back the result
or the error with its traceback. ``emit`` sends a message (see :mod:`sextant.messages`); ``ask``
sends one and waits for the parent's reply.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from sextant.causes import one_line
from sextant.errors import SextantError
from sextant.specs import resolve

Handler = Callable[[str, Any], Any]


class Message(Protocol):
    """What a child says: a kind, and its content as JSON."""

    @property
    def kind(self) -> str: ...

    def to_json(self) -> Any: ...


class Channel:
    """The child's end of the pipe (or, when a job is replayed in-process, a function that answers)."""

    def __init__(self, conn: Connection | None = None, answer: Handler | None = None) -> None:
        self._conn = conn
        self._answer = answer

    def emit(self, message: Message) -> None:
        if self._conn is not None:
            self._conn.send(("event", message.kind, message.to_json()))
        elif self._answer is not None:  # replayed in-process: show the event
            self._answer(message.kind, message.to_json())

    def ask(self, message: Message) -> Any:
        """The parent's reply (JSON) to ``message``."""
        if self._conn is None:
            return self._answer(message.kind, message.to_json()) if self._answer else None
        self._conn.send(("ask", message.kind, message.to_json()))
        return self._conn.recv()


def child_main(conn: Connection) -> None:
    """Entry point inside the child: isolate, redirect output, run ``target(document, channel)``."""
    os.setsid()
    _die_with_parent()
    target, document, log_path, env, context = conn.recv()
    _enter(context)
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
        text, disk_full = _error(exc, Path(log_path).parent.parent)  # the log is in the workspace's logs/
        conn.send(("error", text, traceback.format_exc(), disk_full))
    finally:
        conn.close()


def _enter(context: dict[str, Any]) -> None:
    """Take the parent's environment, working folder and ``sys.path`` as they are now (the server
    may have been started by an earlier run, when they were otherwise)."""
    os.environ.clear()
    os.environ.update(context["environ"])
    os.chdir(context["cwd"])
    sys.path[:] = context["path"]


def _error(exc: BaseException, workspace: Path) -> tuple[str, bool]:
    """One line for the parent, and whether it was a full disk (then said as such, with the file
    that could not be written, or the workspace when the error does not name one)."""
    from sextant.diskspace import describe, no_space

    full = no_space(exc)
    if full is None or isinstance(exc, SextantError):
        return one_line(exc), full is not None
    return describe(Path(full.filename or workspace), what="" if full.filename else f"into {workspace}"), True


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: be killed when the fork server ends, which it does when the run dies (even by kill -9),
    so no child of a dead run goes on writing into a workspace that the next run now holds."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it ended before the request took effect
        os._exit(1)
