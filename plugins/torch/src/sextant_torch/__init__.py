"""sextant plugin for PyTorch.

Sources: ``nn.Module`` objects (API and ``file.py:factory``), TorchScript files (``.pt`` / ``.pth``
holding a ScriptModule), saved exported programs (``.pt2``). Exporters: TorchScript (trace, script),
``torch.export``, ONNX (the dynamo exporter and the TorchScript-based one). Runners on CPU and CUDA:
eager (the reference), TorchScript, exported program, ``torch.compile``; eager and compile also in
bf16/fp16 autocast when the user allows those precisions.

This module only declares specs: torch is imported by the callables, in the child processes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sextant.api import (
    ONNX,
    TORCH_EXPORTED,
    TORCH_MODULE,
    TORCHSCRIPT,
    TRANSFORMERS_CAUSAL_LM,
    ExporterSpec,
    GeneratorSpec,
    PartWrapperSpec,
    Param,
    Rejection,
    RunnerSpec,
    SourceModel,
    hookimpl,
)

_HALF = ("fp32", "bf16", "fp16")
_DEVICES = ("cpu", "cuda")


@hookimpl
def sextant_load_source(model: object, name: str | None, task: str) -> SourceModel | Rejection | None:
    if task != "forward" and isinstance(model, Path) and model.is_dir():
        from sextant_torch.generation import causal_architectures

        if causal_architectures(model):  # a save_pretrained folder of a causal LM
            from sextant_torch.generation import folder_generation_source

            return folder_generation_source(model, name)
    if isinstance(model, Path):
        if model.suffix == ".pt2":
            from sextant_torch.source import exported_source

            return exported_source(model, name)
        if model.suffix in (".pt", ".pth"):
            from sextant_torch.source import torchscript_source

            return torchscript_source(model, name)
        return None
    torch = sys.modules.get("torch")  # a torch model means torch is already imported
    if torch is not None and isinstance(model, torch.nn.Module):
        if task != "forward":
            from sextant_torch.generation import module_generation_source

            answer = module_generation_source(model, name, task)
            if answer is not None:
                return answer
        from sextant_torch.source import module_source

        return module_source(model, name)
    return None


@hookimpl
def sextant_register_exporters() -> list[ExporterSpec]:
    # torch.export's modules take seconds to import: named, the fork server imports them once
    exporting = ("torch", "torch._dynamo", "torch._functorch.aot_autograd")
    onnx_needs = (
        *exporting,
        "torch.onnx._internal.exporter._core",
        "onnx",
        "onnxscript",
        "onnxscript.function_libs.torch_lib.ops",
    )
    return [
        ExporterSpec(
            "torchscript-trace",
            TORCH_MODULE,
            TORCHSCRIPT,
            run="sextant_torch.export:trace",
            requires=("torch",),
            description="torch.jit.trace on the samples",
        ),
        ExporterSpec(
            "torchscript-script",
            TORCH_MODULE,
            TORCHSCRIPT,
            run="sextant_torch.export:script",
            requires=("torch",),
            description="torch.jit.script (models without data-dependent Python)",
        ),
        ExporterSpec(
            "torch-export",
            TORCH_MODULE,
            TORCH_EXPORTED,
            run="sextant_torch.export:export_program",
            requires=exporting,
            description="torch.export with dynamic dimensions from the samples",
        ),
        ExporterSpec(
            "torch-onnx",
            TORCH_MODULE,
            ONNX,
            run="sextant_torch.export:onnx_dynamo",
            requires=onnx_needs,
            description="torch.onnx.export(dynamo=True)",
        ),
        ExporterSpec(
            "torch-onnx-legacy",
            TORCH_MODULE,
            ONNX,
            run="sextant_torch.export:onnx_legacy",
            requires=("torch", "onnx"),
            description="the TorchScript-based torch.onnx exporter",
        ),
    ]


@hookimpl
def sextant_register_part_wrappers() -> list[PartWrapperSpec]:
    return [
        PartWrapperSpec(
            name="torch-module",
            wrapper="sextant_torch.pipelines:Module",
            framework="torch",
            requires=("torch",),
            install="pip install sextant-torch",
            description="torch.nn.Module parts of a pipeline (sextant.Module)",
        )
    ]


@hookimpl
def sextant_register_generators() -> list[GeneratorSpec]:
    needs = ("torch", "transformers")
    install = "pip install 'sextant-torch[generation]'"
    return [
        GeneratorSpec(
            "torch-generate",
            TRANSFORMERS_CAUSAL_LM,
            load="sextant_torch.generation:load_dynamic",
            devices=_DEVICES,
            requires=needs,
            install=install,
            reference=True,
            sequence_batching=True,  # where batches_sequences(model): sextant_torch.generation
            description="transformers' greedy generate loop: a dynamic KV cache, eager",
        ),
        GeneratorSpec(
            "torch-static-cache",
            TRANSFORMERS_CAUSAL_LM,
            load="sextant_torch.generation:load_static",
            devices=_DEVICES,
            precisions=("fp32", "int8"),
            requires=needs,
            install=install,
            description="a preallocated StaticCache, eager; fp32, or int8 weights (weight-only, per channel)",
        ),
        GeneratorSpec(
            "torch-static-compile",
            TRANSFORMERS_CAUSAL_LM,
            load="sextant_torch.generation:load_static_compiled",
            devices=_DEVICES,
            precisions=("fp32", "int8"),
            requires=needs,
            install=install,
            check="sextant_torch.checks:check_compile",
            slow_build=True,
            description="a StaticCache and torch.compile of the decode step; fp32, or int8 weights",
        ),
    ]


@hookimpl
def sextant_register_runners() -> list[RunnerSpec]:
    compile_modes = ("default", "reduce-overhead", "max-autotune")
    return [
        RunnerSpec(
            "torch-eager",
            TORCH_MODULE,
            load="sextant_torch.runners:load_eager",
            pickled="sextant_torch.checks:pickled_module",
            devices=_DEVICES,
            precisions=_HALF,
            requires=("torch",),
            reference=True,
            description="the nn.Module under inference_mode",
        ),
        RunnerSpec(
            "torch-compile",
            TORCH_MODULE,
            load="sextant_torch.runners:load_compiled",
            pickled="sextant_torch.checks:pickled_module",
            devices=_DEVICES,
            precisions=_HALF,
            requires=("torch",),
            check="sextant_torch.checks:check_compile",
            options=(Param("mode", "categorical", compile_modes, "default", "torch.compile mode"),),
            slow_build=True,
            description="torch.compile (inductor)",
        ),
        RunnerSpec(
            "torchscript",
            TORCHSCRIPT,
            load="sextant_torch.runners:load_torchscript",
            devices=_DEVICES,
            requires=("torch",),
            reference=True,
            description="a TorchScript module",
        ),
        RunnerSpec(
            "torch-exported",
            TORCH_EXPORTED,
            load="sextant_torch.runners:load_exported",
            devices=_DEVICES,
            # torch.export.load imports the last two: seconds, once in the fork server
            requires=("torch", "torch._dynamo", "torch._functorch.aot_autograd"),
            reference=True,
            description="a saved torch.export program",
        ),
    ]
