"""The package's manifest: the SHA-256 of every file a run wrote, checked before a candidate loads.

A package can travel (copied, mailed, downloaded), and some of its files run code when loaded. The
manifest lets a loader tell that the files a candidate needs are the ones the run wrote: a file that
changed, disappeared or was added since is refused, naming it.

The hashes live in their own ``manifest.json`` beside ``status.json``, not in a section of it:
``status.json`` is rewritten by the ledger after every step and is itself one of the files checked
(a candidate's record says which file, which runner and which options load it), so it cannot hold
its own hash. The manifest is written once, last: when a run finishes (after pruning and the
report) and when it is interrupted. Files whose name starts with ``.`` (the workspace lock,
temporaries) and ``*.tmp`` leftovers are not recorded.

The manifest guards against changes after the run, not against whoever wrote the package: a
package from someone else is as trustworthy as its author. That is why loading pickled contents
needs an explicit opt-in as well (see :meth:`sextant.package.CandidateView.load`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from sextant.cache import file_sha256
from sextant.errors import PackageError

MANIFEST = "manifest.json"
SCHEMA = 1
STATUS = "status.json"  # as in sextant.package (which imports this module)

_RERUN = (
    "Run the same `sextant optimize` command again: it checks each file it would reuse against the hash "
    "recorded when it was written, and builds again what changed (--fresh builds everything again)."
)
_FRESH = (
    "status.json records what every other file should be, so it cannot vouch for itself: run the same "
    "`sextant optimize` command with --fresh (or delete the folder) to build the package again."
)


#: written last into a folder extracted from a bundle (``sextant.bundle.opened``), holding the bundle's
#: path: a folder without it (a half extraction) is extracted again
EXTRACTED = ".complete"


def transient(relative: PurePosixPath) -> bool:
    """Whether a workspace-relative path is a lock, a hidden file or a temporary: never part of a package."""
    return any(p.startswith(".") or p.endswith(".tmp") for p in relative.parts)


def extracted_from(folder: Path) -> str | None:
    """The bundle a folder was extracted from (``None``: not an extracted copy)."""
    try:
        return (Path(folder) / EXTRACTED).read_text() or "a bundle"
    except OSError:
        return None


def _recorded(relative: PurePosixPath) -> bool:
    """Whether a file belongs in the manifest (not the manifest itself, locks or temporaries)."""
    return str(relative) != MANIFEST and not transient(relative)


def _files(folder: Path, under: PurePosixPath | None = None) -> Iterator[PurePosixPath]:
    """The recorded files of ``folder`` (or of its subfolder or file ``under``), package-relative."""
    root = folder / under if under is not None else folder
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for path in paths:
        relative = PurePosixPath(path.relative_to(folder).as_posix())
        if _recorded(relative):
            yield relative


@dataclass(frozen=True)
class Manifest:
    """``files``: package-relative POSIX path → SHA-256 hex digest of its bytes."""

    files: Mapping[str, str]
    written: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "algorithm": "sha256", "written": self.written, "files": dict(self.files)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Manifest:
        return cls(dict(data["files"]), data.get("written", ""))


def write_manifest(folder: Path) -> Manifest:
    """Hash every recorded file of the package ``folder`` and write ``manifest.json`` atomically."""
    from sextant.atomic import write_json

    files = {str(relative): file_sha256(folder / relative) for relative in _files(folder)}
    manifest = Manifest(files, datetime.now(timezone.utc).isoformat(timespec="seconds"))
    write_json(folder / MANIFEST, manifest.to_json())
    return manifest


def read_manifest(folder: Path) -> Manifest | None:
    """The package's manifest, or ``None`` when it has none (written before sextant recorded one)."""
    import json

    path = folder / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("schema") != SCHEMA or data.get("algorithm") != "sha256":
            raise ValueError(f"schema {data.get('schema')!r}, algorithm {data.get('algorithm')!r}")
        return Manifest.from_json(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PackageError(f"{path} is not a manifest this sextant reads: {exc}", hint=_RERUN) from exc


def changed_since_sealed(folder: Path, groups: Iterable[str]) -> list[str]:
    """Files under ``groups`` (package-relative folders) that changed since the last run sealed
    the package: they differ from its manifest while ``status.json`` is still the one the manifest
    recorded (so no run wrote anything since; a run killed before sealing leaves nothing to compare
    with, and then nothing is reported). A run reuses none of them: a manifest must never record
    as the run's own a file someone else changed."""
    try:
        manifest = read_manifest(folder)
    except PackageError:
        return []
    status = folder / STATUS
    if manifest is None or not status.is_file() or manifest.files.get(STATUS) != file_sha256(status):
        return []
    changed = []
    for group in groups:
        prefix = f"{group}/"
        for name, digest in manifest.files.items():
            path = folder / name
            if name.startswith(prefix) and path.is_file() and file_sha256(path) != digest:
                changed.append(name)
    return sorted(changed)


def needed_files(folder: Path, artifact: str) -> list[PurePosixPath]:
    """What loading the candidate whose artifact is ``artifact`` reads: ``status.json`` and the
    artifact's whole folder (``source/``, or ``artifacts/<step>/``: files beside an artifact, such
    as external weights or pickled custom classes, are read too). An artifact outside the package
    is refused."""
    relative = PurePosixPath(artifact)
    inside = (folder / artifact).resolve()
    if relative.is_absolute() or ".." in relative.parts or not inside.is_relative_to(folder.resolve()):
        raise PackageError(
            f"a candidate's artifact {artifact!r} points outside the package {folder}",
            hint="A package only refers to files inside it; this one's status.json was edited. " + _FRESH,
        )
    parts = relative.parts
    group = PurePosixPath(*parts[:2]) if parts[0] == "artifacts" else PurePosixPath(parts[0])
    return [PurePosixPath(STATUS), group]


def verify(folder: Path, manifest: Manifest, paths: Iterable[PurePosixPath]) -> None:
    """Raise :class:`PackageError` naming the first file under ``paths`` that differs from the
    manifest: changed, missing, or added since the package was written."""
    for under in paths:
        prefix = f"{under}/"
        recorded = {name for name in manifest.files if name == str(under) or name.startswith(prefix)}
        present = {str(p) for p in _files(folder, under)} if (folder / under).exists() else set()
        problems = [(n, "was added") for n in sorted(present - recorded)]
        problems += [(n, "is missing") for n in sorted(recorded - present)]
        problems += [(n, "changed") for n in sorted(present & recorded) if file_sha256(folder / n) != manifest.files[n]]
        if problems:
            name, what = problems[0]
            more = f" (and {len(problems) - 1} other file(s) under {under})" if len(problems) > 1 else ""
            raise PackageError(
                f"{folder / name} {what} since the package was written{more}; sextant refuses to load "
                "files that differ from its manifest.json",
                hint=_changed_hint(folder, name),
            )


def _changed_hint(folder: Path, name: str) -> str:
    """What to do about a changed file: in sextant's extracted copy of a bundle, drop the copy;
    in a workspace, restore the file or run again (with ``--fresh`` when status.json changed)."""
    import shlex

    origin = extracted_from(folder)
    if origin is not None:
        return (
            f"{folder} is sextant's extracted copy of the bundle {origin}, changed since it was extracted. "
            f"Delete that folder (rm -r {shlex.quote(str(folder))}) and open the bundle again: it is extracted "
            "afresh and checked against the bundle's own hashes."
        )
    return (
        f"Restore the package as it was written, or: {_FRESH if name == STATUS else _RERUN} "
        "If a run in it was interrupted or still runs, let it finish first."
    )
