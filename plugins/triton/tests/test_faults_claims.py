"""Claims name their owner (worker, PID, host): a claim whose owner is gone is taken over at once,
a live one is waited on only until the budget is spent, and a table written by an older version
gains the owner's columns. Real SQLite files; no server needed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from sextant_triton.analyze.explore import Session
from sextant_triton.analyze.store import Store

UNIT, HARDWARE = "scale@abc|batch 1", "cpu x2; local"
POINT = {"max_batch_size": 8, "instances": 1}


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'measurements.sqlite'}"


def _dead_pid() -> int:
    """The PID of a process that has ended (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _leave_claim(store: Store, pid: int, host: str, claimed: float) -> None:
    """A claim row as a run that died leaves it."""
    with store.engine.begin() as db:
        db.execute(
            store.table.insert().values(
                key=store.key(UNIT, POINT, HARDWARE),
                unit=UNIT,
                hardware=HARDWARE,
                point='{"instances": 1, "max_batch_size": 8}',
                done=False,
                owner="f" * 32,
                pid=pid,
                host=host,
                claimed=claimed,
            )
        )


def test_a_claim_whose_owner_is_gone_is_taken_over_at_once(url):
    naps: list[float] = []
    store = Store(url, clock=lambda: 1000.0, sleep=naps.append)
    pid = _dead_pid()
    _leave_claim(store, pid, socket.gethostname(), claimed=999.0)  # one second old
    assert store.claim(UNIT, POINT, HARDWARE)
    assert naps == []
    (said,) = store.took_over
    assert f"process {pid} on {socket.gethostname()}, which is gone" in said
    with store.engine.connect() as db:
        (row,) = db.execute(store.table.select()).all()
    assert (row.owner, row.pid, row.host, row.done) == (store.owner, os.getpid(), socket.gethostname(), False)
    store.close()


def test_a_claim_of_a_closed_store_in_this_process_is_taken_over(url):
    first = Store(url)
    assert first.claim(UNIT, POINT, HARDWARE)
    first.close()  # without release: as a run that failed before it could
    second = Store(url, sleep=lambda s: pytest.fail("waited on a claim whose owner is gone"))
    assert second.claim(UNIT, POINT, HARDWARE)
    second.close()


def test_a_claim_from_another_host_is_taken_over_only_once_stale(url):
    now = [1000.0]
    store = Store(url, stale_s=1800.0, clock=lambda: now[0])
    _leave_claim(store, _dead_pid(), "elsewhere", claimed=900.0)  # its PID means nothing here
    assert not store.claim(UNIT, POINT, HARDWARE)
    now[0] = 900.0 + 1801.0
    assert store.claim(UNIT, POINT, HARDWARE)
    assert "made 1801 s before" in store.took_over[0]
    store.close()


def test_a_live_claim_is_waited_on_only_until_the_budget_is_spent(url, tmp_path):
    holder = Store(url)  # open in this (live) process: its claim is live
    assert holder.claim(UNIT, POINT, HARDWARE)
    naps: list[float] = []
    mine = Store(url, sleep=naps.append)
    assert not mine.claim(UNIT, POINT, HARDWARE)
    answers = iter([False, False, True])
    assert mine.wait(UNIT, POINT, HARDWARE, give_up=lambda: next(answers)) is None
    assert len(naps) == 2  # polled until give_up said so, not until the claim went stale

    spent = "the time budget of 5 s ran out"
    budget = iter([None])  # time left when it is asked to measure; spent while it waits on the claim
    session = Session(
        None,  # type: ignore[arg-type]  # measure() reaches neither the space nor the server here
        None,  # type: ignore[arg-type]
        mine,
        key=UNIT,
        hardware=HARDWARE,
        windows=None,  # type: ignore[arg-type]
        inputs={},
        workdir=tmp_path,
        give_up=lambda: next(budget, spent),
    )
    record = session.measure(POINT)
    assert record.metrics is None
    assert record.error == f"not measured: process {os.getpid()} on {socket.gethostname()} was measuring it when {spent}"
    assert mine.get(UNIT, POINT, HARDWARE) is None  # nothing stored for it: the next run measures it
    holder.release()
    mine.close()
    holder.close()


def test_a_table_of_an_older_version_gains_the_owner_columns(tmp_path):
    import sqlalchemy as sa

    path = tmp_path / "old.sqlite"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as db:  # the table as the version before owners had it
        db.execute(
            sa.text(
                "CREATE TABLE sextant_measurements (key VARCHAR(64) PRIMARY KEY, unit TEXT NOT NULL, "
                "hardware TEXT NOT NULL, point TEXT NOT NULL, metrics TEXT, error TEXT, done BOOLEAN NOT NULL, "
                "owner VARCHAR(32), claimed FLOAT, measured FLOAT)"
            )
        )
        db.execute(
            sa.text(
                "INSERT INTO sextant_measurements VALUES ('k', 'u', 'h', '{\"a\": 1}', '{\"throughput\": 5.0}', "
                "NULL, 1, 'o', 1.0, 2.0)"
            )
        )
    engine.dispose()
    store = Store(f"sqlite:///{path}")
    (record,) = store.all("u", "h")
    assert record.metrics == {"throughput": 5.0}
    assert store.claim(UNIT, POINT, HARDWARE)
    assert {c["name"] for c in sa.inspect(store.engine).get_columns("sextant_measurements")} >= {"pid", "host"}
    store.close()


def test_a_models_content_is_the_same_after_its_server_compiled_its_python(tmp_path):
    """A run resumes only if the model's content key is the one the run before it stored under; the
    Python backend writes ``__pycache__`` into the model's folder when it first loads it."""
    from _serving import write_repository
    from sextant_triton.analyze.model import read_model

    repository = write_repository(tmp_path / "models")
    before = read_model(repository, "scale").content
    cache = repository / "scale" / "1" / "__pycache__"
    cache.mkdir()
    (cache / "model.cpython-311.pyc").write_bytes(b"compiled")
    assert read_model(repository, "scale").content == before
    (repository / "scale" / "1" / "model.py").write_text("# changed\n")
    assert read_model(repository, "scale").content != before
