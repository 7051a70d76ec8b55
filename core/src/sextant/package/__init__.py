"""The package: one optimize run on disk, and the Python view of it.

Layout of a package folder::

    status.json        every step and candidate with its status, cause, numbers (schema below)
    samples.npz        the samples; inputs.npz the correctness inputs; reference.npz their outputs
    source/            the source model as written by its loader plugin
    artifacts/         one folder per export/convert step
    outputs/           each candidate's outputs on inputs.npz
    logs/              one log per step, with a job file that replays it
    manifest.json      the SHA-256 of every file above, written when the run ends (``sextant.manifest``)

``status.json`` is rewritten atomically after every step, so an interrupted run loses nothing; its
content is one typed :class:`~sextant.package.document.RunDocument` (``Package.document``).
Loading a candidate checks its files against ``manifest.json``, and unpickles nothing without the
caller's ``trust_source=True`` (see :meth:`CandidateView.verify`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sextant.atomic import write_json, write_text  # noqa: F401 - where they were before sextant.atomic
from sextant.errors import IncompleteRunWarning, PackageError, SextantError
from sextant.package.document import SCHEMA_VERSION, STATUS, RunDocument
from sextant.records import CandidateRecord, Status

if TYPE_CHECKING:
    from sextant.generation.loop import TextGenerator
    from sextant.plugins import Catalog
    from sextant.runtime import Runner


def read_status(folder: Path) -> dict[str, Any]:
    path = folder / STATUS
    if not folder.exists():
        raise PackageError(
            f"{folder}: no such folder", hint="Give the folder sextant optimize wrote (sextant-workspace/<model>)."
        )
    if not path.exists() and (folder / "pipeline.json").is_file():
        parts = sorted(p for p in (folder / "parts").glob("*") if (p / STATUS).is_file())
        listed = "; ".join(str(p) for p in parts[:6]) + (" ..." if len(parts) > 6 else "")
        raise PackageError(
            f"{folder} is a pipeline workspace: each wrapped module's part is a package of its own",
            hint=f"Give one of its parts: {listed}." if parts else "Its run recorded no part yet.",
        )
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


def read_document(folder: Path) -> RunDocument:
    """The package's ``status.json`` as a :class:`RunDocument` (errors as :func:`read_status`)."""
    return parse_document(read_status(folder), folder / STATUS)


@dataclass(frozen=True)
class Earlier:
    """An earlier run's document as a re-run reads it (:func:`read_earlier`): ``dropped`` names the
    records that did not parse (they are redone, not trusted), and ``header`` when the header did
    not."""

    document: RunDocument
    dropped: tuple[str, ...] = ()


def read_earlier(folder: Path) -> Earlier:
    """The package's ``status.json`` as a re-run reads it: whatever parses (errors as
    :func:`read_status` when the file itself cannot be read)."""
    status = read_status(folder)
    dropped: list[str] = []
    try:
        return Earlier(RunDocument.from_json(status, dropped=dropped), tuple(dropped))
    except (KeyError, TypeError, ValueError, AttributeError, SextantError):
        dropped.append("header")
        records = {k: v for k, v in status.items() if k in ("steps", "candidates")}
        return Earlier(RunDocument.from_json(records, dropped=dropped), tuple(dropped))


