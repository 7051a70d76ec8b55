"""sextant plugin for OpenVINO on the CPU.

Runners: ``openvino`` reads ONNX files (any the other plugins export or convert, and ONNX sources),
``openvino-ir`` reads OpenVINO IR (``model.xml`` + ``model.bin``); both compile for OpenVINO's CPU
plugin with the candidate's precision as its inference precision (fp32 is forced to f32, which
OpenVINO would otherwise lower to bf16 on CPUs with AMX; bf16 where sextant's precision policy plans
it) and the performance hint, streams and threads as searchable options. Converter: a saved ``torch.export`` program (the torch plugin's
``torch-export`` step, or a ``.pt2`` source) → IR through ``openvino.convert_model``. Generator
(``--task text-generation``): ``openvino-stateful``, a ``transformers`` causal LM converted to a
stateful IR (the KV cache kept in the infer request; :mod:`.stateful_build`), fp32, and int8
weights when nncf is installed; ``openvino-genai``, openvino-genai's continuous-batching pipeline on
the same IR, its own generation loop streaming the ids (:mod:`.genai_generator`; the ``genai`` extra).

This module only declares specs: openvino (and torch, for the converter) are imported by the
callables, in the child processes.
"""

from __future__ import annotations

import importlib.util

from sextant.api import (
    ONNX,
    TORCH_EXPORTED,
    TRANSFORMERS_CAUSAL_LM,
    ConverterSpec,
    Format,
    GeneratorSpec,
    Param,
    RunnerSpec,
    hookimpl,
)

#: OpenVINO's own model format: ``model.xml`` (the graph) beside ``model.bin`` (the weights)
OPENVINO_IR = Format("openvino-ir")

_NEEDS = ("openvino",)
_INSTALL = "pip install sextant-openvino (it installs openvino from the package index)"

#: fp32 runs as OpenVINO's f32 inference precision, bf16 as its bf16; whether bf16 is planned is
#: sextant's precision policy (``--precision``; ``auto``: where the CPU computes it natively). fp16 is
#: left out: OpenVINO computes f16 only on CPUs with AMX-FP16 or AVX512-FP16 (elsewhere it silently
#: runs f32), and an fp16 artifact (``onnx-fp16``) runs here in f32, which its tolerance covers.
PRECISIONS = ("fp32", "bf16")

OPTIONS = (
    Param(
        "performance_hint",
        "categorical",
        ("latency", "throughput"),
        "latency",
        "OpenVINO's PERFORMANCE_HINT; under throughput a batch is split across the streams it creates",
    ),
    Param(
        "num_streams",
        "categorical",
        (0, 1, 2, 4, 8),
        0,
        "NUM_STREAMS (parallel inference streams); 0: as the performance hint chooses",
    ),
    Param(
        "cpu_pinning",
        "categorical",
        (False, True),
        False,
        "ENABLE_CPU_PINNING: pin inference threads to cores (OpenVINO's own default on Linux; a pinned thread "
        "waits for its core when another process holds it, so off unless measured faster)",
    ),
    Param(
        "inference_num_threads",
        "categorical",
        (0, 1, 2, 4, 8, 16),
        0,
        "INFERENCE_NUM_THREADS; 0: as many as sextant gives the runner",
        thread_count=True,
    ),
)


@hookimpl
def sextant_register_converters() -> list[ConverterSpec]:
    return [
        ConverterSpec(
            "openvino",
            TORCH_EXPORTED,
            OPENVINO_IR,
            run="sextant_openvino.convert:from_exported_program",
            # reading the program imports the last three: seconds, once in the fork server
            requires=(
                "openvino",
                "torch",
                "torch._dynamo",
                "torch._functorch.aot_autograd",
                "openvino.frontend.pytorch.fx_decoder",
            ),
            install=_INSTALL,
            description="openvino.convert_model on the torch.export program, saved as IR with fp32 weights",
        ),
    ]


def _runner(name: str, consumes: Format, reads: str) -> RunnerSpec:
    return RunnerSpec(
        name,
        consumes,
        load="sextant_openvino.runner:load",
        precisions=PRECISIONS,
        requires=_NEEDS,
        options=OPTIONS,
        variants=({"performance_hint": "throughput"},),
        install=_INSTALL,
        description=f"OpenVINO's CPU plugin on {reads}",
    )


@hookimpl
def sextant_register_runners() -> list[RunnerSpec]:
    return [
        _runner("openvino", ONNX, "the ONNX file (read by its ONNX frontend)"),
        _runner("openvino-ir", OPENVINO_IR, "OpenVINO IR"),
    ]


def _stateful_precisions() -> tuple[tuple[str, ...], str]:
    """fp32, and int8 (weight-only, by nncf) when nncf is installed; else why not, for the description."""
    if importlib.util.find_spec("nncf") is not None:
        return ("fp32", "int8"), "fp32, or int8 weights by nncf.compress_weights"
    return ("fp32",), "fp32 (int8 weights not offered: nncf is not installed; pip install 'sextant-openvino[int8]')"


@hookimpl
def sextant_register_generators() -> list[GeneratorSpec]:
    precisions, said = _stateful_precisions()
    threads = tuple(p for p in OPTIONS if p.name in ("cpu_pinning", "inference_num_threads"))
    return [
        GeneratorSpec(
            "openvino-stateful",
            TRANSFORMERS_CAUSAL_LM,
            load="sextant_openvino.stateful_generator:load",
            build="sextant_openvino.stateful_build:build",
            precisions=precisions,
            requires=("openvino", "torch", "transformers"),
            options=threads,
            install="pip install 'sextant-openvino[generation]'",
            description="OpenVINO's CPU plugin on a stateful IR (openvino.convert_model, the KV cache kept in the "
            f"infer request): {said}",
        ),
        GeneratorSpec(
            "openvino-genai",
            TRANSFORMERS_CAUSAL_LM,
            load="sextant_openvino.genai_generator:load",
            build="sextant_openvino.genai_generator:build",
            precisions=precisions,
            requires=("openvino_genai", "openvino", "torch", "transformers"),
            options=threads,
            sequence_batching=True,  # a StreamBatcher: requests added to and cancelled in its running loop
            install="pip install 'sextant-openvino[generation,genai]'",
            description="openvino-genai's continuous-batching pipeline (its scheduler, paged KV cache and greedy "
            f"sampler) on the stateful IR, streaming each step's ids: {said}",
        ),
    ]
