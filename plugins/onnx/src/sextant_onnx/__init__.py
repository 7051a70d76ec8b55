"""sextant plugin for ONNX and ONNX Runtime.

Source: ``.onnx`` files (external data kept beside them), with their declared signature, so no
samples are needed. Converters: onnxslim simplification, fp16 (onnxconverter-common, inputs/outputs
kept fp32), dynamic int8 quantisation. (ONNX Runtime's offline-optimised model is not offered: the
runner applies the same optimisations when it creates its session, so it would only add a tie.) Runners: ONNX
Runtime on the CPU execution provider, the CUDA one with ``onnxruntime-gpu``, TensorRT's through
ONNX Runtime, and OpenVINO's with ``onnxruntime-openvino``. Generator (``--task text-generation``):
``onnxruntime-kv``, a ``transformers`` causal LM exported with past key values and run by ONNX
Runtime with I/O binding (the export needs torch and transformers: the ``generation`` extra; fp32,
and weight-only int8 / int4 ``MatMulNBits`` when ``--precision`` allows them);
``onnxruntime-genai``, the graph onnxruntime-genai's model builder writes (fp32, and weight-only
int8 / int4 when ``--precision`` allows them) run by its own generation loop (the ``genai`` extra).

Format: ONNX's canonical fingerprint (:mod:`sextant_onnx.canonical`), so an artifact that differs
from another only in its producer, doc strings and names is measured once. The CPU runner's
fingerprint (:mod:`sextant_onnx.fingerprint`): the graph ONNX Runtime optimised, so two files it
optimises to one graph (an export and its onnxslim rewrite, often) are profiled once.

This module only declares specs; onnx and onnxruntime are imported by the callables.
"""

from __future__ import annotations

from pathlib import Path

from sextant.api import (
    ONNX,
    TRANSFORMERS_CAUSAL_LM,
    ConverterSpec,
    FormatSpec,
    GeneratorSpec,
    Param,
    RunnerSpec,
    SourceModel,
    hookimpl,
)

ORT = ("onnxruntime",)

SESSION_OPTIONS = (
    Param(
        "graph_optimization_level",
        "categorical",
        ("all", "extended", "basic", "disable"),
        "all",
        "ONNX Runtime graph optimisation level",
    ),
    Param(
        "intra_op_threads",
        "categorical",
        (0, 1, 2, 4, 8, 16),
        0,
        "threads inside one operator; 0: as many as sextant gives the runner",
        thread_count=True,
    ),
    Param(
        "execution_mode",
        "categorical",
        ("sequential", "parallel"),
        "sequential",
        "run independent branches of the graph in parallel",
    ),
)
CUDA_OPTIONS = (
    Param("io_binding", "categorical", (False, True), False, "bind inputs/outputs to avoid copies", devices=("cuda",)),
)


@hookimpl
def sextant_load_source(model: object, name: str | None) -> SourceModel | None:
    if isinstance(model, Path) and model.suffix == ".onnx":
        from sextant_onnx.source import onnx_source

        return onnx_source(model, name)
    return None


@hookimpl
def sextant_register_formats() -> list[FormatSpec]:
    return [
        FormatSpec(
            ONNX,
            canonical_hash="sextant_onnx.canonical:canonical_hash",
            requires=("onnx",),
            description="canonical fingerprint: the graph without producer, doc strings and names",
        )
    ]


@hookimpl
def sextant_register_converters() -> list[ConverterSpec]:
    return [
        ConverterSpec(
            "onnx-slim",
            ONNX,
            ONNX,
            run="sextant_onnx.convert:slim",
            requires=("onnx", "onnxslim"),
            description="onnxslim: constant folding, dead code, fusions",
        ),
        ConverterSpec(
            "onnx-fp16",
            ONNX,
            ONNX,
            run="sextant_onnx.convert:to_fp16",
            precision="fp16",
            requires=("onnx", "onnxconverter_common"),
            options={"keep_io_types": True},
            description="weights and compute in float16; inputs/outputs stay float32",
        ),
        ConverterSpec(
            "onnx-int8",
            ONNX,
            ONNX,
            run="sextant_onnx.convert:quantize_int8",
            precision="int8",
            requires=("onnx", *ORT),
            description="ONNX Runtime dynamic int8 quantisation",
        ),
    ]


@hookimpl
def sextant_register_runners() -> list[RunnerSpec]:
    return [
        RunnerSpec(
            "onnxruntime",
            ONNX,
            load="sextant_onnx.runner:load",
            devices=("cpu", "cuda"),
            requires=ORT,
            options=SESSION_OPTIONS + CUDA_OPTIONS,
            variants=({"intra_op_threads": 1},),
            check="sextant_onnx.checks:check_ort",
            reference=True,
            description="ONNX Runtime: CPU execution provider, CUDA with onnxruntime-gpu",
        ),
        RunnerSpec(
            "onnxruntime-trt",
            ONNX,
            load="sextant_onnx.runner:load_tensorrt",
            devices=("cuda",),
            requires=ORT,
            options=SESSION_OPTIONS,
            check="sextant_onnx.checks:check_ort_tensorrt",
            description="ONNX Runtime's TensorRT execution provider",
        ),
        RunnerSpec(
            "onnxruntime-openvino",
            ONNX,
            load="sextant_onnx.runner:load_openvino",
            requires=ORT,
            options=SESSION_OPTIONS,
            check="sextant_onnx.checks:check_ort_openvino",
            description="ONNX Runtime's OpenVINO execution provider",
        ),
    ]


@hookimpl
def sextant_register_generators() -> list[GeneratorSpec]:
    return [
        GeneratorSpec(
            "onnxruntime-kv",
            TRANSFORMERS_CAUSAL_LM,
            load="sextant_onnx.kv_generator:load",
            build="sextant_onnx.kv_export:export",
            devices=("cpu", "cuda"),
            precisions=("fp32", "int8", "int4"),
            requires=("onnx", *ORT, "torch", "transformers"),
            options=(
                Param(
                    "io_binding",
                    "categorical",
                    (True, False),
                    True,
                    "keep the KV cache in ONNX Runtime's values between steps (no copies)",
                ),
            ),
            check="sextant_onnx.checks:check_ort",
            install="pip install 'sextant-onnx[cpu,generation]'",
            description="ONNX Runtime on one graph with past key values (torch.onnx export), I/O binding; "
            "fp32, or int8/int4 weights (MatMulNBits, weight-only)",
        ),
        GeneratorSpec(
            "onnxruntime-genai",
            TRANSFORMERS_CAUSAL_LM,
            load="sextant_onnx.genai:load",
            build="sextant_onnx.genai_build:build",
            precisions=("fp32", "int8", "int4"),
            requires=("onnxruntime_genai", *ORT, "torch", "transformers"),
            install="pip install 'sextant-onnx[cpu,genai]'",
            description="onnxruntime-genai: its model builder's graph (fp32; int8/int4 weights) and its generation loop",
        ),
    ]