def parse_document(status: Mapping[str, Any], path: Path) -> RunDocument:
    try:
        return RunDocument.from_json(status)
    except (KeyError, TypeError, ValueError, AttributeError, SextantError) as exc:
        raise PackageError(
            f"{path} cannot be read: {type(exc).__name__}: {exc}",
            hint="Re-run sextant optimize with this version, or use the version that wrote it.",
        ) from exc


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
    def generates(self) -> bool:
        """Whether this is a text-generation candidate (a generator's, loaded as a
        :class:`~sextant.generation.loop.TextGenerator`), not a runner's."""
        return self.package.document.generates

    @property
    def artifact(self) -> Path:
        if self.record.artifact is None:
            raise PackageError(f"candidate {self.id!r} in {self.package.path} has no artifact ({self.status})")
        return self.package.path / self.record.artifact

    def verify(self, catalog: Catalog | None = None, *, trust_source: bool = False) -> None:
        """Refuse, before anything is read, a candidate that is not safe to load.

        - A file the candidate needs (``status.json`` and its artifact's folder, ``source/`` for a
          source candidate) that changed, vanished or was added since the run wrote the package's
          ``manifest.json``: :class:`PackageError` naming it. ``trust_source`` does not lift this:
          a changed package is not the package that was trusted.
        - A runner that unpickles the artifact (a pickled ``nn.Module``, Keras' pickled custom
          classes: see ``RunnerSpec.pickled``) without ``trust_source``: :class:`UntrustedSourceError`.
        - A package with no manifest (written before sextant recorded one) loads only with
          ``trust_source``.
        """
        from sextant.errors import MissingPluginError, UntrustedSourceError
        from sextant.plugins import load_catalog
        from sextant.specs import resolve

        self.check_files(trust_source=trust_source)
        catalog = catalog or load_catalog()
        missing = self.runner_missing(catalog)
        if missing is not None:
            raise MissingPluginError(
                f"candidate {self.id!r} of {self.package.path} cannot load here: {missing}",
                hint=f"Install it: {self.install_command()}.",
            )
        spec = catalog.get("generator" if self.generates else "runner", self.record.runner).spec
        pickled = resolve(spec.pickled)(self.artifact) if spec.pickled else None
        if pickled and not trust_source:
            raise UntrustedSourceError(
                f"candidate {self.id!r} of {self.package.path} loads by unpickling: {pickled}. Unpickling "
                "runs whatever code the file holds, so sextant does not do it for a package unless told to",
                hint="If you trust whoever wrote this package (you ran sextant optimize yourself), load with "
                "trust_source=True (command line: --trust-source); otherwise choose a candidate in an "
                "exported format (ONNX, TorchScript, ...; `sextant inspect` lists them).",
            )

    @property
    def distribution(self) -> str:
        """The distribution that contributed this candidate's runner (``sextant-openvino``), as recorded."""
        return (self.record.plugin or "").split(" ", 1)[0] or "the plugin that ran it"

    def install_command(self) -> str:
        """How to install :attr:`distribution` (a sextant checkout's own plugins: from the checkout too)."""
        dist = self.distribution
        if dist.startswith("sextant-"):
            folder = dist.removeprefix("sextant-")
            return f"pip install {dist} (from a sextant checkout: pip install ./plugins/{folder})"
        return f"pip install {dist}"

    def runner_missing(self, catalog: Catalog | None = None) -> str | None:
        """Why this candidate's runner cannot load in this process (its plugin is not installed, or
        a library it needs is not importable), or ``None`` when it can. Nothing is imported."""
        from sextant.plugins import availability, load_catalog

        kind = "generator" if self.generates else "runner"
        found = [c for c in (catalog or load_catalog()).of(kind) if c.name == self.record.runner]
        if not found:
            return (
                f"its {kind} {self.record.runner!r} comes from {self.distribution}, which is not installed "
                "in this environment"
            )
        reason = availability(found[0].spec, self.record.device)
        return None if reason is None else f"its {kind} {self.record.runner!r} is unavailable: {reason}"

    def batches_sequences(self, catalog: Catalog | None = None) -> bool:
        """Whether this generation candidate's generator may decode several sequences together (its
        ``GeneratorSpec.sequence_batching``: the loaded generator is then a ``SequenceBatcher`` where
        the model allows, or a ``StreamBatcher``). Nothing is imported; ``False`` for a runner's candidate or one whose
        plugin is not installed."""
        from sextant.plugins import load_catalog

        if not self.generates:
            return False
        found = [c for c in (catalog or load_catalog()).of("generator") if c.name == self.record.runner]
        return bool(found) and bool(found[0].spec.sequence_batching)

    def check_files(self, *, trust_source: bool = False) -> None:
        """The file half of :meth:`verify`: what copying the candidate elsewhere (a deployer) needs."""
        from sextant.manifest import MANIFEST, needed_files, read_manifest
        from sextant.manifest import verify as verify_files

        self.artifact  # noqa: B018 - a candidate without one is refused here
        manifest = read_manifest(self.package.path)
        if manifest is not None:
            verify_files(self.package.path, manifest, needed_files(self.package.path, str(self.record.artifact)))
        elif not trust_source:
            raise PackageError(
                f"{self.package.path} has no {MANIFEST}: it was written before sextant recorded the hashes "
                "of a package's files (or the manifest was removed), so its files cannot be checked",
                hint="Re-run `sextant optimize` to rebuild the package; if you wrote it yourself, "
                "load with trust_source=True (command line: --trust-source).",
            )

    def load(
        self,
        catalog: Catalog | None = None,
        threads: int | None = None,
        *,
        trust_source: bool = False,
        shared: bool = False,
        max_batch: int = 1,
        max_length: int | None = None,
    ) -> Runner | TextGenerator:
        """Load this candidate's runner in this process; returns a :class:`~sextant.runtime.Runner`.
        ``shared``: other work runs in this process between its calls (see ``RunnerRequest.shared``).

        A text-generation candidate loads as a :class:`~sextant.generation.loop.TextGenerator`
        (``generate(input_ids, max_new_tokens=)``, ``stream(...)``): ``max_batch`` sequences of at
        most ``max_length`` tokens (default: the model's positions), what a static cache holds.

        The candidate's files are first checked against the package's manifest, and a candidate
        whose loading unpickles files (a source ``nn.Module``, Keras custom classes) needs
        ``trust_source=True``: see :meth:`verify`."""
        from sextant.devices import cpu_threads
        from sextant.plugins import load_catalog
        from sextant.runtime import RunnerRequest
        from sextant.specs import resolve

        catalog = catalog or load_catalog()
        self.verify(catalog, trust_source=trust_source)
        recorded_threads = self.record.profile.threads if self.record.profile else None
        if self.generates:
            return self._load_generator(catalog, threads or recorded_threads or cpu_threads(), max_batch, max_length)
        spec = catalog.get("runner", self.record.runner).spec
        request = RunnerRequest(
            artifact=self.artifact,
            signature=self.package.document.signature,
            device=self.record.device,
            precision=self.record.precision,
            threads=threads or recorded_threads or cpu_threads(),
            options=self.record.options,
            shared=shared,
        )
        return resolve(spec.load)(request)

    def _load_generator(self, catalog: Catalog, threads: int, max_batch: int, max_length: int | None) -> TextGenerator:
        from sextant.generation.loop import TextGenerator
        from sextant.runtime import GeneratorRequest
        from sextant.specs import resolve

        spec = catalog.get("generator", self.record.runner).spec
        model = self.package.document.model
        positions = model.max_positions if model else None
        request = GeneratorRequest(
            artifact=self.artifact,
            device=self.record.device,
            precision=self.record.precision,
            threads=threads,
            options=self.record.options,
            max_batch=max_batch,
            max_length=max_length or positions or 2048,
        )
        return TextGenerator(resolve(spec.load)(request), self.id)


