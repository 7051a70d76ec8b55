"""Every measurement an analysis made, in a database: the checkpoint that makes a run resumable
and ``--rerank`` free, and the ledger that lets several workers share one search.

A measurement is keyed by the unit's model content, the configurations loaded, the client load and
the hardware. The store is any SQLAlchemy URL: a SQLite file in the output folder by default, a
PostgreSQL database for workers on several machines. Before measuring, a worker *claims* the key
(an insert that only one worker can win); another worker that wants the same key waits for that
result instead of measuring it again, but never past its budget (``give_up``).

A claim names its owner: the worker, its PID and its host. Claims of a run that stops are released
when it stops (Ctrl-C, SIGTERM, SIGHUP). What a run that died leaves (``kill -9``, the OOM killer)
is taken over at once when its owner was on this host and its process is gone, as a workspace's
lock is; a claim from another host is taken over once it is older than ``stale_s``.

A database that stops answering (a PostgreSQL server stopped, a network gone) raises
:class:`StoreError`: every measurement already stored stays there, and the same command resumes
from them once it answers again.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sextant.api import Record, SextantError, digest

Metrics = dict[str, float]

#: the owners of the stores open in this process (a claim by this PID with another owner is left over)
_OPEN: set[str] = set()


class StoreError(SextantError):
    """The measurements' database failed or stopped answering; what it stored is kept."""


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


