"""How every run (single-model or text generation) begins and ends in its workspace: what an
earlier run recorded, the report, the manifest that seals the package, and the error when nothing
could be selected."""

from __future__ import annotations

import contextlib

from sextant.errors import CorrectnessError, NothingRunnableError, PackageError, SextantError
from sextant.manifest import MANIFEST, write_manifest
from sextant.optimizer.events import Noted
from sextant.optimizer.ledger import Ledger
from sextant.optimizer.workspace import Workspace
from sextant.package import STATUS, Earlier, read_earlier
from sextant.records import Status


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
