"""Content keys for steps and measurements.

A key hashes everything a result depends on: the input's key (the source's bytes at the root), the
contribution and the version of the plugin that made it, a fingerprint of that plugin's installed
source files (:func:`code_fingerprint`: an edited editable install keeps its version), its options,
and the versions of the libraries it needs. Equal keys mean the recorded result can be reused; one
changed option changes the keys of exactly the steps downstream of it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def digest(data: Any) -> str:
    """SHA-256 of a JSON-able value (keys sorted)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def hash_path(path: Path) -> str:
    """SHA-256 over a file, or over every file of a folder (names and bytes, in sorted order)."""
    sha = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        sha.update(str(file.relative_to(path.parent if path.is_file() else path)).encode())
        _feed(sha, file)
    return sha.hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of one file's bytes."""
    sha = hashlib.sha256()
    _feed(sha, path)
    return sha.hexdigest()


def _feed(sha: Any, file: Path) -> None:
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)


@functools.cache
def _module_distributions() -> dict[str, list[str]]:
    """Top-level module -> the distributions that provide it, as
    ``importlib.metadata.packages_distributions()`` says. That reads every installed distribution's
    file list (most of a second with torch's environment, in every run, a cached re-run's largest
    cost after importing torch), so its answer is kept in the cache folder under a key of what is
    installed: each metadata folder on ``sys.path`` (a distribution's name and version) and when it
    was written. Installing, removing or reinstalling anything changes the key."""
    from sextant.atomic import write_json

    path = None
    try:
        path = cache_dir() / "distributions" / f"{digest(_installed_metadata())}.json"
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    mapping = importlib.metadata.packages_distributions()
    if path is not None:
        with contextlib.suppress(OSError):  # a read-only cache folder: computed again next time
            path.parent.mkdir(exist_ok=True)
            write_json(path, mapping)
    return mapping


def _installed_metadata() -> list[tuple[str, str, int]]:
    """The installed distributions' metadata folders on ``sys.path``: (where, name, mtime)."""
    import os
    import sys

    found = []
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as items:
                for item in items:
                    if item.name.endswith((".dist-info", ".egg-info")):
                        found.append((entry, item.name, item.stat().st_mtime_ns))
        except OSError:
            continue
    return sorted(found)


def library_versions(modules: Iterable[str]) -> dict[str, str]:
    """Installed versions of the distributions that provide ``modules``."""
    return dict(_library_versions(tuple(modules)))


@functools.cache
def _library_versions(modules: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Read once per process: package metadata lookups are slow, and versions do not change mid-run."""
    versions = {}
    for module in modules:
        top = module.split(".", 1)[0]
        for dist in _module_distributions().get(top, [top]):
            try:
                versions[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                versions[dist] = "absent"
    return tuple(versions.items())


def code_fingerprint(ref: str) -> str:
    """A fingerprint of the installed source of the package that holds ``ref`` (``"pkg.mod:attr"``,
    a spec's ``run`` or ``load``): the relative path, size and modification time of each of its
    files. It changes when a file of an editable install is edited (the version does not), and it
    costs a ``stat`` per file: nothing is imported or read. ``"unknown"`` when it cannot be found.
    """
    import importlib.util
    import os

    top = ref.partition(":")[0].split(".", 1)[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return "unknown"
    roots = list(spec.submodule_search_locations or ([spec.origin] if spec.origin else []))
    entries = []
    for root in roots:
        paths = [root] if os.path.isfile(root) else _source_files(root)
        for path in paths:
            try:
                info = os.stat(path)
            except OSError:
                continue
            entries.append((os.path.relpath(path, os.path.dirname(root)), info.st_size, info.st_mtime_ns))
    return digest(sorted(entries))


def _source_files(root: str) -> list[str]:
    """Every file under ``root`` but compiled bytecode."""
    import os

    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        out.extend(os.path.join(folder, f) for f in files if not f.endswith((".pyc", ".pyo")))
    return out


def cache_dir() -> Path:
    """sextant's cache folder shared between runs (``$SEXTANT_CACHE_DIR``, else ``~/.cache/sextant``)."""
    import os

    root = os.environ.get("SEXTANT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sextant"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
