"""How every run (single-model or text generation) begins and ends in its workspace: what an
earlier run recorded, the report, the manifest that seals the package, and the error when nothing
could be selected."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sextant import __version__
from sextant.devices import busy_reason, host_record
from sextant.errors import CorrectnessError, NothingRunnableError, PackageError, SextantError
from sextant.manifest import MANIFEST, write_manifest
from sextant.optimizer.events import Noted
from sextant.optimizer.ledger import Ledger
from sextant.optimizer.workspace import Workspace
from sextant.package import STATUS, Earlier, read_earlier
from sextant.records import Status

if TYPE_CHECKING:
    from sextant.optimizer.events import EventHandler
    from sextant.optimizer.lock import WorkspaceLock
    from sextant.options import OptimizeOptions
    from sextant.specs import SourceModel


def seal(ledger: Ledger, workspace: Workspace) -> None:
    """``manifest.json``, last of all: the hash of every file the run wrote, which loading a
    candidate checks (see :mod:`sextant.manifest`). One that cannot be written is a note, never the
    run's failure (nor one that hides the error of an interrupted run); the package then has none."""
    try:
        write_manifest(workspace.path)
    except (OSError, SextantError) as exc:
        with contextlib.suppress(OSError, SextantError):
            (workspace.path / MANIFEST).unlink(missing_ok=True)
            ledger.note(f"{MANIFEST} was not written ({exc}); loading a candidate will need trust_source")
            ledger.save()


def write_report(ledger: Ledger, workspace: Workspace) -> None:
    """``report.html`` in the package (it says why, when nothing was selected). A report that
    cannot be written is a note, never the run's failure, and leaves no stale page behind."""
    from sextant.htmlreport import REPORT, missing_reason
    from sextant.htmlreport import write_report as write_page

    try:
        write_page(workspace.path)
    except Exception as exc:  # noqa: BLE001 - whatever broke the page, the run's results stand
        with contextlib.suppress(OSError):
            (workspace.path / REPORT).unlink(missing_ok=True)
        ledger.note(f"{REPORT} was not written: {type(exc).__name__}: {exc}")
        ledger.save()
        return
    missing = missing_reason()
    if missing:
        ledger.emit(Noted(f"{REPORT} has tables but no plots: {missing}"))


def open_ledger(
    workspace: Workspace,
    source: SourceModel,
    written: Path,
    options: OptimizeOptions,
    threads: int,
    previous: Earlier | None,
    emit: EventHandler,
    lock: WorkspaceLock,
    notes: Iterable[str | None] = (),
    *,
    model: Mapping[str, Any] | None = None,
    **header: Any,
) -> Ledger:
    """The run's ledger, with the header every run records (the version, the model and ``model``'s
    further entries, the options, the host, the start, and ``header``) and the notes every run starts
    with: a workspace taken over, ``notes`` (what the caller found of the earlier run), records of
    the earlier run that did not parse, a busy machine, the source's own notes."""
    ledger = Ledger(
        workspace.path,
        {
            "sextant": __version__,
            "model": {
                "name": source.name,
                "format": source.format.name,
                "source": workspace.relative(written),
                **(model or {}),
            },
            "options": options.to_record(),
            "host": host_record(threads, options.devices()),
            "run": {"started": datetime.now(timezone.utc).isoformat(timespec="seconds")},
            **header,
        },
        previous,
        emit,
    )
    if lock.took_over is not None:
        ledger.note(f"took over the workspace from {lock.took_over.describe()}, which is no longer running")
    host = ledger.header.host
    busy = busy_reason(host.load_1min, host.cores) if host else None
    for note in (*notes, ledger.unreadable_note(), busy, *source.notes):
        if note:
            ledger.note(note)
    return ledger


def previous_status(workspace: Workspace, fresh: bool) -> tuple[Earlier | None, str | None]:
    """What an earlier run recorded in this workspace (nothing with ``--fresh``), and a note when
    its ``status.json`` could not be read: that file is kept aside, and everything is redone."""
    path = workspace.path / STATUS
    if fresh or not path.exists():
        return None, None
    try:
        return read_earlier(workspace.path), None
    except PackageError as exc:
        kept = path.with_name(f"{STATUS}.unreadable")
        path.replace(kept)
        return (
            None,
            f"the earlier run's {STATUS} could not be read ({exc.message}); it was kept as {kept.name} and every step is redone",
        )


def raise_if_nothing_selected(ledger: Ledger, workspace: Workspace) -> None:
    """A run that selected nothing ends in an error: a correctness one when every candidate that
    ran was judged wrong."""
    selection = ledger.header.selection
    if selection is None or selection.best is not None:
        return
    competing = set(ledger.candidates) - set(ledger.header.reference_only or ())
    ran = [
        r for c, r in ledger.candidates.items() if c in competing and (r.status == Status.OK or r.status.judged_wrong)
    ]
    if ran and all(r.status.judged_wrong for r in ran):
        raise CorrectnessError(
            "every candidate that ran failed correctness: " + (selection.reason or ""),
            hint=f"See `sextant inspect {workspace.path}`; loosen --atol/--rtol only if the errors are acceptable.",
        )
    raise NothingRunnableError(
        f"no candidate could be selected: {selection.reason}",
        hint=f"See `sextant inspect {workspace.path}` and the logs in {workspace.path / 'logs'}.",
    )
