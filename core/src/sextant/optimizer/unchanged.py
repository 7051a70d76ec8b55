"""A re-run that loads nothing: when nothing the workspace's package depends on has changed since
the run that wrote it, that package is the answer.

A re-run of the same command would load the model (importing its framework: 1.2 s of the MLP's
2.9 s cached re-run on a 2-core EPYC) only to find every step and measurement cached. What the
package depends on, recorded in ``loaded.json`` by the run that wrote it:

- **what loading read**: every file Python opened or imported while the MODEL and ``--samples``
  arguments were loaded, outside the interpreter's own library, and every file in the folders
  those are in (a weights file that native code reads beside the configuration Python read; a
  folder MODEL is stamped whole; a folder of over :data:`SIBLINGS` files by its own modification
  time). Each by size and modification time, as make and git do;
- **the command**: the arguments as given, the working folder, the options (``status.json``);
- **the installation**: the installed distributions, the code of sextant and its plugins, the
  interpreter; **the machine**: the host record but its load;
- **the package**: its run complete, nothing planned left unmeasured nor failed for the
  machine's reasons (a re-run tries those again), a selection, sealed.

A load that connects to the network or starts a process records nothing: what it got is not a
file. What a load reads outside all that (an environment variable, a file native code opens in
another folder, unseeded random weights) is not seen; ``--reload`` loads the model again and
measures only what changed.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from sextant.atomic import write_json
from sextant.cache import code_fingerprint, digest

T = TypeVar("T")

LOADED = "loaded.json"
#: what a load may touch that says nothing about the model
_IGNORED = ("/proc/", "/sys/", "/dev/")
#: a folder of more files than this counts by its own stamp, not file by file (a download folder, /tmp)
SIBLINGS = 256


@dataclass(frozen=True)
class LoadRecord:
    """What a run's package depends on besides its options (see the module's docstring)."""

    arguments: Mapping[str, Any]  # model, samples as given, and the working folder
    files: Mapping[str, tuple[int, int]]  # absolute path → (size, modification time in ns)
    installed: str  # digest of the distributions, sextant's and its plugins' code, the interpreter
    host: Mapping[str, Any]  # the host record but its load


class _Trace:
    """The files opened while a load runs, and whether it reached beyond files."""

    active: _Trace | None = None
    hooked = False
    #: audit events of a load that got something no file shows
    BEYOND = frozenset({"socket.connect", "subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn", "os.exec"})

    def __init__(self) -> None:
        self.opened: set[str] = set()
        self.beyond = False

    @classmethod
    def hook(cls, event: str, args: tuple[Any, ...]) -> None:
        trace = cls.active
        if trace is None:
            return
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            trace.opened.add(os.fsdecode(args[0]))
        elif event in cls.BEYOND:
            trace.beyond = True


def traced(load: Callable[[], T]) -> tuple[T, set[str] | None]:
    """``load()``'s result, and the files it read: those opened (Python's ``open`` audit event) and
    the modules it imported; ``None`` when it connected to the network or started a process."""
    if not _Trace.hooked:
        sys.addaudithook(_Trace.hook)  # audit hooks stay for the process: this one only reads a flag
        _Trace.hooked = True
    before = set(sys.modules)
    trace = _Trace.active = _Trace()
    try:
        result = load()
    finally:
        _Trace.active = None
    files = set(trace.opened)
    for name in set(sys.modules) - before:
        file = getattr(sys.modules.get(name), "__file__", None)
        if isinstance(file, str):
            files.add(file)
    return result, (None if trace.beyond else files)


def record(
    read: set[str] | None, arguments: Mapping[str, Any], catalog: Any, host: Mapping[str, Any]
) -> LoadRecord | None:
    """The record of a load that read ``read`` (from :func:`traced`), taken right after it (a file
    changed while the run measures is a change); ``None`` for a load that cannot be traced."""
    if read is None:
        return None
    paths = set(read)
    for argument in (arguments.get("model"), arguments.get("samples")):
        if isinstance(argument, str):  # a path, or a file.py:factory file (imported before, in a long process)
            paths.add(argument if Path(argument).exists() else argument.rpartition(":")[0])
    return LoadRecord(dict(arguments), _stamps(paths), installed(catalog), _identity(host))


def save(workspace: Path, found: LoadRecord | None) -> None:
    """Write ``loaded.json`` into the package (before it is sealed), or remove a stale one."""
    path = workspace / LOADED
    if found is None:
        path.unlink(missing_ok=True)
    else:
        write_json(path, {**asdict(found), "files": {p: list(s) for p, s in found.files.items()}})


def arguments(model: Any, samples: Any) -> dict[str, Any] | None:
    """The MODEL and ``--samples`` arguments as recorded, with the working folder; ``None`` when
    either is an object (an API call): only what is named by text can be found unchanged."""
    if not isinstance(model, (str, Path)) or not (samples is None or isinstance(samples, (str, Path))):
        return None
    return {"model": str(model), "samples": None if samples is None else str(samples), "cwd": os.getcwd()}


def why_not(
    workspace: Path, given: Mapping[str, Any], options: Mapping[str, Any], catalog: Any, host: Mapping[str, Any]
) -> str | None:
    """Why the package in ``workspace`` is not the answer to this run (``None``: it is).
    ``options``: this run's ``OptimizeOptions.to_record()``."""
    from sextant.errors import PackageError
    from sextant.manifest import changed_since_sealed
    from sextant.package import read_earlier

    try:
        kept = json.loads((workspace / LOADED).read_text())
        earlier = read_earlier(workspace).document
    except (OSError, ValueError, PackageError):
        return "no record of an earlier complete run"
    run = earlier.run
    if run is None or not run.complete or run.unmeasured:
        return "the earlier run did not finish"
    if earlier.selection is None or earlier.selection.best is None:
        return "the earlier run selected nothing"
    records = [*earlier.steps.values(), *earlier.candidates.values()]
    if any(r.cause is not None and r.cause.environmental for r in records):
        return "something failed for the machine's reasons and is tried again"
    if not _sealed(workspace) or changed_since_sealed(workspace, ("outputs", "logs")):
        return "the package changed since it was sealed"
    if kept.get("arguments") != dict(given):
        return "the MODEL or --samples argument, or the working folder, is not the last run's"
    if _normal(earlier.options) != _normal(options):
        return "the options are not the last run's"
    if kept.get("installed") != installed(catalog) or kept.get("host") != _identity(host):
        return "the installation or the machine changed since the last run"
    files = {p: tuple(s) for p, s in kept.get("files", {}).items()}
    now = _stamps(files)
    if now != files:
        return f"{min(set(now.items()) ^ set(files.items()))[0]} changed since the last run"
    return None


