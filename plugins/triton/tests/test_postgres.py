"""A real throwaway PostgreSQL server, and sextant's analyze store on it: the server starts, keeps
or removes its files as documented, and is gone, by PID, once stopped; the store's claims, waits,
take-overs and table creation behave on PostgreSQL, with several workers (connections) at once, as
workers of a distributed search need.

Skipped, with the reason, where PostgreSQL's server programs or psycopg are missing (failed instead
with ``SEXTANT_REQUIRE_POSTGRES=1``).
"""

from __future__ import annotations

import itertools
import json
import os
import pwd
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import _postgres as pg
import pytest
from _postgres import require_postgres
from sextant_triton.analyze.store import Store

#: polls (and the pause between them) while waiting for a statement to block on another's transaction
LOCK_POLLS = 600
POLL_S = 0.05
POINT = {"instances": 2}


_DATABASES = itertools.count()


@pytest.fixture
def store_url(postgres):
    """SQLAlchemy URL of a fresh database for this test's analyze store."""
    return postgres.create_database(f"store{next(_DATABASES)}")


def _blocked_on_a_lock(postgres, database: str) -> None:
    """Return once a connection to ``database`` waits for a lock another transaction holds."""
    import psycopg

    with psycopg.connect(postgres.dsn(), autocommit=True) as watcher:
        for _ in range(LOCK_POLLS):
            query = "SELECT 1 FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'"
            if watcher.execute(query, (database,)).fetchone():
                return
            time.sleep(POLL_S)
    pytest.fail("no connection ever waited for the other transaction")