class Store:
    """Measurements of one analysis (``unit``: what was measured, ``hardware``: where): the core's
    ``sextant.api.Store``, with its ``Claims`` (several workers share one search)."""

    def __init__(
        self,
        url: str,
        *,
        stale_s: float = 1800.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import sqlalchemy as sa

        self.sa, self.url = sa, url
        self.engine = sa.create_engine(url, future=True)
        meta = sa.MetaData()
        self.table = sa.Table(
            "sextant_measurements",
            meta,
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("unit", sa.Text, nullable=False),
            sa.Column("hardware", sa.Text, nullable=False),
            sa.Column("point", sa.Text, nullable=False),
            sa.Column("metrics", sa.Text),
            sa.Column("error", sa.Text),
            sa.Column("done", sa.Boolean, nullable=False, default=False),
            sa.Column("owner", sa.String(32)),
            sa.Column("claimed", sa.Float),
            sa.Column("measured", sa.Float),
            sa.Column("pid", sa.Integer),  # the owner's process and host (added to older tables)
            sa.Column("host", sa.String(255)),
        )
        for attempt in range(3):  # workers starting together race to create the table: losers retry
            try:
                meta.create_all(self.engine)
                break
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
                if attempt == 2:
                    raise
        self._add_columns()
        self.owner, self.pid, self.host = uuid.uuid4().hex, os.getpid(), socket.gethostname()
        self.stale_s, self.clock, self.sleep = stale_s, clock, sleep
        self.took_over: list[str] = []  # the claims of gone workers this one took over, described
        _OPEN.add(self.owner)

    def _add_columns(self) -> None:
        """Add the columns a table made by an older version lacks (another worker may add them first)."""
        sa = self.sa
        for column in self.table.columns:
            present = {c["name"] for c in sa.inspect(self.engine).get_columns(self.table.name)}
            if column.name in present:
                continue
            kind = column.type.compile(self.engine.dialect)
            try:
                with self.engine.begin() as db:
                    db.execute(sa.text(f"ALTER TABLE {self.table.name} ADD COLUMN {column.name} {kind}"))
            except (sa.exc.OperationalError, sa.exc.ProgrammingError):
                if column.name not in {c["name"] for c in sa.inspect(self.engine).get_columns(self.table.name)}:
                    raise

    @contextmanager
    def _answering(self) -> Iterator[None]:
        """Turn the database failing under a call into a :class:`StoreError` that says what is kept."""
        sa = self.sa
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise stopped_answering(self.url, exc) from exc
        except sa.exc.IntegrityError:
            raise
        except sa.exc.DatabaseError as exc:
            raise StoreError(
                f"the measurements' database {shown(self.url)} failed: {driver_reason(exc)}",
                hint="Check the database; the same command resumes from what it holds.",
            ) from exc

    @contextmanager
    def _db(self, write: bool = False) -> Iterator[Any]:
        with self._answering(), (self.engine.begin() if write else self.engine.connect()) as db:
            yield db

    @staticmethod
    def key(unit: str, point: Mapping[str, Any], hardware: str) -> str:
        return digest({"unit": unit, "point": dict(point), "hardware": hardware})

    def _row(self, key: str) -> Any:
        with self._db() as db:
            return db.execute(self.sa.select(self.table).where(self.table.c.key == key)).first()

    def get(self, unit: str, point: Mapping[str, Any], hardware: str) -> Record | None:
        """The finished measurement of ``point``, or ``None`` if there is none yet."""
        row = self._row(self.key(unit, point, hardware))
        return None if row is None or not row.done else _record(row)

    def gone(self, row: Any) -> bool:
        """Whether the owner of claim ``row`` has died: on this host, its process is gone (or it
        is this process, whose store of that owner was closed)."""
        if row.host != self.host or row.pid is None:
            return False
        return row.owner not in _OPEN if row.pid == os.getpid() else not alive(row.pid)

    def claim(self, unit: str, point: Mapping[str, Any], hardware: str) -> bool:
        """Whether this worker may measure ``point`` now: no other worker has it, or its owner is
        gone (:meth:`gone`), or its claim is older than ``stale_s``."""
        key, now = self.key(unit, point, hardware), self.clock()
        mine = {"owner": self.owner, "pid": self.pid, "host": self.host, "claimed": now}
        values = {
            "key": key,
            "unit": unit,
            "hardware": hardware,
            "point": json.dumps(dict(point), sort_keys=True),
            "done": False,
            **mine,
        }
        try:
            with self._db(write=True) as db:
                db.execute(self.table.insert().values(**values))
            return True
        except self.sa.exc.IntegrityError:
            pass
        row = self._row(key)
        if row is None or row.done:  # released meanwhile, or done: the caller waits (and finds it)
            return False
        dead = self.gone(row)
        if not dead and not (row.claimed or 0) < now - self.stale_s:
            return False
        t = self.table
        with self._db(write=True) as db:  # take it over atomically: only one update can match its owner
            taken = db.execute(
                t.update().where(t.c.key == key, t.c.done.is_(False), t.c.owner == row.owner).values(**mine)
            )
        if taken.rowcount == 1:
            whose = f"process {row.pid} on {row.host}" if row.pid is not None else "a worker"
            self.took_over.append(
                f"took over the claim on {row.point} of {whose}, "
                + ("which is gone" if dead else f"made {now - (row.claimed or 0):.0f} s before")
            )
        return taken.rowcount == 1

    def holder(self, unit: str, point: Mapping[str, Any], hardware: str) -> str:
        """Who holds the claim on ``point`` now, in words."""
        row = self._row(self.key(unit, point, hardware))
        if row is None or row.done or row.pid is None:
            return "another worker"
        return f"process {row.pid} on {row.host}"

    def wait(
        self,
        unit: str,
        point: Mapping[str, Any],
        hardware: str,
        *,
        give_up: Callable[[], bool] = lambda: False,
        polls: int = 6000,
        pause_s: float = 0.2,
    ) -> Record | None:
        """Another worker's measurement of ``point``, once it is done (``None`` if its claim was
        released, its owner is gone, ``give_up()`` says so or ``polls`` ran out: then the caller
        claims it again, or stops)."""
        key = self.key(unit, point, hardware)
        for _ in range(polls):
            row = self._row(key)
            if row is None:
                return None
            if row.done:
                return _record(row)
            if self.gone(row) or give_up():
                return None
            self.sleep(pause_s)
        return None

    def put(
        self, unit: str, point: Mapping[str, Any], hardware: str, metrics: Metrics | None, error: str | None = None
    ) -> None:
        key = self.key(unit, point, hardware)
        values = {
            "metrics": None if metrics is None else json.dumps(metrics),
            "error": error,
            "done": True,
            "owner": self.owner,
            "pid": self.pid,
            "host": self.host,
            "measured": self.clock(),
        }
        with self._db(write=True) as db:
            updated = db.execute(self.table.update().where(self.table.c.key == key).values(**values)).rowcount
            if not updated:
                db.execute(
                    self.table.insert().values(
                        key=key, unit=unit, hardware=hardware, point=json.dumps(dict(point), sort_keys=True), **values
                    )
                )

    def release(self) -> None:
        """Drop this worker's unfinished claims (the run stops; another may measure them). Where
        the database no longer answers they stay, and are taken over as a gone worker's."""
        try:
            with self._db(write=True) as db:
                db.execute(self.table.delete().where(self.table.c.owner == self.owner, self.table.c.done.is_(False)))
        except StoreError:
            pass

    def all(self, unit: str, hardware: str) -> list[Record]:
        """Every finished measurement of ``unit`` on ``hardware``, oldest first."""
        t = self.table
        with self._db() as db:
            rows = db.execute(
                self.sa.select(t)
                .where(t.c.unit == unit, t.c.hardware == hardware, t.c.done.is_(True))
                .order_by(t.c.measured)
            ).all()
        return [_record(r) for r in rows]

    def close(self) -> None:
        _OPEN.discard(self.owner)
        self.engine.dispose()


def stopped_answering(url: str, exc: BaseException) -> StoreError:
    """The error for a database at ``url`` that stopped answering (``exc``: the driver's error)."""
    return StoreError(
        f"the measurements' database {shown(url)} stopped answering: {driver_reason(exc)}",
        hint="Every measurement it stored is kept there. Once it answers again, run the same command: "
        "it resumes from them.",
    )


def connection_lost(exc: BaseException) -> BaseException | None:
    """SQLAlchemy's connection error behind ``exc`` (a library such as Optuna wraps it in its own
    error, or raises it as it is), or ``None``."""
    import sqlalchemy as sa

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (sa.exc.OperationalError, sa.exc.InterfaceError)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def shown(url: str) -> str:
    """``url`` as it may be printed: its password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL: say it as given
        return url


def driver_reason(exc: BaseException) -> str:
    """The driver's own message, on one line."""
    original = getattr(exc, "orig", None) or exc
    text = " ".join(str(original).split())
    return text[:300] or type(original).__name__


def _record(row: Any) -> Record:
    return Record(
        json.loads(row.point), None if row.metrics is None else json.loads(row.metrics), row.error, row.measured or 0.0
    )
