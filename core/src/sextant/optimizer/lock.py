"""One run per workspace: a lock held for the whole run, naming its holder.

The lock is a POSIX record lock (``fcntl.lockf``) on ``<workspace>/.lock``. The kernel drops it when
the holding process ends, however it ends (kill -9 included), so a lock is never stale: a file left
by a dead run is simply taken over, and the run says so. Record locks belong to a process, not to
its children, so the fork server and the steps it forks never hold it. Within one process, a set of
held paths refuses a second run in another thread.

The file's content (PID, start time, host, command) is only for the message a second run shows.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sextant.diskspace import writable
from sextant.errors import WorkspaceBusyError

LOCK = ".lock"


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a workspace's lock."""

    pid: int
    started: str
    host: str
    command: str

    @classmethod
    def me(cls) -> Holder:
        return cls(
            pid=os.getpid(),
            started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            host=socket.gethostname(),
            command=_command(),
        )

    @classmethod
    def read(cls, path: Path) -> Holder | None:
        try:
            return cls.parse(path.read_bytes())
        except OSError:
            return None

    @classmethod
    def parse(cls, content: bytes) -> Holder | None:
        try:
            data = json.loads(content)
            return cls(int(data["pid"]), str(data["started"]), str(data["host"]), str(data["command"]))
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}, started {self.started} ({self.command})"


_held: dict[Path, Holder] = {}  # folders this process holds, and as whom
_held_guard = threading.Lock()


class WorkspaceLock:
    """``with WorkspaceLock(folder):`` holds the workspace for one run, or raises
    :class:`~sextant.errors.WorkspaceBusyError` at once, naming the other run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self.path = self.folder / LOCK
        self.took_over: Holder | None = None  # the earlier holder whose lock was left behind
        self._fd: int | None = None

    def __enter__(self) -> WorkspaceLock:
        with _held_guard:
            if self.folder in _held:
                raise _busy(self.folder, "another run in this process")
            with writable(self.path):
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                holder = Holder.read(self.path)
                raise _busy(self.folder, holder.describe() if holder else "another process") from None
            previous = _read(fd)  # through this descriptor: closing another one would drop the lock
            if previous is not None and previous.pid != os.getpid():
                self.took_over = previous
            me = Holder.me()
            _write(fd, asdict(me))
            self._fd = fd
            _held[self.folder] = me
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is None:
            return
        with _held_guard:
            _held.pop(self.folder, None)
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)  # nobody holds it now
            os.close(self._fd)  # releases the record lock
            self._fd = None


def holder(folder: Path) -> Holder | None:
    """The live process running in ``folder``, or ``None`` when no run holds it."""
    path = Path(folder) / LOCK
    if not path.exists():
        return None
    if Path(folder).resolve() in _held:  # opening the file here would drop this process's lock
        return _held[Path(folder).resolve()]
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        # a read lock is refused only while a run holds the write lock (and takes nothing from it)
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return Holder.read(path) or Holder(0, "?", "?", "unknown")
    finally:
        os.close(fd)
    return None


def _command() -> str:
    """This process's command line, as a user would recognise it (at most 200 characters)."""
    argv = sys.argv or ["python"]
    program = "python -c" if argv[0] == "-c" else Path(argv[0]).name
    text = " ".join([program, *argv[1:]])
    return text if len(text) <= 200 else text[:197] + "..."


def _read(fd: int) -> Holder | None:
    size = os.fstat(fd).st_size
    return Holder.parse(os.pread(fd, size, 0)) if size else None


def _write(fd: int, data: dict[str, Any]) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(data).encode(), 0)


def _busy(folder: Path, who: str) -> WorkspaceBusyError:
    return WorkspaceBusyError(
        f"the workspace {folder} is in use by {who}",
        hint="Wait for that run to finish, or give this one another --workspace. "
        "(A lock left by a process that died is taken over by the next run.)",
    )
