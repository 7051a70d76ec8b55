"""A real throwaway PostgreSQL server: it starts, holds databases that several connections share,
enforces the unique constraint that workers of a distributed search claim work through, and is
gone, by PID, once stopped.

Skipped, with the reason, where PostgreSQL's server programs or psycopg are missing (failed instead
with ``SEXTANT_REQUIRE_POSTGRES=1``).
"""

from __future__ import annotations

import os
import pwd
import socket
import threading
import time
from pathlib import Path

import pytest
from sextant_triton import postgres as pg
from sextant_triton.testing import require_postgres

#: polls (and the pause between them) while waiting for the second claim to block on the first
LOCK_POLLS = 600
POLL_S = 0.05


@pytest.fixture(scope="module")
def claims(postgres):
    """libpq URL of a fresh database holding an empty ``claims`` table (``key`` is unique)."""
    import psycopg

    postgres.create_database("search")
    dsn = postgres.dsn("search")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE claims (key text PRIMARY KEY, worker text NOT NULL)")
    return dsn


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


def test_two_connections_share_rows_and_a_duplicate_claim_fails(claims):
    import psycopg

    with psycopg.connect(claims, autocommit=True) as first, psycopg.connect(claims, autocommit=True) as second:
        first.execute("INSERT INTO claims VALUES ('a', 'w1')")
        second.execute("INSERT INTO claims VALUES ('b', 'w2')")
        assert first.execute("SELECT key, worker FROM claims ORDER BY key").fetchall() == [("a", "w1"), ("b", "w2")]
        with pytest.raises(psycopg.errors.UniqueViolation):
            second.execute("INSERT INTO claims VALUES ('a', 'w2')")
        # the claim form workers use: the loser gets no row back, and the winner's row stands
        won = first.execute("INSERT INTO claims VALUES ('c', 'w1') ON CONFLICT DO NOTHING RETURNING key").fetchone()
        lost = second.execute("INSERT INTO claims VALUES ('c', 'w2') ON CONFLICT DO NOTHING RETURNING key").fetchone()
        assert (won, lost) == (("c",), None)
        owners = second.execute("SELECT worker FROM claims WHERE key IN ('a', 'c') ORDER BY key").fetchall()
        assert owners == [("w1",), ("w1",)]


def test_a_claim_waits_for_an_uncommitted_one_and_then_fails(claims):
    import psycopg

    outcome: dict[str, object] = {}
    connected = threading.Event()

    def claim() -> None:
        with psycopg.connect(claims, autocommit=True) as second:
            second.execute("SET lock_timeout = '60s'")  # bounded even if the test goes wrong
            outcome["pid"] = second.info.backend_pid
            connected.set()
            try:
                second.execute("INSERT INTO claims VALUES ('d', 'w2')")
                outcome["result"] = "inserted"
            except psycopg.Error as exc:
                outcome["result"] = exc

    with psycopg.connect(claims) as first, psycopg.connect(claims, autocommit=True) as watcher:
        first.execute("INSERT INTO claims VALUES ('d', 'w1')")  # its transaction stays open
        thread = threading.Thread(target=claim, daemon=True)
        thread.start()
        assert connected.wait(60), "the second connection never opened"
        for _ in range(LOCK_POLLS):
            row = watcher.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (outcome["pid"],))
            if row.fetchone() == ("Lock",):
                break
            time.sleep(POLL_S)
        else:
            pytest.fail("the second claim never waited for the first one's transaction")
        assert "result" not in outcome
        first.commit()
        thread.join(60)
    assert not thread.is_alive()
    assert isinstance(outcome["result"], psycopg.errors.UniqueViolation)


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
    assert server.temporary is None or not server.temporary.exists()
