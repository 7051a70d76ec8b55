"""Any stop of a run handled like Ctrl-C.

A run is stopped by more than Ctrl-C: ``timeout``, CI and ``docker stop`` send SIGTERM, a closed SSH
session sends SIGHUP. Inside :func:`stop_signals` both raise :class:`Stopped` in the main thread,
a :class:`KeyboardInterrupt`, so every ``except KeyboardInterrupt`` that keeps finished work, marks
the run interrupted and stops child processes handles them exactly as it handles Ctrl-C. The
signal is kept so the command can exit as a process stopped by it would (128 + its number).

SIGKILL cannot be caught: what it strands (a child, a server, a claim) is made safe elsewhere, by a
parent-death signal on children and by owners recorded on locks and claims.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: the signals handled like SIGINT (SIGHUP does not exist on Windows)
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Stopped(KeyboardInterrupt):
    """The run was stopped by ``signum`` (SIGINT when raised as a plain Ctrl-C)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        """The exit status of a process this signal stopped, as shells report it."""
        return 128 + self.signum


def signal_of(exc: BaseException) -> int:
    """The signal behind an interrupt: its own for :class:`Stopped`, SIGINT for Ctrl-C."""
    return exc.signum if isinstance(exc, Stopped) else int(signal.SIGINT)


def _raise(signum: int, frame: object) -> None:
    raise Stopped(signum)


@contextmanager
def stop_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Stopped`; outside it, what was there before.

    Does nothing off the main thread (Python delivers signals to the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
