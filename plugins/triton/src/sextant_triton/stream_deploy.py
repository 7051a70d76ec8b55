"""``sextant deploy triton`` of a text-generation package: a streaming (decoupled) Python-backend model.

The layout, for a model named ``lm`` at version 1::

    REPOSITORY/lm/config.pbtxt        decoupled: true, max_batch_size 0, the tensors of
                                      :mod:`sextant_triton.stream_protocol`
    REPOSITORY/lm/1/model.py          :mod:`sextant_triton.stream_model`
    REPOSITORY/lm/1/package/          a one-candidate package (the generator's record and artifact)
    REPOSITORY/lm/1/tokenizer/        the tokenizer's files, when the model was saved with one
    lm_client.py, lm_client_inputs.npz next to REPOSITORY: a gRPC streaming example and its prompt

Triton has no native backend for a sextant generator (vLLM and TensorRT-LLM are GPU backends with
their own model folders: ``--backend vllm`` writes the vLLM one, :mod:`sextant_triton.vllm_deploy`),
so it runs through the Python backend; Triton batches nothing (``max_batch_size 0``): each request
is one sequence, generated token by token. Where the generator batches sequences
(:class:`sextant.api.SequenceBatcher`: ``torch-generate``; :class:`sextant.api.StreamBatcher`:
``openvino-genai``), each instance decodes the requests it holds together, up to the config's
``sextant_max_sequences`` (``--max-sequences``, default 8; continuous batching,
:mod:`sextant_triton.stream_scheduler`); any other generator serves one request at a time per
instance (``--instances``, default 1), and ``--max-sequences`` above 1 gets a note that it has no
effect. The config's ``context_length`` and
``vocab_size`` parameters (the model's positions and vocabulary) are what ``sextant analyze
--model-type llm`` checks its prompts against. Writing goes through
:func:`sextant_triton.install.install` like any other deployment.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sextant.api import ModelInfo, UsageError, chosen_candidate, one_candidate_package
from tritonclient.grpc import model_config_pb2 as mc

from sextant_triton import client, servable
from sextant_triton import config as pbtxt
from sextant_triton import stream_protocol as sp
from sextant_triton.install import Contents
from sextant_triton.stream_scheduler import DEFAULT_MAX_SEQUENCES, MAX_SEQUENCES_PARAMETER, unused_note

if TYPE_CHECKING:
    from sextant.api import CandidateView, DeployRequest, Package

    from sextant_triton.settings import DeployOptions

STREAM_MODEL = Path(__file__).with_name("stream_model.py")
#: files that make up a saved tokenizer (``save_pretrained``); ``config.json`` names its class when
#: ``tokenizer_config.json`` does not
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
    "config.json",
)
#: a folder holds a tokenizer when it has one of these
TOKENIZER_MARKS = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def tokenizer_folder(view: CandidateView) -> Path | None:
    """Where the model's tokenizer was saved: the candidate's artifact folder, else the source's
    ``save_pretrained`` folder; ``None`` when neither has one."""
    folders = [view.artifact]
    source = (view.package.document.model or ModelInfo()).source
    if source:
        folders.append(view.package.path / source)
    for folder in folders:
        if folder.is_dir() and any((folder / mark).is_file() for mark in TOKENIZER_MARKS):
            return folder
    return None


def _refuse_batching(options: DeployOptions) -> None:
    if options.backend == "native":
        raise UsageError(
            "--backend native: no native Triton backend runs a sextant generator (vLLM and TensorRT-LLM "
            "take model folders of their own)",
            hint="Leave --backend out (or --backend python): the package deploys as a streaming Python-backend model; "
            "--backend vllm writes Triton's vLLM-backend folder for a GPU server.",
        )
    given = {
        f"--max-batch-size {options.max_batch_size}": bool(options.max_batch_size),
        "--dynamic-batching": bool(options.dynamic_batching),
        "--preferred-batch-sizes": bool(options.preferred_batch_sizes),
        "--queue-delay-us": options.queue_delay_us is not None,
    }
    refused = [flag for flag, set_ in given.items() if set_]
    if refused:
        raise UsageError(
            f"{', '.join(refused)}: a text-generation package deploys as a streaming Python-backend model, "
            "which Triton does not batch (max_batch_size 0: each request is one sequence, streamed token by token)",
            hint="Leave these out: where the generator supports it, each instance batches the requests it holds "
            f"at the decode step (up to --max-sequences, default {DEFAULT_MAX_SEQUENCES}); --instances adds instances.",
        )


def build_config(
    name: str, *, tokenizer: bool, instances: int, kind: str, parameters: dict[str, str]
) -> mc.ModelConfig:
    """The decoupled model's configuration (see :mod:`sextant_triton.stream_protocol` for the tensors)."""
    model = mc.ModelConfig(name=name, backend="python", max_batch_size=0)
    # input_ids is the prompt unless text_input can be: then one of the two
    model.input.add(name=sp.INPUT_IDS, data_type=mc.TYPE_INT64, dims=[-1], optional=tokenizer)
    model.input.add(name=sp.MAX_TOKENS, data_type=mc.TYPE_INT32, dims=[1], optional=True)
    model.input.add(name=sp.STREAM, data_type=mc.TYPE_BOOL, dims=[1], optional=True)
    if tokenizer:
        model.input.add(name=sp.TEXT_INPUT, data_type=mc.TYPE_STRING, dims=[1], optional=True)
    # declared as the vLLM backend declares it: GenAI-Perf's gRPC path sends it with every request
    model.input.add(name=sp.EXCLUDE_INPUT, data_type=mc.TYPE_BOOL, dims=[1], optional=True)
    model.output.add(name=sp.OUTPUT_IDS, data_type=mc.TYPE_INT64, dims=[-1])
    if tokenizer:
        model.output.add(name=sp.TEXT_OUTPUT, data_type=mc.TYPE_STRING, dims=[-1])
    model.model_transaction_policy.decoupled = True
    model.instance_group.add(kind=mc.ModelInstanceGroup.Kind.Value(kind), count=instances)
    for key, value in parameters.items():
        model.parameters[key].string_value = value
    return model


