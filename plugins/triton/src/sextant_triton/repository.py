"""``sextant deploy triton``: write a package's candidate as a Triton model repository entry.

The layout, for a model named ``mlp`` at version 1::

    REPOSITORY/mlp/config.pbtxt          Triton's ModelConfig (see :mod:`sextant_triton.config`)
    REPOSITORY/mlp/1/model.onnx          native: the artifact, named as the backend expects
    REPOSITORY/mlp/1/model.py            python: sextant's runner inside Triton's Python backend,
    REPOSITORY/mlp/1/package/            with a one-candidate package (record + artifact)
    REPOSITORY/mlp/warmup/<input>        one sample row per input, for the warmup requests
    mlp_client.py, mlp_client_inputs.npz next to REPOSITORY: a tritonclient example and its request

The candidate is ``--candidate``, else the package's pick for the serving batch size
(:func:`sextant.deploying.choose_candidate`: of a latency and a throughput pick, the one faster at
the max batch size served), said in the notes and in ``--json``'s ``choice``.

A text-generation package's candidate is written by :mod:`sextant_triton.stream_deploy` instead;
every deployment is installed by :func:`sextant_triton.install.install`.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sextant.api import (
    Deployment,
    DeployRequest,
    SextantError,
    UsageError,
    choose_candidate,
    one_candidate_package,
    serving_settings,
)

from sextant_triton import backends, client, config, servable
from sextant_triton.install import Contents, install
from sextant_triton.settings import DeployOptions
from sextant_triton.stream_scheduler import refuse_max_sequences

if TYPE_CHECKING:
    from sextant.api import CandidateView, Choice, Package, ServingSettings

PYTHON_MODEL = Path(__file__).with_name("python_model.py")


@dataclass(frozen=True)
class Plan:
    """What a deployment will write, decided before anything is written."""

    name: str
    view: CandidateView
    choice: Choice  # which candidate, and why (the regime pick that fits the serving batch size)
    backend: backends.Backend
    settings: ServingSettings
    config: Any  # model_config_pb2.ModelConfig
    warmup_files: Mapping[str, bytes]
    request: Mapping[str, np.ndarray]  # the client example's request, by served input name
    outputs: tuple[str, ...]  # served output names
    notes: tuple[str, ...]


def choose_backend(view: CandidateView, choice: str) -> backends.Backend:
    native = backends.native_backend(view.record)
    if choice == "python":
        return backends.PYTHON
    if choice == "native" and native is None:
        raise UsageError(
            f"no native Triton backend serves {view.id} ({view.record.format} on {view.record.runner})",
            hint=f"Triton's native backends serve {backends.native_summary()}. "
            "Use --backend python to run sextant's runner inside Triton's Python backend, "
            "or pick such a candidate with --candidate.",
        )
    return native or backends.PYTHON


def plan(package: Package, request: DeployRequest, options: DeployOptions) -> Plan:
    """Decide everything (candidate, backend, settings, config, files); write nothing."""
    from sextant.api import load_batches

    choice = choose_candidate(package, request.candidate, options.serving.max_batch_size)
    view = choice.view
    backend = choose_backend(view, options.backend)
    if backend is backends.PYTHON:  # Triton will load it with sextant's runner: the same refusals
        servable.require(package, view, servable.runner_need, "deploy to the Python backend")
        view.verify(trust_source=options.trust_source)
    else:
        view.check_files(trust_source=options.trust_source)
    name = servable.model_name(package, request.name)
    signature = package.document.signature
    settings = serving_settings(view, options.serving, threads=backends.option_threads(view.record))
    tuning = backends.tuning(backend, view.record, settings.threads)
    sample = load_batches(package.path / "samples.npz")[0]
    input_names, output_names = config.tensor_names(signature, backend)
    warmup, files = config.warmups(sample, signature, input_names, settings) if options.warmup else ([], {})
    parameters = {"sextant_candidate": view.id}
    if backend is backends.PYTHON and options.trust_source:
        parameters[config.TRUST_PARAMETER] = "true"
    model_config = config.build(name, backend, signature, settings, tuning, warmup, parameters)
    request_arrays = {
        input_names[s.name]: sample[s.name][:1] if settings.max_batch_size and s.batched else sample[s.name]
        for s in signature.inputs
    }
    return Plan(
        name=name,
        view=view,
        choice=choice,
        backend=backend,
        settings=settings,
        config=model_config,
        warmup_files=files,
        request=request_arrays,
        outputs=tuple(output_names.values()),
        notes=(
            *([choice.reason] if choice.regime else []),
            *_notes(view, backend, settings, tuning, [*input_names.values(), *output_names.values()]),
        ),
    )


def _notes(
    view: CandidateView, backend: backends.Backend, settings: ServingSettings, tuning: Any, served: list[str]
) -> tuple[str, ...]:
    """What the user should know about the deployment, one line each."""
    warning = servable.screened_warning(view)
    notes = [warning] if warning else []
    if backend is backends.PYTHON:
        why = "no native backend" if backends.native_backend(view.record) is None else "as asked"
        notes.append(f"backend python: sextant's {view.record.runner} runner inside Triton's Python backend ({why})")
    elif servable.openvino_accelerated(view):
        notes.append(
            f"backend {backend.name} with the OpenVINO execution accelerator: Triton's ONNX Runtime backend runs "
            f"OpenVINO on the ONNX file ({view.record.runner} ran it); python -m sextant_triton.server runs it with "
            f"the stand-in for that backend, which needs onnxruntime with OpenVINO's provider "
            f"({servable.ORT_OPENVINO}), or deploy with --backend python (needs {view.distribution})"
        )
    else:
        where = backends.WHERE.get(backend.name)
        notes.append(f"backend {backend.name}" + (f": {where}" if where else ""))
    notes += [*settings.reasons, *tuning.notes]
    if backend.positional_names:
        notes.append(f"tensors are named <name>__<index> (LibTorch binds them by position): {', '.join(served)}")
    if backend is backends.PYTHON:
        plugin = view.record.plugin.split()[0]
        notes.append(f"the server's Python needs sextant, sextant-triton and {plugin} installed")
    return tuple(notes)


def _copy_artifact(view: CandidateView, backend: backends.Backend, version_dir: Path) -> list[Path]:
    """Native: the artifact (and the files beside it, such as external data) under the backend's
    file name. Python: model.py and a one-candidate package."""
    artifact = view.artifact
    if backend is backends.PYTHON:
        shutil.copy2(PYTHON_MODEL, version_dir / "model.py")
        return [version_dir / "model.py", one_candidate_package(view, version_dir / "package")]
    target = version_dir / backend.filename
    if artifact.is_dir():
        shutil.copytree(artifact, target)
        return [target]
    for sibling in artifact.parent.iterdir():
        if sibling != artifact and sibling.name != backend.filename:
            (shutil.copytree if sibling.is_dir() else shutil.copy2)(sibling, version_dir / sibling.name)
    shutil.copy2(artifact, target)
    return [target]


def _check_repository(repository: Path) -> None:
    if repository.exists() and not repository.is_dir():
        raise UsageError(
            f"the repository path {repository} is a file, not a folder",
            hint="Pass --repository with a folder (it is created if missing).",
        )


def _contents(chosen: Plan, repository: Path, version: int) -> Contents:
    script = repository.parent / f"{chosen.name}_client.py"
    npz = script.with_name(f"{chosen.name}_client_inputs.npz")

    def fill(staged: Path) -> None:
        version_dir = staged / str(version)
        version_dir.mkdir(parents=True)
        _copy_artifact(chosen.view, chosen.backend, version_dir)
        config.write(staged / "config.pbtxt", chosen.config)
        if chosen.warmup_files:
            (staged / "warmup").mkdir()
            for file, data in chosen.warmup_files.items():
                (staged / "warmup" / file).write_bytes(data)

    client_files = {
        script: client.example(chosen.name, script.name, npz.name, chosen.request, list(chosen.outputs)).encode(),
        npz: client.request_file(chosen.request),
    }
    return Contents(
        chosen.name, fill, client_files, chosen.notes, {"choice": chosen.choice.to_json()}, _bundled_cannot(chosen)
    )


def _bundled_cannot(chosen: Plan) -> str | None:
    """Why the tritonserver inside the nvidia-pytriton wheel cannot load this deployment's config
    (it has Triton's Python backend and sextant's Python-based stand-ins, not libtorch, nor ONNX
    Runtime with OpenVINO's provider where that is not installed), and what loads it there."""
    if chosen.backend is backends.PYTHON or servable.local_backend(chosen.view) == "auto":
        return None
    return (
        f"it has no {chosen.backend.name} backend"
        + (" with OpenVINO's execution accelerator" if servable.openvino_accelerated(chosen.view) else "")
        + f"; deploy with --backend python to serve {chosen.view.id} there (needs {chosen.view.distribution})"
    )


def deploy(request: DeployRequest) -> Deployment:
    """The ``triton`` deployer (``DeployerSpec.deploy``): write the model folder and the client example.
    A text-generation package's candidate is written as a streaming model (:mod:`sextant_triton.stream_deploy`)."""
    from sextant.api import Package

    options = DeployOptions.from_request(request)
    package = Package(request.package)
    repository = Path(request.target)
    _check_repository(repository)
    if package.document.generates:
        from sextant_triton import stream_deploy

        contents = stream_deploy.contents(package, request, options, repository)
    elif options.backend == "vllm":
        raise UsageError(
            "--backend vllm: only a text-generation package can be served by Triton's vLLM backend",
            hint="Use --backend native, python or auto for this package.",
        )
    elif options.max_sequences is not None:
        raise refuse_max_sequences(
            options.max_sequences,
            "Leave it out: --max-batch-size and --dynamic-batching say how Triton batches this model's requests.",
        )
    else:
        contents = _contents(plan(package, request, options), repository, options.version)
    return install(repository, contents, request.force)


def deploy_package(
    package: str | Path,
    repository: str | Path,
    *,
    candidate: str | None = None,
    name: str | None = None,
    force: bool = False,
    trust_source: bool = False,
    **options: Any,
) -> Deployment:
    """Python API: ``sextant_triton.deploy("sextant-workspace/mlp", "models", backend="python")``.
    ``options`` are :class:`~sextant_triton.settings.DeployOptions` fields."""
    request = DeployRequest(
        Path(package), str(repository), candidate, name, options, force=force, trust_source=trust_source
    )
    try:
        return deploy(request)
    except OSError as exc:
        raise SextantError(f"cannot write the repository {repository}: {exc}") from exc
