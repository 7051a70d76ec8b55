"""A real, throwaway PostgreSQL server for the tests, on a loopback address, and the ``postgres``
fixture (``pytest_plugins`` in conftest.py): one server per test module, started in a temporary
folder and stopped, by PID, at teardown. Skipped, with the reason, where PostgreSQL's server
programs or psycopg are missing; failed instead where ``SEXTANT_REQUIRE_POSTGRES=1`` (CI that must
exercise it). :func:`require_postgres` does the same for a test that starts its own server.

:func:`start_postgres` runs ``initdb`` (trust authentication, superuser ``postgres``, no locale,
UTF8) and then ``postgres`` itself as a child process on a free port, set for speed rather than
durability (``fsync``, ``full_page_writes`` and ``synchronous_commit`` off): what it holds is
meant to be thrown away. Readiness is read from the server's own ``postmaster.pid`` (as
``pg_ctl -w`` does), a bounded number of times; a start that fails because the port was taken in
between is retried on a new one. :meth:`PostgresServer.stop` asks for a fast shutdown (SIGINT, the
signal ``pg_ctl stop -m fast`` sends: open transactions roll back, clients are disconnected), waits
a bounded time, then kills by PID. SIGTERM would be a *smart* shutdown, which waits for every
client to disconnect, so one leaked connection would hold it until the timeout.

PostgreSQL refuses to run as root. When this process is root, ``initdb`` and ``postgres`` run as
the ``postgres`` system user (Debian's package creates it; :func:`server_account`) and the data
directory belongs to that user. That user must be able to reach the data directory: where it cannot
reach ``folder`` (pytest's ``tmp_path`` lies under a ``0700`` directory of root's), or where the
socket's path would be too long, the data directory and socket live in a private temporary
directory instead, which :meth:`PostgresServer.stop` removes. Otherwise they are ``folder/data``
and ``folder/socket`` and stay after a stop; a later start on the same folder reuses the data. The
log is always ``folder/postgres.log``.

The ``pg_hba.conf`` that ``initdb --auth=trust`` writes admits local and loopback clients only.
psycopg 3 (``psycopg[binary]``) is imported only by :meth:`PostgresServer.create_database`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sextant.api import SextantError

from sextant_triton.server import free_port, terminate

INSTALL = "apt-get install postgresql"
DRIVER = "pip install 'psycopg[binary]>=3.1'"
#: the system user that runs the server when this process is root
SERVER_USER = "postgres"
#: the superuser initdb creates; trust authentication, so no password
SUPERUSER = "postgres"
#: polls of ``postmaster.pid`` before giving up on a start, and the pause between them
READY_POLLS = 600
POLL_S = 0.1
STOP_TIMEOUT_S = 30.0
INITDB_TIMEOUT_S = 300.0
#: a throwaway server: no durability, quick to start and to stop
SETTINGS: Mapping[str, str] = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}
#: what the log says when the port was taken between choosing it and binding it
_PORT_TAKEN = ("Address already in use", "could not create any TCP/IP sockets")
#: a Unix socket's path has at most 107 bytes (``sun_path`` is 108 with the terminating NUL)
_SOCKET_PATH_MAX = 107
_LIBDIRS = Path("/usr/lib/postgresql")


def find_binaries() -> Path:
    """The directory holding PostgreSQL's server programs (``initdb``, ``postgres``, ``pg_ctl``).

    ``pg_config --bindir`` where that directory has them, else the newest
    ``/usr/lib/postgresql/<version>/bin`` (Debian's layout). Raises :class:`SextantError` when
    neither has them.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=True)
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    candidates += sorted(_LIBDIRS.glob("*/bin"), key=lambda bindir: _version(bindir.parent.name), reverse=True)
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in ("initdb", "postgres")):
            return bindir
    looked = ", ".join(str(c) for c in candidates) or f"no pg_config on PATH, nothing in {_LIBDIRS}"
    raise SextantError(
        "PostgreSQL's server programs (initdb, postgres) were not found",
        hint=f"Install them: {INSTALL} (as root). Looked in: {looked}",
    )


def _version(name: str) -> tuple[int, ...]:
    """``"15"`` → ``(15,)``, ``"9.6"`` → ``(9, 6)``; a name that is not a version sorts first."""
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return (-1,)