def _sealed(workspace: Path) -> bool:
    """Whether the manifest holds ``status.json`` and ``loaded.json`` as they are: the run that
    wrote them sealed the package, and nothing wrote them since."""
    from sextant.cache import file_sha256
    from sextant.errors import PackageError
    from sextant.manifest import read_manifest
    from sextant.package import STATUS

    try:
        manifest = read_manifest(workspace)
    except PackageError:
        return False
    return manifest is not None and all(
        manifest.files.get(name) == file_sha256(workspace / name) for name in (STATUS, LOADED)
    )


def installed(catalog: Any) -> str:
    """The installation a run ran with: the installed distributions (their metadata folders'
    modification times), the source of sextant and of each plugin (an edited editable install
    keeps its version), the interpreter."""
    from sextant import __version__
    from sextant.cache import _installed_metadata

    tops = {"sextant"}
    for contribution in catalog.contributions:
        for attr in ("run", "load"):
            ref = getattr(contribution.spec, attr, None)
            if isinstance(ref, str) and ":" in ref:
                tops.add(ref.partition(":")[0].split(".", 1)[0])
    code = {top: code_fingerprint(f"{top}:_") for top in sorted(tops)}
    return digest({"sextant": __version__, "python": sys.executable, "installed": _installed_metadata(), "code": code})


def _identity(host: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in host.items() if k != "load_1min"}


def _normal(options: Mapping[str, Any] | None) -> Any:
    """Options as JSON reads them back (tuples as lists), without those that only say how to run."""
    kept = {k: v for k, v in (options or {}).items() if k not in ("fresh", "reload")}
    return json.loads(json.dumps(kept, default=str))


def _library() -> tuple[str, ...]:
    """The interpreter's folders (its environment's, and the one it was made from): what is there
    came with Python or an installed distribution."""
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots |= {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    return tuple(os.path.join(os.path.realpath(r), "") for r in roots)


def _stamps(paths: Iterable[str]) -> dict[str, tuple[int, int]]:
    """Each file read, and every file in its folder, by (size, mtime); a folder read, whole. A
    folder of more than :data:`SIBLINGS` files counts by its own mtime (a file added, removed or
    renamed), under its path with a trailing separator, beside the files read from it."""
    library = _library()
    found: dict[str, tuple[int, int] | None] = {}
    folders: set[str] = set()
    for given in paths:
        path = os.path.realpath(given)
        if given.endswith(os.sep) or path.startswith(library) or path.startswith(_IGNORED) or "__pycache__" in path:
            continue  # a folder's own stamp comes again from its files; the library: the installation's digest
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs[:] = [d for d in dirs if d != "__pycache__"]
                found.update((os.path.join(root, n), _stamp(os.path.join(root, n))) for n in names)
        elif os.path.isfile(path):
            found[path] = _stamp(path)
            folders.add(os.path.dirname(path))
    for folder in folders:
        try:
            with os.scandir(folder) as entries:
                files = [e.path for e in entries if e.is_file()]
        except OSError:
            files = []
        if len(files) > SIBLINGS:
            found[os.path.join(folder, "")] = _stamp(folder)
        else:
            found.update((f, _stamp(f)) for f in files)
    return {p: s for p, s in sorted(found.items()) if s is not None}


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns)
