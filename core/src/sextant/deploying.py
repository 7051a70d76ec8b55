"""``sextant deploy TARGET PACKAGE``: the core finds the deployer a plugin registered for ``TARGET``
(``sextant_register_deployers``), checks the request against what it declares, and calls it.

What every deployer needs from a package lives here too, so no target re-implements it:
:func:`chosen_candidate` (the selected best, or ``--candidate``, refused with the reason when it did
not pass), :func:`choose_candidate` (the same, except that a package naming a pick per serving regime gets
the one that fits the serving batch size, and the :class:`Choice` says which and why),
:func:`served_name` (``--name``, else the package's model name),
:func:`one_candidate_package` (the candidate alone as a package, for a target that loads it with
sextant's runner) and, in :mod:`sextant.serving`, the serving settings derived from the profile.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sextant.errors import MissingPluginError, SextantError, UsageError

if TYPE_CHECKING:
    from sextant.package import CandidateView, Package
    from sextant.plugins import Catalog
    from sextant.runtime import Deployment, DeployRequest
    from sextant.specs import DeployerSpec

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def chosen_candidate(package: Package, candidate: str | None) -> CandidateView:
    """The candidate to serve: the given id, or the package's selection; refusals say why not."""
    from sextant.records import Status

    document = package.document
    if candidate is None:
        candidate = document.best
        if candidate is None:
            passed = [cid for cid, record in document.candidates.items() if record.status == Status.OK]
            reason = (document.selection.reason if document.selection else None) or "the run did not select one"
            raise UsageError(
                f"{package.path} has no selected candidate ({reason}), so there is nothing to deploy by default",
                hint=(
                    f"Pass --candidate with one that passed: {', '.join(passed)}."
                    if passed
                    else "No candidate passed; fix the run (sextant inspect shows why) and optimize again."
                ),
            )
    if candidate not in document.candidates:
        raise UsageError(
            f"no candidate {candidate!r} in {package.path}", hint=f"Its candidates: {', '.join(document.candidates)}."
        )
    view = package.candidate(candidate)
    if view.status != Status.OK or view.record.artifact is None:
        reason = f": {view.record.reason}" if view.record.reason else ""
        raise UsageError(
            f"candidate {candidate} did not pass ({view.status}{reason}); only a passing candidate is deployed"
        )
    return view


@dataclass(frozen=True)
class Choice:
    """The candidate a deployment serves, and why: ``reason`` in one line; ``regime`` the serving
    regime whose pick it is (``latency``, ``throughput``: :attr:`sextant.selection.Selection.regimes`)
    when the package names one per regime and no candidate was given; ``batch`` the serving batch
    size it was chosen for."""

    view: CandidateView
    reason: str
    regime: str | None = None
    batch: int | None = None

    def to_json(self) -> dict[str, Any]:
        """What a deployment records (``Deployment.details["choice"]``, ``--json``)."""
        return {"candidate": self.view.id, "regime": self.regime, "serving_batch": self.batch, "reason": self.reason}


def choose_candidate(package: Package, candidate: str | None, max_batch_size: int | None = None) -> Choice:
    """The candidate to serve and why. ``candidate`` (``--candidate``) wins. Otherwise, when the
    package names a pick per regime, the one that fits serving batches of at most
    ``max_batch_size`` (``--max-batch-size``; ``None``: the default the serving settings derive
    from the selected best's profile, :func:`sextant.serving.for_candidate`), by
    :meth:`~sextant.package.Package.regime_for_batch`; else the selected best. Refusals as
    :func:`chosen_candidate`."""
    from sextant.selection import throughput_at

    if candidate is not None:
        view = chosen_candidate(package, candidate)
        return Choice(view, f"candidate {view.id}: given (--candidate)")
    best = chosen_candidate(package, None)
    selection = package.document.selection
    regimes = (selection.regimes if selection else None) or {}
    objective = selection.objective.name if selection else "the run's"
    if not regimes:
        return Choice(best, f"candidate {best.id}: the selected best (the {objective} objective's pick)")
    if max_batch_size is None:
        from sextant.serving import for_candidate

        batch, source = for_candidate(best).max_batch_size, "the serving default derived from the profile"
    else:
        batch, source = max_batch_size, "--max-batch-size"
    regime = package.regime_for_batch(batch)
    assert regime is not None, "a package with regimes has a regime for every batch size"
    view = chosen_candidate(package, regimes[regime])
    others = [(r, cid) for r, cid in regimes.items() if cid != view.id]

    def served(cid: str) -> str:
        at = throughput_at(package.document.candidates[cid].points, batch)
        return f"{at[1]:.0f}/s at batch {at[0]}" if at else "not profiled there"

    against = "; ".join(f"the {r} pick {cid}: {served(cid)}" for r, cid in others)
    reason = (
        f"batch <= {max(batch, 1)} ({source}): the {regime} pick {view.id}, the faster there "
        f"({served(view.id)}{'; ' + against if against else ''})"
    )
    return Choice(view, reason, regime, batch)


