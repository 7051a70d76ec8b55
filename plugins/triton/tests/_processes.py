"""Processes a test started, found by what /proc says (command line, parent), and waited for by a
bounded number of polls: a stopped or killed run must leave none of them behind."""

from __future__ import annotations

import time
from pathlib import Path

#: polls (and the pause between them) while waiting for processes to end: a bound, not a timing
GONE_POLLS = 600
POLL_S = 0.1


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def servers_of(folder: Path) -> list[int]:
    """PIDs of the ``tritonserver`` processes whose command line names ``folder``.

    A server starts each Python-backend stub by fork, then exec: until the exec, the child has the
    server's command line. Such a child (a match whose parent is a match) is not another server."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "tritonserver" in text.split("\0", 1)[0] and str(folder) in text and alive(int(cmdline.parent.name)):
            found.append(int(cmdline.parent.name))
    return [pid for pid in found if (_stat(pid) or ["", ""])[1] not in {str(other) for other in found}]


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