def _first_prompt(package: Package) -> np.ndarray:
    """The package's first prompt (``inputs.npz``: ``prompt_0``, ...), for the client example."""
    path = package.path / "inputs.npz"
    if path.is_file():
        with np.load(path) as data:
            if data.files:
                first = sorted(data.files, key=lambda k: (len(k), k))[0]
                return np.asarray(data[first], dtype=np.int64).reshape(-1)
    return np.arange(1, 9, dtype=np.int64)


def contents(package: Package, request: DeployRequest, options: DeployOptions, repository: Path) -> Contents:
    """What ``deploy`` writes for a text-generation package (see the module's docstring);
    ``--backend vllm``: :mod:`sextant_triton.vllm_deploy`'s folder instead."""
    if options.backend == "vllm":
        from sextant_triton import vllm_deploy

        return vllm_deploy.contents(package, request, options, repository)
    _refuse_batching(options)
    view = chosen_candidate(package, request.candidate)
    servable.require(package, view, servable.runner_need, "deploy to the Python backend")
    view.verify(trust_source=options.trust_source)
    name = servable.model_name(package, request.name)
    tokenizer = tokenizer_folder(view)
    document = package.document
    new_tokens = int((document.generation or {}).get("new_tokens") or 32)
    most = options.max_sequences or DEFAULT_MAX_SEQUENCES  # checked (at least 1) by DeployOptions
    parameters = {
        "sextant_candidate": view.id,
        sp.DEFAULT_TOKENS_PARAMETER: str(new_tokens),
        MAX_SEQUENCES_PARAMETER: str(most),
    }
    model = document.model or ModelInfo()
    said = ((sp.CONTEXT_PARAMETER, model.max_positions), (sp.VOCAB_PARAMETER, model.vocab_size))
    for key, value in said:
        if value:  # read by `sextant analyze --model-type llm` (prompt lengths, token ids)
            parameters[key] = str(int(value))
    if options.trust_source:
        parameters[pbtxt.TRUST_PARAMETER] = "true"
    kind = "KIND_GPU" if view.record.device == "cuda" else "KIND_CPU"
    instances = options.instances or 1
    model_config = build_config(
        name, tokenizer=tokenizer is not None, instances=instances, kind=kind, parameters=parameters
    )

    def fill(staged: Path) -> None:
        version_dir = staged / str(options.version)
        version_dir.mkdir(parents=True)
        shutil.copy2(STREAM_MODEL, version_dir / "model.py")
        one_candidate_package(view, version_dir / "package")
        if tokenizer is not None:
            target = version_dir / sp.TOKENIZER_FOLDER
            target.mkdir()
            for file in TOKENIZER_FILES:
                if (tokenizer / file).is_file():
                    shutil.copy2(tokenizer / file, target / file)
        pbtxt.write(staged / "config.pbtxt", model_config)

    script = repository.parent / f"{name}_client.py"
    npz = script.with_name(f"{name}_client_inputs.npz")
    client_files = {
        script: client.stream_example(name, script.name, npz.name, text=tokenizer is not None).encode(),
        npz: client.request_file({sp.INPUT_IDS: _first_prompt(package)}),
    }
    served = f"{sp.INPUT_IDS}" + (f" or {sp.TEXT_INPUT}" if tokenizer is not None else "")
    runner = view.record.runner
    batches = view.batches_sequences()
    if batches:
        batching = (
            f"each instance decodes up to {most} requests together where its generator joins and leaves a running "
            f"batch (continuous batching, --max-sequences; {MAX_SEQUENCES_PARAMETER} in config.pbtxt), else one at "
            "a time: the server's log says which at load"
        )
    else:
        batching = f"the {runner} generator serves one request at a time per instance (--instances adds instances)"
    notes = [
        f"streaming: decoupled Python-backend model running sextant's {view.record.runner} generator; "
        f"one response per token ({sp.STREAM} false: one response), prompt as {served}, "
        f"{sp.MAX_TOKENS} default {new_tokens} (the package's --new-tokens)",
        f"tokenizer: from {tokenizer} ({sp.TEXT_INPUT} / {sp.TEXT_OUTPUT} served)"
        if tokenizer is not None
        else "no tokenizer was saved with the model: it takes and answers token ids only",
        f"{instances} {kind[5:]} instance(s), max_batch_size 0: Triton does not batch a streaming generator; "
        + batching,
        f"the server's Python needs sextant, sextant-triton and {view.record.plugin.split()[0]} installed",
    ]
    unused = None if batches else unused_note(runner, options.max_sequences, "--instances adds instances")
    if unused is not None:
        notes.append(unused)
    if warning := servable.screened_warning(view):
        notes.insert(0, warning)
    return Contents(name, fill, client_files, tuple(notes))