def _in_thread(call) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:
            outcome["result"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_finds_the_server_programs():
    require_postgres()
    bindir = pg.find_binaries()
    assert (bindir / "initdb").is_file() and (bindir / "postgres").is_file()


def test_urls_name_the_driver_host_port_and_database(postgres):
    assert postgres.url("search") == f"postgresql+psycopg://postgres@127.0.0.1:{postgres.port}/search"
    assert postgres.dsn("search") == f"postgresql://postgres@127.0.0.1:{postgres.port}/search"
    assert postgres.create_database("urls") == postgres.url("urls")
    assert postgres.create_database("urls", exist_ok=True) == postgres.url("urls")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's user from /proc")
def test_server_runs_as_the_postgres_user_when_we_are_root(postgres):
    expected = pwd.getpwnam(pg.SERVER_USER).pw_uid if os.geteuid() == 0 else os.geteuid()
    assert os.stat(f"/proc/{postgres.pid}").st_uid == expected


def test_workers_share_measurements_through_the_analyze_store(store_url):
    """Two workers' stores on one PostgreSQL database: a point is claimed once, the other worker
    waits for its result instead of measuring it, a dead worker's claim is taken over once stale, a
    stopped worker's claims are released, and every result is there for both, oldest first."""
    now, naps = [1000.0], []

    def sleep(seconds: float) -> None:  # the first worker finishes while the second waits
        naps.append(seconds)
        if len(naps) == 2:
            first.put("unit", POINT, "hw", {"throughput": 5.0})

    first = Store(store_url, clock=lambda: now[0])
    second = Store(store_url, stale_s=60, clock=lambda: now[0], sleep=sleep)
    try:
        assert first.engine.dialect.name == "postgresql"
        assert first.claim("unit", POINT, "hw")
        assert not second.claim("unit", POINT, "hw")  # the unique key: only one insert wins
        assert second.get("unit", POINT, "hw") is None
        waited = second.wait("unit", POINT, "hw", pause_s=0.2)
        assert waited is not None and waited.metrics == {"throughput": 5.0} and naps == [0.2, 0.2]
        assert second.get("unit", POINT, "hw") == waited
        assert not second.claim("unit", POINT, "hw")  # done: nobody measures it again

        died = {"instances": 3}
        assert first.claim("unit", died, "hw")
        now[0] += 59
        assert not second.claim("unit", died, "hw")  # not stale yet
        now[0] += 2
        assert second.claim("unit", died, "hw")  # the first worker died without finishing
        second.put("unit", died, "hw", None, error="the server exited")

        stopped = {"instances": 4}
        assert second.claim("unit", stopped, "hw")
        second.release()  # Ctrl-C: its unfinished claim goes, finished results stay
        assert first.wait("unit", stopped, "hw") is None  # nothing to wait for: measure it here
        assert first.claim("unit", stopped, "hw")

        records = first.all("unit", "hw")
        assert [(r.point, r.metrics, r.error) for r in records] == [
            (POINT, {"throughput": 5.0}, None),
            (died, None, "the server exited"),
        ]
        assert second.all("unit", "hw") == records and first.all("unit", "other hw") == []
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize(("ends", "wins"), [("commit", False), ("rollback", True)])
def test_a_claim_waits_for_another_workers_unfinished_insert(postgres, store_url, ends, wins):
    """A claim racing another worker's claim of the same point waits for that transaction: it loses
    when the other commits and wins when the other rolls back, so exactly one worker measures it."""
    store = Store(store_url, stale_s=60)
    try:
        with store.engine.connect() as other:
            transaction = other.begin()
            values = {"unit": "unit", "hardware": "hw", "point": json.dumps(POINT), "done": False}
            key = Store.key("unit", POINT, "hw")
            other.execute(store.table.insert().values(key=key, owner="w1", claimed=store.clock(), **values))
            thread, outcome = _in_thread(lambda: store.claim("unit", POINT, "hw"))
            _blocked_on_a_lock(postgres, store_url.rsplit("/", 1)[1])
            assert "result" not in outcome
            getattr(transaction, ends)()
        thread.join(60)
        assert not thread.is_alive() and outcome["result"] is wins
    finally:
        store.close()


def test_workers_starting_together_create_the_table_once(postgres, store_url):
    """Two workers start on an empty database at the same moment: the one whose CREATE TABLE waits
    for the other's and then meets the duplicate retries, finds the table, and goes on."""
    import sqlalchemy as sa

    database = f"{store_url.rsplit('/', 1)[1]}_empty"
    empty = postgres.create_database(database)
    template = Store(store_url)  # only for its table's definition
    engine = sa.create_engine(empty)
    try:
        with engine.connect() as other:
            transaction = other.begin()
            template.table.metadata.create_all(other)
            thread, outcome = _in_thread(lambda: Store(empty))
            _blocked_on_a_lock(postgres, database)
            assert "result" not in outcome
            transaction.commit()
        thread.join(60)
        assert not thread.is_alive()
        late = outcome["result"]
        assert isinstance(late, Store), late
        assert late.claim("unit", POINT, "hw")
        late.close()
    finally:
        engine.dispose()
        template.close()


def test_start_retries_on_a_taken_port_and_stop_ends_the_process(tmp_path, monkeypatch):
    require_postgres()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = iter([port, pg.free_port()])
        monkeypatch.setattr(pg, "free_port", lambda host="127.0.0.1": next(ports))
        server = pg.start_postgres(tmp_path)
    try:
        assert server.port != port
        assert "Address already in use" in server.logs()
        assert server.running() and server.ready()
    finally:
        code = server.stop()
    assert code == 0
    with pytest.raises(ProcessLookupError):
        os.kill(server.pid, 0)
    assert not server.ready()


@pytest.fixture
def reachable():
    """A short folder that the server's account can traverse (pytest's tmp_path is 0700, root's)."""
    folder = Path(tempfile.mkdtemp(prefix="pg-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_folder_the_server_can_reach_keeps_its_data_for_the_next_start(reachable):
    require_postgres()
    with pg.start_postgres(reachable) as server:
        assert server.temporary is None and server.data == reachable / "data"
        server.create_database("kept")
    assert (reachable / "data" / "PG_VERSION").is_file()  # a stop leaves the data where it was
    with pg.start_postgres(reachable) as again:
        import psycopg

        with psycopg.connect(again.dsn("kept"), autocommit=True) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("kept",)


def test_a_folder_too_deep_for_the_socket_gets_a_private_home_that_stop_removes(tmp_path):
    require_postgres()
    folder = tmp_path / ("deep" * 20)
    server = pg.start_postgres(folder)
    try:
        assert server.temporary is not None and server.data == server.temporary / "data"
        assert server.temporary.is_dir() and server.log == folder / "postgres.log"
    finally:
        assert server.stop() == 0
    assert not server.temporary.exists() and server.log.is_file()