class Package:
    """A package folder written by ``sextant optimize``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        #: ``status.json`` as read (what ``--json`` prints); :attr:`document` is its typed view
        self.status = read_status(self.path)
        self.document = parse_document(self.status, self.path / STATUS)

    def __repr__(self) -> str:
        return f"Package({str(self.path)!r}, best={self.document.best!r})"

    def candidates(self) -> Iterator[CandidateView]:
        for cid, record in self.document.candidates.items():
            yield CandidateView(self, cid, record)

    def candidate(self, cid: str) -> CandidateView:
        record = self.document.candidates.get(cid)
        if record is None:
            raise PackageError(f"no candidate {cid!r} in {self.path}")
        return CandidateView(self, cid, record)

    @property
    def incomplete(self) -> str | None:
        """Why this package's results are partial (:attr:`RunDocument.incomplete`); ``None`` when its
        run finished."""
        return self.document.incomplete

    def best(self, regime: str | None = None) -> CandidateView:
        """The selected candidate; raises :class:`PackageError` when none was selected. When the run
        did not finish, warns with :class:`~sextant.errors.IncompleteRunWarning` (``warnings.warn``):
        the selection was made among the candidates measured before it stopped.

        :param regime: ``latency`` (small batches) or ``throughput`` (large ones): that regime's
            pick (:attr:`sextant.selection.Selection.regimes`), which is the objective's when one
            candidate is best for both; ``None``: the objective's."""
        selection = self.document.selection
        best = self.document.best
        if regime is not None:
            from sextant.selection import REGIMES

            if regime not in REGIMES:
                raise PackageError(f"unknown regime {regime!r}", hint=f"Choose one of {', '.join(REGIMES)}.")
            best = ((selection.regimes if selection else None) or {}).get(regime, best)
        incomplete = self.incomplete
        if best is None:
            reason = (selection.reason if selection else None) or "the run did not finish"
            raise PackageError(f"{self.path} has no selected candidate: {reason}", hint=incomplete)
        if incomplete:
            warnings.warn(f"{self.path}: {incomplete}", IncompleteRunWarning, stacklevel=2)
        return self.candidate(best)

    def best_for_batch(self, batch: int) -> CandidateView:
        """The regime pick that fits serving at ``batch`` (what a deployer should take for its
        batch size, :meth:`regime_for_batch`); the objective's pick when the package names no
        regimes (one candidate is best for both, or an older package)."""
        regime = self.regime_for_batch(batch)
        return self.best(regime)

    def regime_for_batch(self, batch: int) -> str | None:
        """The regime (``latency`` or ``throughput``) whose pick fits serving batches of at most
        ``batch``: of the regime picks, the one with the higher throughput measured at the largest
        profiled batch size up to ``batch`` (:func:`sextant.selection.throughput_at`; the latency
        pick on a tie); ``None`` when the package names no regimes."""
        from sextant.selection import throughput_at

        selection = self.document.selection
        regimes = (selection.regimes if selection else None) or {}
        if not regimes:
            return None

        def served(cid: str) -> float:
            record = self.document.candidates.get(cid)
            at = throughput_at(record.points, batch) if record is not None else None
            return at[1] if at else 0.0

        picks = list(dict.fromkeys(regimes.values()))
        chosen = max(picks, key=served)
        return next(r for r, cid in regimes.items() if cid == chosen)


def load(path: Path | str) -> Package:
    """Open a package folder, or a file written by ``sextant bundle`` (extracted once into sextant's
    cache folder, see :mod:`sextant.bundle`)."""
    from sextant.bundle import opened

    return Package(opened(path))
