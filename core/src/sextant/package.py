"""The package: one optimize run on disk, and the Python view of it.

Layout of a package folder::

    status.json        every step and candidate with its status, cause, numbers (schema below)
    samples.npz        the samples; inputs.npz the correctness inputs; reference.npz their outputs
    source/            the source model as written by its loader plugin
    artifacts/         one folder per export/convert step
    outputs/           each candidate's outputs on inputs.npz
    logs/              one log per step, with a job file that replays it

``status.json`` is rewritten atomically after every step, so an interrupted run loses nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sextant.errors import PackageError
from sextant.records import CandidateRecord, Status

if TYPE_CHECKING:
    from sextant.plugins import Catalog
    from sextant.runtime import Runner

SCHEMA_VERSION = 1
STATUS = "status.json"


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: a temporary file, then a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str))
    os.replace(tmp, path)


def read_status(folder: Path) -> dict[str, Any]:
    path = folder / STATUS
    if not path.exists():
        raise PackageError(f"{folder} is not a sextant package (no {STATUS})", hint="Run sextant optimize first.")
    try:
        status = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PackageError(f"{path} is not valid JSON: {exc}") from exc
    if status.get("schema") != SCHEMA_VERSION:
        raise PackageError(
            f"{path} has schema {status.get('schema')!r}; this sextant reads schema {SCHEMA_VERSION}",
            hint="Re-run sextant optimize with this version, or use the version that wrote it.",
        )
    return status


@dataclass(frozen=True)
class CandidateView:
    """One candidate of a package, as recorded (``record``: a typed :class:`~sextant.records.CandidateRecord`)."""

    package: Package
    id: str
    record: CandidateRecord

    @property
    def status(self) -> Status:
        return self.record.status

    @property
    def artifact(self) -> Path:
        if self.record.artifact is None:
            raise PackageError(f"candidate {self.id!r} in {self.package.path} has no artifact ({self.status})")
        return self.package.path / self.record.artifact

    def load(self, catalog: Catalog | None = None, threads: int | None = None) -> Runner:
        """Load this candidate's runner in this process; returns a :class:`~sextant.runtime.Runner`."""
        from sextant.devices import cpu_threads
        from sextant.plugins import load_catalog
        from sextant.runtime import RunnerRequest
        from sextant.signature import Signature
        from sextant.specs import resolve

        catalog = catalog or load_catalog()
        spec = catalog.get("runner", self.record.runner).spec
        recorded_threads = self.record.profile.threads if self.record.profile else None
        request = RunnerRequest(
            artifact=self.artifact,
            signature=Signature.from_dict(self.package.status["signature"]),
            device=self.record.device,
            precision=self.record.precision,
            threads=threads or recorded_threads or cpu_threads(),
            options=self.record.options,
        )
        return resolve(spec.load)(request)


class Package:
    """A package folder written by ``sextant optimize``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.status = read_status(self.path)

    def __repr__(self) -> str:
        return f"Package({str(self.path)!r}, best={self.status.get('selection', {}).get('best')!r})"

    def candidates(self) -> Iterator[CandidateView]:
        for cid, record in self.status.get("candidates", {}).items():
            yield CandidateView(self, cid, CandidateRecord.from_json(record))

    def candidate(self, cid: str) -> CandidateView:
        try:
            record = self.status["candidates"][cid]
        except KeyError:
            raise PackageError(f"no candidate {cid!r} in {self.path}") from None
        return CandidateView(self, cid, CandidateRecord.from_json(record))

    def best(self) -> CandidateView:
        """The selected candidate; raises :class:`PackageError` when none was selected."""
        best = self.status.get("selection", {}).get("best")
        if best is None:
            reason = self.status.get("selection", {}).get("reason", "the run did not finish")
            raise PackageError(f"{self.path} has no selected candidate: {reason}")
        return self.candidate(best)


def load(path: Path | str) -> Package:
    """Open a package folder."""
    return Package(path)
