"""sextant plugin for NVIDIA TensorRT.

Converters: ONNX → TensorRT engine in fp32 (TF32 off), tf32, fp16, bf16 and int8 (entropy
calibration on the run's samples), with one optimisation profile derived from the samples'
shapes and a timing cache per TensorRT version, GPU and driver; and ``torch.export`` program →
Torch-TensorRT. Runners: engines (device buffers, optional CUDA graphs, copy and compute times
reported apart) and Torch-TensorRT programs. Every contribution needs an NVIDIA GPU; the packages
``tensorrt`` and ``torch-tensorrt`` come with the ``[runtime]`` extra, so installing this
distribution never fails where NVIDIA's index cannot be reached.

This module only declares specs: TensorRT is imported by the callables, in the child processes.
"""

from __future__ import annotations

from sextant.api import (
    ONNX,
    TENSORRT_ENGINE,
    TORCH_EXPORTED,
    TORCH_TENSORRT,
    ConverterSpec,
    Param,
    RunnerSpec,
    hookimpl,
)

INSTALL = "pip install 'sextant-tensorrt[runtime]'; the wheels come from NVIDIA's index, pypi.nvidia.com"
_ENGINE_NEEDS = ("tensorrt", "torch")
_TORCH_TRT_NEEDS = ("torch", "torch_tensorrt", "sextant_torch")
# sextant_tensorrt.torch_trt imports the torch plugin: the [torch] extra declares it
_TORCH_TRT_INSTALL = INSTALL + ", and the torch plugin: pip install ./plugins/torch './plugins/tensorrt[torch]'"


def _engine(precision: str) -> ConverterSpec:
    suffix = "" if precision == "fp32" else f"-{precision}"
    return ConverterSpec(
        f"tensorrt{suffix}",
        ONNX,
        TENSORRT_ENGINE,
        run="sextant_tensorrt.build:build_engine",
        requires=_ENGINE_NEEDS,
        precision=precision,
        options={"precision": precision, "optimization_level": 3},
        device="cuda",
        install=INSTALL,
        description=f"TensorRT engine, {precision}" + (" calibrated on the samples" if precision == "int8" else ""),
    )


def _torch_trt(precision: str) -> ConverterSpec:
    suffix = "" if precision == "fp32" else f"-{precision}"
    return ConverterSpec(
        f"torch-tensorrt{suffix}",
        TORCH_EXPORTED,
        TORCH_TENSORRT,
        run="sextant_tensorrt.torch_trt:compile_exported",
        requires=_TORCH_TRT_NEEDS,
        precision=precision,
        options={"precision": precision},
        device="cuda",
        install=_TORCH_TRT_INSTALL,
        description=f"Torch-TensorRT (dynamo) on the exported program, {precision}",
    )


@hookimpl
def sextant_register_converters() -> list[ConverterSpec]:
    return [
        *(_engine(p) for p in ("fp32", "tf32", "fp16", "bf16", "int8")),
        *(_torch_trt(p) for p in ("fp32", "fp16")),
    ]


@hookimpl
def sextant_register_runners() -> list[RunnerSpec]:
    return [
        RunnerSpec(
            "tensorrt",
            TENSORRT_ENGINE,
            load="sextant_tensorrt.runner:load",
            devices=("cuda",),
            requires=_ENGINE_NEEDS,
            options=(Param("cuda_graph", "categorical", (False, True), False, "replay the enqueue as a CUDA graph"),),
            variants=({"cuda_graph": True},),
            install=INSTALL,
            description="a TensorRT engine with device buffers; copies and compute timed apart",
        ),
        RunnerSpec(
            "torch-tensorrt",
            TORCH_TENSORRT,
            load="sextant_tensorrt.torch_trt:load",
            devices=("cuda",),
            requires=_TORCH_TRT_NEEDS,
            install=_TORCH_TRT_INSTALL,
            description="a Torch-TensorRT exported program",
        ),
    ]
