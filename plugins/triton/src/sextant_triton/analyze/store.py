"""Every measurement an analysis made, in a database: the checkpoint that makes a run resumable
and ``--rerank`` free, and the ledger that lets several workers share one search.

A measurement is keyed by the unit's model content, the configurations loaded, the client load and
the hardware. The store is any SQLAlchemy URL: a SQLite file in the output folder by default, a
PostgreSQL database for workers on several machines. Before measuring, a worker *claims* the key
(an insert that only one worker can win); another worker that wants the same key waits for that
result instead of measuring it again. Claims of a run that stopped are released when it stops
(Ctrl-C included), and a claim older than ``stale_s`` (a worker that died) can be taken over.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sextant.api import digest

Metrics = dict[str, float]


@dataclass(frozen=True)
class Record:
    """One stored measurement: the point, its metrics (``None``: it failed, ``error`` says why)."""

    point: dict[str, Any]
    metrics: Metrics | None
    error: str | None
    measured: float


class Store:
    """Measurements of one analysis (``unit``: what was measured, ``hardware``: where)."""

    def __init__(
        self,
        url: str,
        *,
        stale_s: float = 1800.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import sqlalchemy as sa

        self.sa = sa
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
        )
        for attempt in range(3):  # workers starting together race to create the table: losers retry
            try:
                meta.create_all(self.engine)
                break
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
                if attempt == 2:
                    raise
        self.owner = uuid.uuid4().hex
        self.stale_s, self.clock, self.sleep = stale_s, clock, sleep

    @staticmethod
    def key(unit: str, point: Mapping[str, Any], hardware: str) -> str:
        return digest({"unit": unit, "point": dict(point), "hardware": hardware})

    def _row(self, key: str) -> Any:
        with self.engine.connect() as db:
            return db.execute(self.sa.select(self.table).where(self.table.c.key == key)).first()

    def get(self, unit: str, point: Mapping[str, Any], hardware: str) -> Record | None:
        """The finished measurement of ``point``, or ``None`` if there is none yet."""
        row = self._row(self.key(unit, point, hardware))
        return None if row is None or not row.done else _record(row)

    def claim(self, unit: str, point: Mapping[str, Any], hardware: str) -> bool:
        """Whether this worker may measure ``point`` now (no other worker has it, or its claim is stale)."""
        key, now = self.key(unit, point, hardware), self.clock()
        values = {
            "key": key,
            "unit": unit,
            "hardware": hardware,
            "point": json.dumps(dict(point), sort_keys=True),
            "done": False,
            "owner": self.owner,
            "claimed": now,
        }
        try:
            with self.engine.begin() as db:
                db.execute(self.table.insert().values(**values))
            return True
        except self.sa.exc.IntegrityError:
            pass
        with self.engine.begin() as db:  # take over a stale claim, atomically: only one update can match
            taken = db.execute(
                self.table.update()
                .where(self.table.c.key == key, self.table.c.done.is_(False), self.table.c.claimed < now - self.stale_s)
                .values(owner=self.owner, claimed=now)
            )
            return taken.rowcount == 1

    def wait(
        self, unit: str, point: Mapping[str, Any], hardware: str, polls: int = 6000, pause_s: float = 0.2
    ) -> Record | None:
        """Another worker's measurement of ``point``, once it is done (``None`` if its claim was
        released or ``polls`` ran out: then measure it here)."""
        key = self.key(unit, point, hardware)
        for _ in range(polls):
            row = self._row(key)
            if row is None:
                return None
            if row.done:
                return _record(row)
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
            "measured": self.clock(),
        }
        with self.engine.begin() as db:
            updated = db.execute(self.table.update().where(self.table.c.key == key).values(**values)).rowcount
            if not updated:
                db.execute(
                    self.table.insert().values(
                        key=key, unit=unit, hardware=hardware, point=json.dumps(dict(point), sort_keys=True), **values
                    )
                )

    def release(self) -> None:
        """Drop this worker's unfinished claims (the run stops; another may measure them)."""
        with self.engine.begin() as db:
            db.execute(self.table.delete().where(self.table.c.owner == self.owner, self.table.c.done.is_(False)))

    def forget(self, unit: str, point: Mapping[str, Any], hardware: str) -> None:
        """Drop a failed measurement so that it is measured again (a server that died)."""
        with self.engine.begin() as db:
            db.execute(self.table.delete().where(self.table.c.key == self.key(unit, point, hardware)))

    def all(self, unit: str, hardware: str) -> list[Record]:
        """Every finished measurement of ``unit`` on ``hardware``, oldest first."""
        t = self.table
        with self.engine.connect() as db:
            rows = db.execute(
                self.sa.select(t)
                .where(t.c.unit == unit, t.c.hardware == hardware, t.c.done.is_(True))
                .order_by(t.c.measured)
            ).all()
        return [_record(r) for r in rows]

    def close(self) -> None:
        self.engine.dispose()


def _record(row: Any) -> Record:
    return Record(
        json.loads(row.point), None if row.metrics is None else json.loads(row.metrics), row.error, row.measured or 0.0
    )