def served_name(package: Package, given: str | None, where: str = "a serving target") -> str:
    """The served model's name: ``given`` (``--name``), else the package's model name, else its
    folder's; refused unless it is a plain folder name (``where`` names who would refuse it)."""
    model = package.document.model
    name = given or (model.name if model else None) or package.path.name
    if not _NAME.match(name):
        raise UsageError(
            f"model name {name!r} is not a folder name {where} accepts",
            hint="Pass --name with letters, digits, '_', '-', '.'.",
        )
    return name


def one_candidate_package(view: CandidateView, package_dir: Path) -> Path:
    """Write a package holding only ``view`` (its record, selected, and its artifact's folder) at
    ``package_dir``, with a manifest: what a served model loads with ``Package(...).best()``."""
    from sextant.atomic import write_json
    from sextant.manifest import write_manifest
    from sextant.package import STATUS, RunDocument
    from sextant.selection import Selection

    relative = Path(str(view.record.artifact))
    shutil.copytree(view.artifact.parent, package_dir / relative.parent, ignore=shutil.ignore_patterns("__pycache__"))
    document = view.package.document
    selection = document.selection or Selection.from_json({})
    subset = RunDocument(
        schema=document.schema,
        sextant=document.sextant,
        task=document.task,
        model=document.model,
        host=document.host,
        signature=document.signature,
        selection=replace(selection, baseline=None, ranking=(view.id,), reason=None, paired=None),
        candidates={view.id: view.record},
    )
    write_json(package_dir / STATUS, subset.to_json())
    write_manifest(package_dir)  # the served model checks its files against it when it loads
    return package_dir


def deployer(target: str, catalog: Catalog | None = None) -> DeployerSpec:
    """The installed deployer of ``target``; unknown or unavailable: an error naming the known ones
    or what to install."""
    from sextant.plugins import availability, load_catalog

    catalog = catalog or load_catalog()
    known = [c.name for c in catalog.of("deployer")]
    if target not in known:
        raise UsageError(
            f"no deployer for the target {target!r}",
            hint=f"Installed targets: {', '.join(known)}." if known else "No deployer plugin is installed "
            "(pip install sextant-triton adds the triton target).",
        )
    spec = catalog.get("deployer", target).spec
    reason = availability(spec)
    if reason is not None:
        raise MissingPluginError(f"the {target} deployer is unavailable here: {reason}", hint=spec.install or None)
    return spec


def deploy(target: str, request: DeployRequest, catalog: Catalog | None = None) -> Deployment:
    """Deploy ``request`` to ``target``'s deployer: ``deploy("triton", DeployRequest(package,
    "models"))``. An option the deployer does not declare is refused before it is called; an
    operating-system error while writing becomes a :class:`SextantError` naming the target."""
    from sextant.specs import resolve

    spec = deployer(target, catalog)
    declared = {o.name for o in spec.options}
    unknown = sorted(set(request.options) - declared)
    if unknown:
        raise UsageError(
            f"the {target} deployer has no option {', '.join(unknown)}",
            hint=f"Its options: {', '.join(sorted(declared)) or 'none'}.",
        )
    try:
        return resolve(spec.deploy)(request)
    except OSError as exc:
        raise SextantError(
            f"cannot write the {target} deployment to {request.target}: {exc}",
            hint="Fix what the system refused (permissions, space, the path), then deploy again.",
        ) from exc
