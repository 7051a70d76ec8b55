"""One file for a package or a pipeline workspace: made here, loaded on another machine.

A bundle is a gzipped tar of the workspace's files (not its lock or temporaries) with
``bundle.json`` first: what it holds (a package or a pipeline), the sextant version that made it,
and the SHA-256 of every file. Opening a bundle extracts it once into sextant's cache folder
(``<cache>/bundles/<digest>/``, keyed by the bundle's own digest, so a second open reuses it),
checks every file against ``bundle.json`` and refuses anything else the archive holds. What the
files are trusted to do on load is unchanged: a candidate that loads by unpickling still needs
``trust_source=True``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sextant import __version__
from sextant.cache import cache_dir, file_sha256
from sextant.errors import PackageError, UsageError
from sextant.manifest import EXTRACTED, transient

INDEX = "bundle.json"
SCHEMA = 1
SUFFIX = ".sextant.tgz"


@dataclass(frozen=True)
class Bundled:
    """What :func:`bundle` wrote."""

    path: Path
    kind: str  # "package" or "pipeline"
    files: int
    size: int  # bytes of the bundle file


def bundle(workspace: Path | str, output: Path | str | None = None) -> Bundled:
    """Write ``workspace`` (a package or a pipeline workspace) into one file.

    :param output: the file to write; by default ``<workspace>.sextant.tgz`` beside the workspace.
    :raises UsageError: ``workspace`` is not a finished package or pipeline workspace, or a run is
        writing it now.
    """
    from sextant.optimizer.lock import holder

    folder = Path(workspace)
    kind = _kind(folder)
    running = holder(folder)
    if running is not None:
        raise UsageError(
            f"a run is writing {folder} now ({running.describe()})", hint="Bundle it when that run has finished."
        )
    target = Path(output) if output is not None else folder.with_name(folder.name + SUFFIX)
    if target.resolve().is_relative_to(folder.resolve()):
        raise UsageError(f"{target} is inside the workspace it bundles", hint="Write the bundle elsewhere.")
    files = {str(p): file_sha256(folder / p) for p in _files(folder)}
    index = json.dumps({"schema": SCHEMA, "kind": kind, "sextant": __version__, "files": files}, indent=1).encode()
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    try:
        with tarfile.open(temporary, "w:gz") as archive:
            entry = tarfile.TarInfo(INDEX)
            entry.size = len(index)
            archive.addfile(entry, io.BytesIO(index))
            for name in files:
                archive.add(folder / name, arcname=name, recursive=False)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return Bundled(target, kind, len(files), target.stat().st_size)


def opened(path: Path | str, into: Path | str | None = None) -> Path:
    """The workspace folder of ``path``: ``path`` itself when it is a folder, else the bundle
    extracted (once) under ``into`` or sextant's cache folder.

    :raises PackageError: the file is not a sextant bundle, or a file in it does not match its index.
    """
    path = Path(path)
    if not path.is_file():
        return path
    if not tarfile.is_tarfile(path):
        if _gzipped(path):
            raise _damaged(path, "its compressed data cannot be read")
        raise PackageError(
            f"{path} is a file but not a sextant bundle",
            hint="Give a package or pipeline folder, or a file written by `sextant bundle`.",
        )
    target = Path(into) if into is not None else cache_dir() / "bundles" / file_sha256(path)[:24]
    if (target / EXTRACTED).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".bundle-", dir=target.parent))
    try:
        _extract(path, staging)
        shutil.rmtree(target, ignore_errors=True)
        (staging / EXTRACTED).write_text(str(path.resolve()))
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _gzipped(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _damaged(path: Path, what: str) -> PackageError:
    return PackageError(
        f"{path} is a damaged bundle: {what} (a copy or download that did not finish?)",
        hint="Copy or download it again in full, or make it again from its workspace with `sextant bundle`.",
    )


def _extract(path: Path, folder: Path) -> None:
    """Extract and check; an archive that ends early or is corrupt is said to be damaged (a bare
    ``EOFError`` would even end a command as a Ctrl-C would: click takes it for one)."""
    import zlib

    try:
        _extract_archive(path, folder)
    except EOFError:
        raise _damaged(path, "it ends before its last file (truncated)") from None
    except (tarfile.TarError, zlib.error) as exc:
        raise _damaged(path, f"{type(exc).__name__}: {exc}") from None
    except OSError as exc:
        if exc.errno is not None:
            raise  # the file system it is read from or extracted to, not the bundle
        raise _damaged(path, f"{type(exc).__name__}: {exc}") from None  # gzip.BadGzipFile


def _extract_archive(path: Path, folder: Path) -> None:
    with tarfile.open(path, "r:gz") as archive:
        try:
            index = json.loads(archive.extractfile(INDEX).read())  # type: ignore[union-attr]
            files: dict[str, str] = dict(index["files"])
        except (KeyError, AttributeError, ValueError, TypeError) as exc:
            raise PackageError(
                f"{path} is not a sextant bundle: no readable {INDEX} in it ({exc})",
                hint="Make it with `sextant bundle WORKSPACE`.",
            ) from None
        if index.get("schema") != SCHEMA:
            raise PackageError(
                f"{path} is a bundle of schema {index.get('schema')}; this sextant reads schema {SCHEMA}",
                hint=f"Open it with the sextant that made it ({index.get('sextant', 'unknown version')}).",
            )
        members = [m for m in archive.getmembers() if m.name != INDEX]
        unknown = sorted(m.name for m in members if m.name not in files or not m.isfile())
        if unknown:
            raise PackageError(
                f"{path} holds {', '.join(unknown[:3])}{' ...' if len(unknown) > 3 else ''}, which its index does not list",
                hint="Only open bundles written by `sextant bundle`; make this one again from its workspace.",
            )
        archive.extractall(folder, members=members, filter="data")
    for name, digest in files.items():
        target = folder / PurePosixPath(name)
        if not target.is_file() or file_sha256(target) != digest:
            raise PackageError(
                f"{path}: {name} is {'missing' if not target.is_file() else 'not the file the bundle recorded'}",
                hint="The bundle was damaged or changed after it was made: make it again from its workspace.",
            )
    (folder / INDEX).write_text(json.dumps(index, indent=1))


def _kind(folder: Path) -> str:
    from sextant.pipelines.records import is_composite

    if is_composite(folder):
        return "pipeline"
    if (folder / "status.json").is_file():
        return "package"
    raise UsageError(
        f"{folder} is neither a package nor a pipeline workspace (no status.json or pipeline.json)",
        hint="Give the --workspace folder of a `sextant optimize` run, or of sextant.optimize_pipeline.",
    )


def _files(folder: Path) -> list[PurePosixPath]:
    """Every file to carry, workspace-relative: not locks, hidden files or temporaries."""
    out = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = PurePosixPath(path.relative_to(folder).as_posix())
        if not transient(relative) and str(relative) != INDEX:
            out.append(relative)
    return out


def describe(bundled: Bundled) -> dict[str, Any]:
    return {"bundle": str(bundled.path), "kind": bundled.kind, "files": bundled.files, "bytes": bundled.size}
