"""``sextant deploy triton PACKAGE --backend vllm`` of a text-generation package: Triton's vLLM-backend
model folder, for a server that runs vLLM (a GPU, the ``tritonserver`` vLLM image).

The layout, for a model named ``lm`` at version 1::

    REPOSITORY/lm/config.pbtxt       backend: "vllm", decoupled: true, one KIND_MODEL instance
    REPOSITORY/lm/1/model.json       vLLM's engine arguments: the model folder, its context length
    REPOSITORY/lm/1/hf/              the package's source model as saved (``save_pretrained``: the
                                     weights, config.json and the tokenizer vLLM loads)

vLLM loads the Hugging Face source itself, so only the package's source model can be written this
way (sextant's optimized candidates are artifacts of other runtimes); its inputs and outputs are the
vLLM backend's own (``text_input``, ``stream``, ``sampling_parameters``; ``text_output``), which is
why a tokenizer must have been saved with the model. Nothing here loads it: vLLM is neither
installed nor runnable without a GPU where sextant's tests run, so the folder is golden-tested only,
and the notes say so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from sextant.api import ModelInfo, UsageError
from tritonclient.grpc import model_config_pb2 as mc

from sextant_triton import servable
from sextant_triton import config as pbtxt
from sextant_triton.install import Contents

if TYPE_CHECKING:
    from sextant.api import DeployRequest, Package

    from sextant_triton.settings import DeployOptions

#: the folder the source model is copied to, inside the version folder
MODEL_FOLDER = "hf"
#: vLLM's engine arguments written besides the model and its context (vLLM's own defaults otherwise)
ENGINE_ARGS = {"disable_log_requests": True, "gpu_memory_utilization": 0.9}
UNTESTED = (
    "vLLM backend: written only, never loaded here (vLLM needs a GPU and a tritonserver built with the vLLM "
    "backend, e.g. the nvcr.io/nvidia/tritonserver:<yy.mm>-vllm-python-py3 image); check it on such a server"
)


def build_config(name: str) -> mc.ModelConfig:
    """The vLLM backend's config: it fills in its own tensors (``text_input``... ``text_output``)."""
    model = mc.ModelConfig(name=name, backend="vllm")
    model.model_transaction_policy.decoupled = True
    model.instance_group.add(kind=mc.ModelInstanceGroup.Kind.KIND_MODEL, count=1)
    return model


def engine_args(model_path: Path, context: int | None) -> dict[str, object]:
    """``model.json``: the absolute path of the copied model (vLLM resolves a relative one against the
    server's working folder, not the repository), its context, :data:`ENGINE_ARGS`."""
    args: dict[str, object] = {"model": str(model_path)}
    if context:
        args["max_model_len"] = int(context)
    return {**args, **ENGINE_ARGS}


def _source(package: Package, request: DeployRequest) -> Path:
    if request.candidate not in (None, "source") and not str(request.candidate).startswith("source:"):
        raise UsageError(
            f"--backend vllm: candidate {request.candidate} is not the source model; vLLM loads the Hugging Face "
            "model itself, so only the package's source can be written for it",
            hint="Leave --candidate out (or give the source candidate) with --backend vllm.",
        )
    source = (package.document.model or ModelInfo()).source
    folder = package.path / source if source else None
    if folder is None or not (folder / "config.json").is_file():
        raise UsageError(
            f"--backend vllm: the package's source model {folder} is not a Hugging Face model folder (no config.json)",
            hint="Optimize a model saved with save_pretrained, or deploy without --backend vllm.",
        )
    if not any((folder / mark).is_file() for mark in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        raise UsageError(
            f"--backend vllm: the model at {folder} was saved without a tokenizer; Triton's vLLM backend takes "
            "text (text_input) and needs one",
            hint="Save the tokenizer beside the model (tokenizer.save_pretrained(folder)) and optimize again, "
            "or deploy without --backend vllm (the Python-backend model takes token ids).",
        )
    return folder


def contents(package: Package, request: DeployRequest, options: DeployOptions, repository: Path) -> Contents:
    """What ``deploy --backend vllm`` writes (see the module's docstring)."""
    refused = [
        flag
        for flag, given in (
            (f"--instances {options.instances}", options.instances not in (None, 1)),
            (f"--max-batch-size {options.max_batch_size}", bool(options.max_batch_size)),
            ("--dynamic-batching", bool(options.dynamic_batching)),
            ("--preferred-batch-sizes", bool(options.preferred_batch_sizes)),
            ("--queue-delay-us", options.queue_delay_us is not None),
            ("--trust-source", options.trust_source),
            (f"--max-sequences {options.max_sequences}", options.max_sequences is not None),
        )
        if given
    ]
    if refused:
        raise UsageError(
            f"--backend vllm: {', '.join(refused)} do not apply: vLLM batches sequences itself (continuous "
            "batching) in one KIND_MODEL instance",
            hint="Leave these out; set vLLM's engine arguments in model.json after deploying (max_num_seqs: the most "
            "sequences it decodes together).",
        )
    source = _source(package, request)
    name = servable.model_name(package, request.name)
    context = (package.document.model or ModelInfo()).max_positions
    copied = (repository / name / str(options.version) / MODEL_FOLDER).absolute()
    model_config = build_config(name)

    def fill(staged: Path) -> None:
        version_dir = staged / str(options.version)
        version_dir.mkdir(parents=True)
        shutil.copytree(source, version_dir / MODEL_FOLDER)
        text = json.dumps(engine_args(copied, context), indent=2) + "\n"
        (version_dir / "model.json").write_text(text)
        pbtxt.write(staged / "config.pbtxt", model_config)

    notes = (
        UNTESTED,
        f"model.json: the source model {(package.document.model or ModelInfo()).name} copied to {copied} "
        f"(absolute: rewrite it if the repository moves), max_model_len {context or 'vLLM default'}",
        "tensors: the vLLM backend's own (text_input, stream, sampling_parameters in; text_output out), "
        f"not sextant's input_ids; try: curl -X POST localhost:8000/v2/models/{name}/generate "
        "-d '{\"text_input\": \"Hello\", \"parameters\": {\"stream\": false, \"max_tokens\": 8}}'",
    )
    return Contents(name, fill, {}, notes)
