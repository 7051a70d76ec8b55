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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sextant.api import UsageError

from sextant_triton import backends
from sextant_triton.analyze.settings import AnalyzeSettings, ModelSettings
from sextant_triton.analyze.model import ModelInfo

Inputs = tuple[Path | str, Mapping[str, Sequence[int]]]


@dataclass(frozen=True)
class Target:
    repository: Path
    models: tuple[ModelSettings, ...]
    output: Path
    package: Path | None = None


def deploy_for_analysis(
    package: Path, repository: Path, settings: AnalyzeSettings, log: Callable[[str], None] = lambda line: None
) -> str:
    """Deploy ``package``'s candidate (``settings.candidate``, else its best) into ``repository`` with a
    backend the server can load: in local mode the bundled tritonserver, which has the Python
    backend and the ONNX Runtime stand-in only (:func:`sextant_triton.servable.local_backend`).
    A candidate it cannot load here is refused with the plugin to install and the best candidate it
    can. Returns the model's name."""
    from sextant.api import Package, chosen_candidate

    from sextant_triton import servable
    from sextant_triton.repository import deploy_package

    backend = "auto"
    view = chosen_candidate(Package(package), settings.candidate)
    if settings.launch_mode == "local":
        servable.require(view.package, view, servable.local_need, "analyze")
        backend = servable.local_backend(view)
        if backend == "python" and backends.native_backend(view.record) is not None:
            log(
                f"note: {view.id} is served by sextant's {view.record.runner} runner in the Python backend: the "
                f"bundled tritonserver has no {backends.native_backend(view.record)} backend"
            )
    warning = servable.screened_warning(view)
    if warning:
        log(warning)
    deployment = deploy_package(
        package, repository, candidate=view.id, force=True, backend=backend, trust_source=settings.trust_source
    )
    return deployment.name


def resolve_target(
    target: Path, settings: AnalyzeSettings, output: Path | None, log: Callable[[str], None] = lambda line: None
) -> Target:
    if not target.exists():
        raise UsageError(
            f"{target}: no such package or model repository",
            hint="Give the folder `sextant optimize` wrote, or a Triton model repository.",
        )
    package = target if (target / "status.json").is_file() else None
    out = Path(output) if output else (target / "analysis" if package else target.parent / f"{target.name}-analysis")
    if package is not None:
        repository = out / "repository"
        models = settings.models or (ModelSettings(deploy_for_analysis(package, repository, settings, log)),)
    else:
        if settings.candidate is not None:
            raise UsageError(
                f"--candidate {settings.candidate}: {target} is a model repository, not a package",
                hint="--candidate picks a package's candidate; a repository's models are named with --model.",
            )
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
