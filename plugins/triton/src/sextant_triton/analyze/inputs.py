"""What ``sextant analyze TARGET`` points at, and the requests perf_analyzer sends.

- A *package* (a folder with ``status.json``, what ``sextant optimize`` wrote) is deployed first,
  into ``OUTPUT/repository``, with ``sextant deploy triton``'s code; its model is analyzed.
- A *model repository* is analyzed as it is; ``--model`` names the models (one model there: that one).

Requests are real samples where there are any: the client example's ``NAME_client_inputs.npz``
that deploying writes next to the repository (one row per request, at the served tensor names).
Otherwise perf_analyzer sends random data, shaped by the configuration, or by ``shapes`` in the
YAML where the configuration has variable dimensions (``-1``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sextant.api import UsageError

from sextant_triton.analyze.settings import AnalyzeSettings, ModelSettings
from sextant_triton.analyze.space import ModelInfo

Inputs = tuple[Path | str, Mapping[str, Sequence[int]]]


@dataclass(frozen=True)
class Target:
    repository: Path
    models: tuple[ModelSettings, ...]
    output: Path
    package: Path | None = None


def resolve_target(target: Path, settings: AnalyzeSettings, output: Path | None) -> Target:
    if not target.exists():
        raise UsageError(
            f"{target}: no such package or model repository",
            hint="Give the folder `sextant optimize` wrote, or a Triton model repository.",
        )
    package = target if (target / "status.json").is_file() else None
    out = Path(output) if output else (target / "analysis" if package else target.parent / f"{target.name}-analysis")
    if package is not None:
        from sextant_triton.repository import deploy_package

        deployment = deploy_package(package, out / "repository", force=True, trust_source=settings.trust_source)
        repository = out / "repository"
        models = settings.models or (ModelSettings(deployment.name),)
    else:
        repository = target
        present = sorted(p.name for p in target.iterdir() if (p / "config.pbtxt").is_file())
        if not present:
            raise UsageError(
                f"{target} holds no model (no <model>/config.pbtxt)", hint="Give a package or a model repository."
            )
        if not settings.models and len(present) > 1:
            raise UsageError(
                f"the repository {target} holds {len(present)} models",
                hint=f"Name them with --model: {', '.join(present)}.",
            )
        models = settings.models or (ModelSettings(present[0]),)
    return Target(repository, tuple(models), out, package)


def perf_inputs(repository: Path, model: ModelSettings, info: ModelInfo, output: Path) -> Inputs:
    """perf_analyzer's ``--input-data`` and ``--shape`` for ``model`` (``info``: its configuration)."""
    samples = repository.parent / f"{model.name}_client_inputs.npz"
    if samples.is_file():
        return _from_samples(samples, info.batching, output / "perf" / f"{model.name}_inputs.json"), {}
    variable = {
        t["name"]: [int(d) for d in t.get("dims", [])]
        for t in info.config.get("input", [])
        if any(int(d) < 0 for d in t.get("dims", []))
    }
    missing = sorted(set(variable) - set(model.shapes))
    if missing:
        raise UsageError(
            f"{model.name}: input{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"{'have' if len(missing) > 1 else 'has'} variable dimensions {', '.join(str(variable[m]) for m in missing)}",
            hint=f"Give their shapes in analyze.yaml: models: {{{model.name}: {{shapes: {{{missing[0]}: [...]}}}}}}.",
        )
    return "random", {k: tuple(v) for k, v in model.shapes.items()}


def _from_samples(path: Path, batched: bool, out: Path) -> Path:
    """perf_analyzer's JSON input data: the first row of each input (its batch dimension dropped)."""
    import numpy as np

    with np.load(path) as data:
        row = {}
        for name in data.files:
            array = data[name][0] if batched else data[name]
            row[name] = {"content": array.reshape(-1).tolist(), "shape": list(array.shape)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": [row]}))
    return out
