"""Run one job in a child process, so a crash, hang or out-of-memory cannot take the run down.

Children are forked from a fork server (``sextant.forkserver``) that has already imported the heavy
modules the plan needs (``preload``), so each child starts in milliseconds instead of re-importing
torch. A child gets its own session (so a kill takes its helpers too), writes its stdout and stderr
to the step's log, and talks to the parent over a socket: ``emit`` sends an event, ``ask`` waits
for the parent's reply.

The time limit counts from the child's last message: a step that keeps reporting progress (a
profile sweep) runs on; one that goes quiet for ``timeout`` seconds is killed.

Inside :func:`shared_servers`, runs one after another in this process share warm servers (the parts
of a pipeline, a test session): a run forks its children from an idle live server, which imports
whatever more the run needs, instead of starting one and importing torch again. Every job carries
the parent's environment, working folder and ``sys.path`` as they are when it starts, so a child
of a shared server sees what a child of its own server would. (A child's resident memory includes
the modules its server imported: in a shared server, also those an earlier run needed.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sextant.forkserver import ForkServer

Handler = Callable[[str, Any], Any]
Clock = Callable[[], float]


@dataclass(frozen=True)
class ChildResult:
    """How a child ended: its return value, or the real cause of its failure."""

    ok: bool
    value: Any = None
    error: str | None = None
    traceback: str | None = None
    exitcode: int | None = None
    timed_out: bool = False
    disk_full: bool = False  # the error was a file system out of space (or quota)
    log_tail: str = ""
    seconds: float = 0.0

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


@dataclass
class _Warm:
    """A fork server kept between runs: what it has imported, and whether a run is using it."""

    server: ForkServer
    modules: set[str]
    busy: bool = False


_warm: list[_Warm] | None = None  # inside shared_servers(): the servers kept warm


@contextlib.contextmanager
def shared_servers() -> Iterator[None]:
    """Within the block, runs in this process share warm fork servers (see the module's docstring);
    they stop when the outermost block ends."""
    global _warm
    if _warm is not None:
        yield
        return
    _warm = []
    try:
        yield
    finally:
        warm, _warm = _warm, None
        for entry in warm:
            entry.server.close()


def preload_for(requires: Iterable[str], imports: Iterable[str] = ()) -> list[str]:
    """What a run's fork server imports: the modules ``requires`` names (what the plan's steps and
    runners need: a package, or a heavy module of one that its job imports, such as ``torch._dynamo``)
    and the modules of ``imports`` (what reading the source's artifact imports:
    ``SourceModel.imports``) of packages installed in this environment. Never a user's own
    file (its top-level code would run in the server), even one whose package shares its name with
    an installed one (a project's ``examples/`` beside a wheel that installs ``examples``)."""
    import importlib.util

    modules = {m for m in requires if importlib.util.find_spec(m.split(".", 1)[0]) is not None}
    return sorted(modules | {m for m in imports if _installed(m.split(".", 1)[0])})


def _installed(package: str) -> bool:
    """Whether ``package``, as this process would import it, lies in the environment's site-packages."""
    import importlib.util
    import sysconfig

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    places = list(spec.submodule_search_locations or ()) or ([spec.origin] if spec.origin else [])
    roots = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    return bool(places) and all(any(Path(p).resolve().is_relative_to(r) for r in roots) for p in places)


class Isolator:
    """Runs jobs in children forked from one fork server, started on first use (or a warm one
    borrowed inside :func:`shared_servers`)."""

    def __init__(
        self, preload: Sequence[str] = (), server_log: Path | None = None, clock: Clock = time.monotonic
    ) -> None:
        self._preload = ["sextant.worker", *preload]
        self._server_log = server_log
        self._server: ForkServer | None = None
        self._pending: list[str] = []  # modules a started server is to import before its next fork
        self._borrowed: _Warm | None = None
        self._clock = clock  # what the timeout is measured with (tests give their own)

    def __enter__(self) -> Isolator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._borrowed is not None:
            self._borrowed.busy = False  # back to the warm servers
        elif self._server is not None:
            self._server.close()
        self._server, self._borrowed = None, None

    def start(self) -> None:
        """Start the fork server now (it starts on first use otherwise)."""
        if self._server is not None and self._server.alive():
            return
        self.close()  # one that died is replaced
        self._pending = []  # a new server imports the whole list
        log = str(self._server_log) if self._server_log else None
        if _warm is None:
            self._server = ForkServer(self._preload, log)
            return
        for dead in [w for w in _warm if not w.server.alive()]:
            dead.server.close()
            _warm.remove(dead)
        entry = next((w for w in _warm if not w.busy), None)
        if entry is None:
            entry = _Warm(ForkServer(self._preload, log), set(self._preload))
            _warm.append(entry)
        entry.busy = True
        self._server, self._borrowed = entry.server, entry
        self._pending = list(self._preload)  # what the warm server has not imported yet, it imports now
        self._send_pending()

    def expect(self, modules: Sequence[str], server_log: Path | None = None, *, now: bool = True) -> None:
        """What the run needs, once it knows: the server imports ``modules`` too (a started one
        after what it has imported: ``now``, or before its first fork, which a re-run that finds
        everything cached never asks for) and logs to ``server_log``. A run starts its server before
        loading the model, with the packages the model imports, so that the server imports the
        framework while this process does; it learns the plan's modules and its workspace later."""
        new = [m for m in modules if m not in self._preload]
        self._preload += new
        self._server_log = self._server_log or server_log
        if self._server is None or not self._server.alive():
            return  # it starts with all of them on first use
        if server_log is not None:
            self._server.relog(server_log)
        self._pending += new
        if now:
            self._send_pending()

    def _send_pending(self) -> None:
        """Have the server import the pending modules (a borrowed one: those it has not imported)."""
        assert self._server is not None
        new, self._pending = self._pending, []
        if self._borrowed is not None:
            new = [m for m in new if m not in self._borrowed.modules]
            self._borrowed.modules.update(new)
        self._server.preload(new)

    def _fork(self) -> tuple[int, Connection]:
        self.start()
        assert self._server is not None
        if self._pending:
            self._send_pending()
        return self._server.fork()

    def run(
        self,
        target: str,
        payload: Mapping[str, Any],
        *,
        log_path: Path,
        timeout: float,
        handler: Handler | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ChildResult:
        """Run ``target(payload, channel)`` in a child; ``handler(kind, data)`` sees events and answers
        asks. The child is killed after ``timeout`` seconds without a message from it."""
        started = time.perf_counter()
        pid, conn = self._fork()
        ended: dict[str, Any] = {"ok": False}  # the fields of its result, as they are learned
        try:
            context = {"environ": dict(os.environ), "cwd": os.getcwd(), "path": list(sys.path)}
            conn.send((target, dict(payload), str(log_path), dict(env or {}), context))
            deadline = self._clock() + timeout
            while True:
                if not conn.poll(0.05):
                    if self._clock() > deadline:
                        ended["timed_out"] = True
                        break
                    continue
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    break  # the child died
                deadline = self._clock() + timeout
                if message[0] == "result":
                    ended.update(ok=True, value=message[1])
                    break
                if message[0] == "error":
                    ended.update(error=message[1], traceback=message[2], disk_full=message[3])
                    break
                kind, data = message[1], message[2]
                answer = handler(kind, data) if handler else None
                if message[0] == "ask":
                    conn.send(answer)
                    deadline = self._clock() + timeout
        finally:
            conn.close()
            exitcode = self._stop(pid, graceful=ended["ok"] or ended.get("error") is not None)
        seconds = time.perf_counter() - started
        return ChildResult(**ended, exitcode=exitcode, seconds=seconds, log_tail=_tail(log_path))

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
        if status is None:  # killed: the server reports it as soon as it reaps it (a minute is a bound, not a wait)
            status = self._server.exit_status(pid, timeout=60.0)
        return status


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])
