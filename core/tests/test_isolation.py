"""Isolated children: results, errors, crashes, and the timeout counted from the last message.

The timeout is measured with an injected clock, so no assertion depends on how loaded the machine is.
"""

import os
import sys
import time

from sextant.isolation import Isolator, shared_servers
from sextant.messages import Ttft


def chatty(document, channel):
    for i in range(document["events"]):
        channel.emit(Ttft(i, 1.0))
    time.sleep(0.3)  # then a quiet spell: the parent polls and finds nothing
    return "done"


def silent(document, channel):
    time.sleep(60)


def failing(document, channel):
    raise ValueError("no such operator")


def surroundings(document, channel):
    return {
        "server": os.getppid(),
        "preloaded": document["module"] in sys.modules,  # before this child imported anything
        "variable": os.environ.get("SEXTANT_TEST_VARIABLE"),
        "cwd": os.getcwd(),
        "path": sys.path[0],
    }


class MessageClock:
    """Time moves on only when the child sends a message (0.6 s each) or when told to."""

    def __init__(self, per_call: float = 0.0) -> None:
        self.now, self.per_call, self.messages = 0.0, per_call, []

    def __call__(self) -> float:
        self.now += self.per_call
        return self.now

    def on_message(self, kind, data):
        self.messages.append((kind, data))
        self.now += 0.6


def test_progress_resets_the_timeout(tmp_path):
    clock = MessageClock()
    with Isolator(clock=clock) as isolator:
        result = isolator.run(
            "test_isolation:chatty", {"events": 5}, log_path=tmp_path / "log", timeout=1.0, handler=clock.on_message
        )
    # five messages moved the clock 3 s past the start: only a deadline renewed by each message survives
    assert clock.now >= 3.0
    assert result.ok and result.value == "done" and not result.timed_out
    assert [Ttft.from_json(data).length for _, data in clock.messages] == [0, 1, 2, 3, 4]


def test_a_quiet_child_is_killed_at_the_timeout(tmp_path):
    clock = MessageClock(per_call=0.5)  # each look at the clock: half a second later
    with Isolator(clock=clock) as isolator:
        result = isolator.run("test_isolation:silent", {}, log_path=tmp_path / "log", timeout=2.0)
    assert result.timed_out and not result.ok
    assert result.seconds < 30  # killed, not waited for (the child sleeps 60 s)
    assert "timed out" in result.reason()


def test_an_exception_comes_back_with_its_message_and_traceback(tmp_path):
    with Isolator() as isolator:
        result = isolator.run("test_isolation:failing", {}, log_path=tmp_path / "log", timeout=60)
    assert result.reason() == "ValueError: no such operator"
    assert "Traceback" in result.traceback and "failing" in result.traceback


def test_isolation_and_the_fork_server_do_not_import_each_other():
    import ast
    from pathlib import Path

    import sextant

    root = Path(sextant.__file__).parent

    def imports(module: str) -> set[str]:
        tree = ast.parse((root / f"{module}.py").read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
        return found

    assert "sextant.forkserver" in imports("isolation")
    assert "sextant.isolation" not in imports("forkserver")
    assert "sextant.isolation" not in imports("child")


def _run(isolator, tmp_path, module="colorsys"):
    result = isolator.run("test_isolation:surroundings", {"module": module}, log_path=tmp_path / "log", timeout=60)
    assert result.ok, result.reason()
    return result.value


def test_shared_servers_fork_later_runs_from_the_warm_server_with_the_parents_surroundings(
    tmp_path, monkeypatch
):
    with shared_servers():
        with Isolator(preload=["wave"]) as first:
            before = _run(first, tmp_path, "wave")
        assert before["preloaded"]
        # what changes in the parent between runs reaches the next run's children
        monkeypatch.setenv("SEXTANT_TEST_VARIABLE", "set after the server started")
        monkeypatch.chdir(tmp_path)
        monkeypatch.syspath_prepend(str(tmp_path / "added"))
        with Isolator(preload=["colorsys"]) as second:  # a module the server had not imported
            after = _run(second, tmp_path)
        assert after["server"] == before["server"]  # the same warm server
        assert after["preloaded"]  # imported there for this run
        assert after["variable"] == "set after the server started"
        assert after["cwd"] == str(tmp_path) and after["path"] == str(tmp_path / "added")
        with Isolator() as one, Isolator() as other:  # two runs at once: one server each
            assert _run(one, tmp_path)["server"] != _run(other, tmp_path)["server"]


def test_without_sharing_each_run_starts_its_own_server(tmp_path):
    import sextant.isolation

    if sextant.isolation._warm is not None:  # this suite's conftest shares servers: step outside
        saved, sextant.isolation._warm = sextant.isolation._warm, None
    else:
        saved = None
    try:
        with Isolator() as first:
            one = _run(first, tmp_path)
        with Isolator() as second:
            two = _run(second, tmp_path)
        assert one["server"] != two["server"] and not one["preloaded"]
    finally:
        sextant.isolation._warm = saved


def test_a_server_started_before_its_run_knows_its_workspace_moves_its_log_there_and_imports_more(tmp_path):
    import sextant.isolation

    saved, sextant.isolation._warm = sextant.isolation._warm, None  # a server of its own, not a shared one
    try:
        with Isolator(preload=["no_such_module_xyz"]) as isolator:
            isolator.start()  # before the workspace is known: it logs to a temporary file
            temporary = isolator._server._temporary
            assert temporary is not None and os.path.exists(temporary)
            log = tmp_path / "logs" / "forkserver.log"
            log.parent.mkdir()
            isolator.expect(["colorsys", "no_such_module_xyz"], log)  # the plan's modules, the workspace's log
            assert _run(isolator, tmp_path)["preloaded"]  # the started server imported colorsys too
            # the server moved its log, what it logged before included, before it forked that child
            assert "preloading no_such_module_xyz failed" in log.read_text()
            assert log.read_text().count("preloading") == 1  # asked for twice, imported once
            assert not os.path.exists(temporary)
    finally:
        sextant.isolation._warm = saved


def test_a_server_that_never_learns_its_log_leaves_no_temporary_file():
    from sextant.forkserver import ForkServer

    server = ForkServer(["colorsys"])
    temporary = server._temporary
    server.close()
    assert temporary is not None and not os.path.exists(temporary)


def test_modules_expected_later_wait_for_the_first_fork(tmp_path):
    """A re-run may find everything cached: its server imports the plan's modules only before a first child."""
    import sextant.isolation

    saved, sextant.isolation._warm = sextant.isolation._warm, None
    try:
        with Isolator() as isolator:
            isolator.start()
            sent = []
            isolator._server.preload = sent.append  # what reaches the server, and when
            isolator.expect(["colorsys"], now=False)
            assert sent == []
            assert _run(isolator, tmp_path)["preloaded"] is False and sent == [["colorsys"]]
            isolator.expect(["wave"])  # now: sent at once
            assert sent == [["colorsys"], ["wave"]]
    finally:
        sextant.isolation._warm = saved
