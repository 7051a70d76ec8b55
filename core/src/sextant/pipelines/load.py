"""``load_optimized``: swap each part's chosen candidate in, from a pipeline workspace.

Loading goes through :meth:`sextant.package.CandidateView.load`, so the same checks hold as for a
single package: every file is checked against the package's manifest, and a candidate that loads by
unpickling needs ``trust_source=True``. A part whose choice is its own module run as it is (the
reference runner, full precision, no options: ``torch-eager``) is served by the live module, so it
needs no trust and no copy.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sextant.pipelines.parts import Part, live_parts
from sextant.pipelines.records import Serving, read_record
from sextant.errors import UsageError
from sextant.records import CandidateRecord


def load_optimized(
    workspace: Path | str = Path("sextant-workspace") / "pipeline",
    *,
    modules: Sequence[Part] | None = None,
    trust_source: bool = False,
    catalog: Any = None,
) -> dict[str, dict[str, str]]:
    """Serve every wrapped part with the candidate ``optimize_pipeline`` chose for it.

    :param workspace: the pipeline workspace (with ``pipeline.json``), or a file written by
        ``sextant bundle`` from one (extracted once into sextant's cache folder).
    :param modules: the parts to load into; by default every ``sextant.Module`` alive here whose
        name the workspace records.
    :param trust_source: allow candidates that load by unpickling (see the module doc).
    :returns: per module, per call structure, what now serves it (``the original module (why)``
        for a structure kept on it). A call of a structure never recorded runs the original
        module too, with one warning.
    """
    from sextant.bundle import opened
    from sextant.package import Package
    from sextant.plugins import load_catalog

    folder = opened(workspace)
    record = read_record(folder)
    recorded = set(record.modules())
    chosen = [getattr(m, "sextant", m) for m in modules] if modules is not None else live_parts()
    parts = {p.name: p for p in chosen}
    missing = sorted(recorded - set(parts))
    if modules is not None and missing:
        raise UsageError(
            f"{folder} holds choices for {', '.join(map(repr, missing))}, but no module of that name was given",
            hint="Pass every wrapped module of the pipeline in modules=[...], or leave modules out.",
        )
    for name in sorted(set(parts) - recorded) if modules is not None else ():
        warnings.warn(f"{folder} records nothing for the module {name!r}: it keeps its original", stacklevel=2)
    catalog = catalog or load_catalog()
    served: dict[str, dict[str, str]] = {}
    for structure in record.structures:
        part = parts.get(structure.module)
        if part is None:
            continue
        if structure.serving is not Serving.OPTIMIZED or structure.chosen is None or structure.package is None:
            part.install(structure.key, None)
            served.setdefault(structure.module, {})[structure.key] = f"the original module ({structure.reason})"
            continue
        candidate = Package(folder / structure.package).candidate(structure.chosen)
        if _is_the_module_itself(candidate.record, catalog):  # nothing to load, nothing to trust
            part.install(structure.key, None)
            label = f"the original module ({structure.chosen} won)"
        else:
            runner = candidate.load(catalog, trust_source=trust_source, shared=True)
            label = f"{structure.chosen} ({structure.runner})"
            part.install(structure.key, runner, label, structure.layout)
        served.setdefault(structure.module, {})[structure.key] = label
    if missing:  # modules left out: only live ones were looked for
        warnings.warn(
            f"no live sextant.Module is named {', '.join(map(repr, missing))}; their choices in {folder} are not loaded",
            stacklevel=2,
        )
    return served


def _is_the_module_itself(record: CandidateRecord, catalog: Any) -> bool:
    """Whether a candidate is the wrapped module run as it is (its framework's reference runner on
    the source, full precision, no options): the live module then serves, unpickling nothing."""
    if record.step != "source" or record.options or record.precision != "fp32":
        return False
    spec = catalog.get("runner", record.runner).spec
    return bool(spec.reference)
