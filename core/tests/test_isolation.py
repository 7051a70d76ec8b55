"""Isolated children: results, errors, crashes, and the timeout counted from the last message.

The timeout is measured with an injected clock, so no assertion depends on how loaded the machine is.
"""

import time

from sextant.isolation import Isolator


def chatty(document, channel):
    for i in range(document["events"]):
        channel.emit("progress", i)
    time.sleep(0.3)  # then a quiet spell: the parent polls and finds nothing
    return "done"


def silent(document, channel):
    time.sleep(60)


def failing(document, channel):
    raise ValueError("no such operator")


class MessageClock:
    """Time moves on only when the child sends a message (0.6 s each) or when told to."""

    def __init__(self, per_call: float = 0.0) -> None:
        self.now, self.per_call = 0.0, per_call

    def __call__(self) -> float:
        self.now += self.per_call
        return self.now

    def on_message(self, kind, data):
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
    assert [data for _, data in result.events] == [0, 1, 2, 3, 4]


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
