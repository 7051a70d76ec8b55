"""The package folder while a run writes it: its layout, the source model, and pruning.

Layout (see ``sextant.package``)::

    status.json  samples.npz  inputs.npz  reference.npz  loaded.json (sextant.optimizer.unchanged)
    source/  artifacts/<step>-<key>/  outputs/<candidate>-<key>.npz  logs/<name>.log, <name>.job.json

Paths inside records are relative to the package, so a package can be moved.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sextant.cache import digest, hash_path
from sextant.diskspace import guarded, writable
from sextant.specs import SourceModel

SUBFOLDERS = ("logs", "artifacts", "outputs")


def slug(text: str) -> str:
    """A file name for an id: letters, digits and ``-_.`` kept, anything else ``_``."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


@dataclass(frozen=True)
class WrittenSource:
    """The source model as written into the package, and its content key."""

    path: Path
    key: str


def workspace_path(given: Path | str | None, name: str) -> Path:
    """A run's workspace: the folder given (``--workspace``), else ``sextant-workspace/NAME`` in the
    working folder, NAME the source's."""
    return Path(given or Path("sextant-workspace") / name)


@dataclass(frozen=True)
class Workspace:
    """One package folder."""

    path: Path

    @classmethod
    def open(cls, path: Path) -> Workspace:
        with writable(path):
            path.mkdir(parents=True, exist_ok=True)
            for sub in SUBFOLDERS:
                (path / sub).mkdir(exist_ok=True)
        return cls(path)

    @property
    def samples(self) -> Path:
        return self.path / "samples.npz"

    @property
    def inputs(self) -> Path:
        """The correctness inputs every candidate runs."""
        return self.path / "inputs.npz"

    @property
    def reference(self) -> Path:
        return self.path / "reference.npz"

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.path))

    def __truediv__(self, relative: str) -> Path:
        return self.path / relative

    def log(self, name: str) -> str:
        return f"logs/{slug(name)}.log"

    def artifact_dir(self, step_id: str, key: str) -> Path:
        return self.path / "artifacts" / f"{slug(step_id)}-{key[:10]}"

    def outputs_file(self, candidate_id: str, key: str) -> str:
        return f"outputs/{slug(candidate_id)}-{key[:10]}.npz"

    def write_source(self, source: SourceModel) -> WrittenSource:
        """Write the source model into ``source/`` (through a temporary folder, so an interrupted
        write never leaves a half source) and compute its content key."""
        tmp = self.path / "source.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with guarded(self.path / "source", temporary=tmp, what=f"the source model into {self.path / 'source'}"):
            tmp.mkdir()
            written = source.write(tmp)
        key = source.fingerprint() if source.fingerprint else hash_path(tmp)
        if source.options:
            key = digest({"source": key, "options": dict(source.options)})
        shutil.rmtree(self.path / "source", ignore_errors=True)
        tmp.rename(self.path / "source")
        return WrittenSource(self.path / "source" / written.relative_to(tmp), key)

    def discard_changed(self) -> str | None:
        """Remove the outputs and logs that changed since the last run sealed the package
        (:func:`sextant.manifest.changed_since_sealed`): the candidates whose outputs they were run
        again, and the manifest this run writes never records them. Artifacts are checked against
        their own hashes where they are reused (``sextant.optimizer.steps``). Returns the note to give."""
        from sextant.manifest import changed_since_sealed

        changed = changed_since_sealed(self.path, ("outputs", "logs"))
        for name in changed:
            (self.path / name).unlink(missing_ok=True)
        if not changed:
            return None
        shown = ", ".join(changed[:5]) + (" ..." if len(changed) > 5 else "")
        return (
            f"{len(changed)} file(s) changed since the last run wrote this package ({shown}): they were "
            "removed, and the candidates whose outputs they held are run again"
        )

    def prune(self, used: Iterable[str | None]) -> None:
        """Remove artifacts and outputs no record refers to (left by older runs)."""
        kept = {u for u in used if u}
        for sub in ("artifacts", "outputs"):
            for path in (self.path / sub).iterdir():
                name = f"{sub}/{path.name}"
                if name not in kept and not any(u.startswith(name + "/") for u in kept):
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
