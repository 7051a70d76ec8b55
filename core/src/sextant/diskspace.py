"""Full disks: one clear message naming the file system, the path, and the space needed and free.

``ENOSPC`` ("No space left on device") and ``EDQUOT`` (quota exceeded) both mean the same to a user:
free some space on that file system or write somewhere else. The device is the mount that holds the
path, read from ``/proc/self/mounts`` where there is one.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sextant.errors import DiskFullError, UnwritableError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
#: a file system mounted read-only, or a folder this user may not write to
UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)
MB = 1024 * 1024


def no_space(exc: BaseException | None) -> OSError | None:
    """The "no space" ``OSError`` that ``exc`` is, or that caused it (a plugin may have wrapped it)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _existing(path: Path) -> Path:
    """``path``, or its nearest existing parent (what was being written may not exist yet)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def mount_of(path: Path) -> tuple[str, Path]:
    """(device, mount point) of the file system holding ``path`` (its nearest existing folder)."""
    path = _existing(path)
    best = ("", Path("/"))
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return best
    for line in lines:
        parts = line.split()
        if len(parts) < 2:
            continue
        mount = Path(parts[1].replace("\\040", " "))
        if (path == mount or mount in path.parents) and len(mount.parts) >= len(best[1].parts):
            best = (parts[0], mount)
    return best


def free_mb(path: Path) -> float | None:
    """Free space for this user on the file system holding ``path``, in MB."""
    try:
        return shutil.disk_usage(_existing(path)).free / MB
    except OSError:
        return None


def size_mb(path: Path) -> float:
    """Bytes under ``path`` (a file or a folder), in MB; 0 when it is gone."""
    if path.is_file():
        return path.stat().st_size / MB
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total / MB


def describe(path: Path, needed_mb: float | None = None, what: str = "") -> str:
    """``no space left on DEVICE (mounted at M) writing PATH: N MB needed, F MB free``."""
    device, mount = mount_of(path)
    where = f"{device} (mounted at {mount})" if device else str(mount)
    free = free_mb(path)
    amounts = []
    if needed_mb is not None:
        amounts.append(f"at least {needed_mb:.1f} MB needed")
    if free is not None:
        amounts.append(f"{free:.1f} MB free")
    text = f"no space left on {where} writing {what or path}"
    return f"{text}: {', '.join(amounts)}" if amounts else text


HINT = "Free some space on that file system, or pass --workspace on another one; finished results are kept."


@contextmanager
def guarded(path: Path, *, temporary: Path | None = None, what: str = "") -> Iterator[None]:
    """Turn a "no space" error while writing ``path`` into :class:`DiskFullError`; whatever the error,
    ``temporary`` (a file or folder being written in its place) is removed."""
    try:
        yield
    except BaseException as exc:
        needed = size_mb(temporary) if temporary is not None and temporary.exists() else None
        if temporary is not None:
            _remove(temporary)
        full = no_space(exc)
        if full is None:
            if isinstance(exc, OSError) and exc.errno in UNWRITABLE:
                raise unwritable(exc, path) from exc
            raise
        raise DiskFullError(describe(path, needed or None, what), hint=HINT) from exc


def unwritable(exc: OSError, path: Path) -> UnwritableError:
    """``cannot write PATH: Read-only file system``, with what to do."""
    where = exc.filename or path
    return UnwritableError(
        f"cannot write {where}: {exc.strerror or os.strerror(exc.errno or 0)}",
        hint="sextant writes its results into the --workspace folder (by default ./sextant-workspace/<model>): "
        "give one on a writable file system, or make this one writable; nothing finished is lost.",
    )


@contextmanager
def writable(path: Path) -> Iterator[None]:
    """Turn "read-only file system" and "permission denied" while writing ``path`` into
    :class:`UnwritableError` (see :func:`guarded` for writes that make a file)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in UNWRITABLE:
            raise
        raise unwritable(exc, path) from exc


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
