"""The tests' process finder: a server's child seen between its fork and its exec (Python-backend
stubs start so) still has the server's command line, and is not a second server (CI once saw two)."""

from __future__ import annotations

import subprocess
import sys

from _processes import servers_of

#: a process that forks once, says so, and waits (with its child) for stdin to close
FORKS = "import os, sys\nif os.fork():\n    print('forked', flush=True)\nsys.stdin.read()\n"


def test_a_forked_child_not_yet_execd_is_not_another_server(tmp_path):
    folder = tmp_path / "server"
    command = ["/opt/fake/tritonserver", "-c", FORKS, f"--backend-directory={folder}/backends"]
    process = subprocess.Popen(
        command, executable=sys.executable, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline() == "forked\n"  # the end of its output bounds the wait
        assert servers_of(folder) == [process.pid]
        assert servers_of(tmp_path / "elsewhere") == []
    finally:
        process.stdin.close()
        process.wait(timeout=60)
