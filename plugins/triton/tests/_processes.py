"""Processes a test started, found by what /proc says (command line, parent), and waited for by a
bounded number of polls: a stopped or killed run must leave none of them behind."""

from __future__ import annotations

import time
from pathlib import Path

#: polls (and the pause between them) while waiting for processes to end: a bound, not a timing
GONE_POLLS = 600
POLL_S = 0.1
#: /proc states of a process that has ended (a zombie, dead but not yet reaped, or dead)
ENDED = ("Z", "X")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ENDED


def cmdline(pid: int) -> str:
    """``pid``'s command line, its arguments joined by NUL ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def servers_of(folder: Path) -> list[int]:
    """PIDs of the running ``tritonserver`` processes whose command line names ``folder``.

    A server starts each Python-backend stub by fork, then exec: until the exec, the child has the
    server's command line. Such a child (a match whose parent is a match, running or not) is not
    another server. Each process's state is read once, so one that ends meanwhile is left out."""
    matches = {}
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        text = cmdline(pid)
        if "tritonserver" in text.split("\0", 1)[0] and str(folder) in text and (fields := _stat(pid)) is not None:
            matches[pid] = fields
    running = {pid for pid, (state, *_) in matches.items() if state not in ENDED}
    return sorted(pid for pid in running if int(matches[pid][1]) not in matches)


def children(pid: int) -> list[int]:
    """PIDs of the processes whose parent is ``pid`` (a server's Python-backend stubs)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _stat(int(stat.parent.name))
        if fields is not None and fields[1] == str(pid):
            out.append(int(stat.parent.name))
    return out


def left_alive(pids: list[int], polls: int = GONE_POLLS) -> list[int]:
    """Those of ``pids`` still running after up to ``polls`` polls."""
    for _ in range(polls):
        running = [p for p in pids if alive(p)]
        if not running:
            return []
        time.sleep(POLL_S)
    return [p for p in pids if alive(p)]