def server_account() -> pwd.struct_passwd | None:
    """The account that runs ``initdb`` and ``postgres``: ``None`` (this process's own user) unless
    this process is root, then the ``postgres`` system user. Raises :class:`SextantError` when root
    and that user does not exist."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise SextantError(
            f"PostgreSQL refuses to run as root, and there is no {SERVER_USER!r} user to run it as",
            hint=f"{INSTALL} creates it; or: useradd --system --user-group {SERVER_USER}",
        ) from None


def _run_as(account: pwd.struct_passwd | None) -> dict[str, Any]:
    """``subprocess`` arguments that run a child as ``account`` (its groups only, none of root's)."""
    if account is None:
        return {}
    groups = os.getgrouplist(account.pw_name, account.pw_gid)
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": groups}


def _reachable(path: Path, account: pwd.struct_passwd) -> bool:
    """Whether ``account`` may traverse every directory from ``/`` down to ``path`` (mode bits only;
    an ACL that would allow it just makes :func:`start_postgres` use a temporary directory)."""
    groups = set(os.getgrouplist(account.pw_name, account.pw_gid))
    for directory in (path, *path.parents):
        info = directory.stat()
        if info.st_uid == account.pw_uid:
            bit = stat.S_IXUSR
        elif info.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


def _child_env() -> dict[str, str]:
    """This environment without ``PG*`` variables (``PGDATA``, ``PGPORT``... would steer the
    programs elsewhere), with untranslated messages so that the log can be read back."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _tail(log: Path, offset: int = 0, lines: int = 30) -> str:
    """The last ``lines`` lines of ``log`` from byte ``offset`` on."""
    try:
        with log.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _import_psycopg() -> ModuleType:
    try:
        import psycopg
    except ImportError:
        raise SextantError("psycopg (PostgreSQL's driver for Python) is not installed", hint=DRIVER) from None
    return psycopg


@dataclass(frozen=True)
class PostgresServer:
    """A running ``postgres`` started by :func:`start_postgres`; stop it with :meth:`stop` or a
    ``with`` block."""

    process: subprocess.Popen = field(repr=False, compare=False)
    host: str
    port: int
    #: the data directory (``PGDATA``)
    data: Path
    log: Path
    #: the private temporary directory holding ``data`` that :meth:`stop` removes, if one was made
    temporary: Path | None = None

    @property
    def pid(self) -> int:
        """The postmaster's PID (the server user's process, not a wrapper's)."""
        return self.process.pid

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy's URL for ``database`` through psycopg 3:
        ``postgresql+psycopg://postgres@127.0.0.1:PORT/DATABASE``."""
        return f"postgresql+psycopg://{self._location(database)}"

    def dsn(self, database: str = "postgres") -> str:
        """libpq's URL for ``database`` (what ``psycopg.connect`` and ``psql`` take):
        ``postgresql://postgres@127.0.0.1:PORT/DATABASE``."""
        return f"postgresql://{self._location(database)}"

    def _location(self, database: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{SUPERUSER}@{host}:{self.port}/{urllib.parse.quote(database, safe='')}"

    def running(self) -> bool:
        return self.process.poll() is None

    def ready(self) -> bool:
        """Whether this server's ``postmaster.pid`` says it accepts connections."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        # line 1: the postmaster's PID; line 8: its status (starting, ready, stopping), padded
        return len(lines) >= 8 and lines[0].strip() == str(self.pid) and lines[7].strip() == "ready"

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def create_database(self, name: str, *, exist_ok: bool = False) -> str:
        """Create database ``name`` (over psycopg, autocommit); return its :meth:`url`. An existing
        one is an error unless ``exist_ok``."""
        psycopg = _import_psycopg()
        from psycopg import sql

        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=30) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if found is None or not exist_ok:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Fast shutdown (SIGINT), SIGKILL by PID after ``timeout`` seconds; remove the temporary
        directory if there is one. Returns the exit code (0 after a clean shutdown); calling it
        again does nothing more."""
        _terminate(self.process, timeout)
        if self.temporary is not None:
            shutil.rmtree(self.temporary, ignore_errors=True)
        return self.process.returncode

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _terminate(process: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> None:
    """PostgreSQL's fast shutdown is SIGINT (SIGTERM waits for every client to leave)."""
    terminate(process, signal.SIGINT, timeout)


def _wait_ready(server: PostgresServer, offset: int, polls: int = READY_POLLS) -> None:
    """Poll a bounded number of times; raise with the log's tail (from byte ``offset``) if the server
    exits or is never ready (then it is stopped)."""
    for _ in range(polls):
        if not server.running():
            raise SextantError(
                f"postgres exited with code {server.process.returncode} before it was ready",
                hint=f"Its log ({server.log}) ends:\n{_tail(server.log, offset)}",
            )
        if server.ready():
            return
        time.sleep(POLL_S)
    _terminate(server.process)
    raise SextantError(
        f"postgres was not ready after {polls} polls",
        hint=f"Its log ({server.log}) ends:\n{_tail(server.log, offset)}",
    )


def _home(folder: Path, account: pwd.struct_passwd | None) -> Path | None:
    """A private temporary directory for the data and the socket, or ``None`` where ``folder`` will
    do (the server's account can reach it and the socket's path fits)."""
    socket = folder / "socket" / ".s.PGSQL.65535.lock"
    if (account is None or _reachable(folder, account)) and len(os.fsencode(socket)) <= _SOCKET_PATH_MAX:
        return None
    home = Path(tempfile.mkdtemp(prefix="sextant-pg-"))
    if account is not None:
        os.chown(home, account.pw_uid, account.pw_gid)
    return home


def _initdb(bindir: Path, data: Path, log: Path, account: pwd.struct_passwd | None) -> None:
    command = [
        str(bindir / "initdb"),
        *("-D", str(data), "-U", SUPERUSER, "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"),
    ]
    offset = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        try:
            result = subprocess.run(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_child_env(),
                cwd=data,
                timeout=INITDB_TIMEOUT_S,
                **_run_as(account),
            )
        except subprocess.TimeoutExpired:
            raise SextantError(
                f"initdb took more than {INITDB_TIMEOUT_S:.0f} s",
                hint=f"Its output ({log}) ends:\n{_tail(log, offset)}",
            ) from None
    if result.returncode != 0:
        raise SextantError(
            f"initdb failed with code {result.returncode}", hint=f"Its output ({log}) ends:\n{_tail(log, offset)}"
        )


def start_postgres(
    folder: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    attempts: int = 3,
    settings: Mapping[str, str] = {},  # noqa: B006 - read only
) -> PostgresServer:
    """Start a throwaway PostgreSQL server with its files in ``folder`` and wait until it is ready.

    ``folder`` (created if missing) holds ``postgres.log`` and, unless the module's docstring says
    otherwise, ``data`` and ``socket``; an existing ``data`` is reused, else ``initdb`` makes it.
    ``port`` defaults to a free one; a start that fails because the port was taken in between is
    retried on a new one, ``attempts`` times in all. ``settings`` add to or override
    :data:`SETTINGS` (``-c name=value``).
    """
    bindir = find_binaries()
    account = server_account()
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "postgres.log"
    temporary = _home(folder, account)
    home = temporary or folder
    try:
        data, sockets = home / "data", home / "socket"
        for directory in (data, sockets):
            directory.mkdir(mode=0o700, exist_ok=True)
            if account is not None:
                os.chown(directory, account.pw_uid, account.pw_gid)
        if not (data / "PG_VERSION").exists():
            _initdb(bindir, data, log, account)
        options = [f"{name}={value}" for name, value in {**SETTINGS, **settings}.items()]
        for attempt in range(attempts):
            chosen = port or free_port(host)
            command = [str(bindir / "postgres"), "-D", str(data), "-h", host, "-p", str(chosen), "-k", str(sockets)]
            command += [arg for option in options for arg in ("-c", option)]
            offset = log.stat().st_size if log.exists() else 0
            with log.open("ab") as out:
                process = subprocess.Popen(
                    command,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=_child_env(),
                    cwd=data,
                    start_new_session=True,  # Ctrl-C goes to us; stop() shuts the server down
                    **_run_as(account),
                )
            server = PostgresServer(process, host, chosen, data, log, temporary)
            try:
                _wait_ready(server, offset)
                return server
            except BaseException as exc:  # Ctrl-C included: no server is left behind
                _terminate(process)
                taken = any(sign in _tail(log, offset) for sign in _PORT_TAKEN)
                if not isinstance(exc, SextantError) or port is not None or not taken or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")
    except BaseException:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
        raise



def postgres_missing() -> str | None:
    """Why a real PostgreSQL server cannot be started and used here, or ``None`` when it can."""
    if find_spec("psycopg") is None:
        return f"psycopg is not installed: {DRIVER}"
    try:
        find_binaries()
        server_account()
    except SextantError as exc:
        return f"{exc.message}. {exc.hint}"
    return None


def require_postgres() -> None:
    """Skip the calling test with :func:`postgres_missing`'s reason; fail instead where the
    environment sets ``SEXTANT_REQUIRE_POSTGRES=1``."""
    reason = postgres_missing()
    if reason is None:
        return
    if os.environ.get("SEXTANT_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"SEXTANT_REQUIRE_POSTGRES=1, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A started throwaway PostgreSQL server, stopped at the end of the test module."""
    require_postgres()
    with start_postgres(tmp_path_factory.mktemp("postgres")) as server:
        yield server
