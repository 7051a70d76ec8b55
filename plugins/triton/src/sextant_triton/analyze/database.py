"""Which database holds an analysis' measurements, opened so that every way it can be wrong is said.

- ``--storage`` (or ``storage:`` in the YAML) is checked before anything is deployed or started:
  a URL SQLAlchemy cannot read (``postgres://``, ``mongodb://``), a driver that is not installed
  (``postgresql://`` means psycopg2) and an SQLite file whose folder does not exist are each named
  with the forms that work (:data:`ACCEPTED`).
- A database that cannot be reached when the run opens it is named with the driver's reason.
- The default ``measurements.sqlite`` in the output folder, when it is not a database (a damaged
  or foreign file), is set aside as ``measurements.sqlite.unreadable`` (replacing an older one)
  and the run says so and measures again, as an unreadable ``status.json`` is handled. A file the
  user named with ``--storage`` is never moved: the error says what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sextant.api import SextantError, UsageError

from sextant_triton.analyze.store import Store, StoreError, driver_reason, shown

DEFAULT_FILE = "measurements.sqlite"
UNREADABLE = ".unreadable"
ACCEPTED = (
    "Accepted forms: sqlite:///relative/path.sqlite or sqlite:////absolute/path.sqlite (a file in a folder "
    "that exists), or postgresql+psycopg://USER[:PASSWORD]@HOST[:PORT]/DATABASE (psycopg 3: "
    "pip install 'sextant-triton[postgres]')."
)
#: misspellings with the URL scheme meant
_MEANT = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg", "psql": "postgresql+psycopg"}


def check_url(url: str) -> None:
    """Refuse a storage URL that cannot work, naming it and :data:`ACCEPTED`; connect to nothing."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UsageError(f"--storage {url!r} is not a database URL", hint=ACCEPTED) from None
    said = shown(url)
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        meant = _MEANT.get(parsed.drivername)
        raise UsageError(
            f"--storage {said}: {parsed.drivername}:// is not a database sextant can keep measurements in"
            + (f" (did you mean {meant}://?)" if meant else ""),
            hint=ACCEPTED,
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        meant = _MEANT.get(parsed.drivername) if "psycopg'" not in str(exc) else None
        raise UsageError(
            f"--storage {said}: its driver is not installed ({exc})"
            + (f"; for psycopg 3 write {meant}://" if meant else ""),
            hint=ACCEPTED,
        ) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).expanduser().absolute().parent
        if not folder.is_dir():
            raise UsageError(
                f"--storage {said}: the folder {folder} of that SQLite file does not exist",
                hint=f"Create the folder, or give another path. {ACCEPTED}",
            )


def open_store(storage: str | None, output: Path, log: Callable[[str], None] = lambda line: None) -> Store:
    """The store at ``storage``, or ``output/measurements.sqlite`` (set aside and made anew when it
    is not a database: ``log`` says so)."""
    if storage is not None:
        return _open(storage, None)
    path = output / DEFAULT_FILE
    try:
        return _open(f"sqlite:///{path}", path)
    except _NotADatabase as exc:
        aside = path.with_name(path.name + UNREADABLE)
        path.replace(aside)
        log(
            f"{path} is not a readable database ({exc.reason}): kept aside as {aside.name}; "
            "what it held is measured again"
        )
        return _open(f"sqlite:///{path}", path)


class _NotADatabase(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _open(url: str, default: Path | None) -> Store:
    import sqlalchemy as sa

    try:
        return Store(url)
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        check = (
            "Check that the file's folder exists and can be written to."
            if url.startswith("sqlite")
            else "Check that the server runs and that the URL's host, port, user and database are right."
        )
        raise StoreError(
            f"cannot open the measurements' database {shown(url)}: {driver_reason(exc)}", hint=f"{check} {ACCEPTED}"
        ) from exc
    except sa.exc.DatabaseError as exc:
        if default is not None:
            raise _NotADatabase(driver_reason(exc)) from exc
        raise SextantError(
            f"--storage {shown(url)} is not a database sextant can use: {driver_reason(exc)}",
            hint="sextant does not move a file you named: give --storage another file, or move this one away.",
        ) from exc
