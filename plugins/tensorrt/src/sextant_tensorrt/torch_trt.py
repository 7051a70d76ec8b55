"""Torch-TensorRT: a ``torch.export`` program compiled into TensorRT subgraphs, saved as an exported
program, and run through the torch plugin's runner (``sextant-torch``, the ``[torch]`` extra)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch_tensorrt
from sextant.api import RunnerRequest, StepRequest, load_batches, resize_batch
from sextant_torch.runners import TorchRunner, torch_runner
from sextant_torch.tensors import to_torch

from sextant_tensorrt.profiles import derive_profile

_ENABLED = {"fp32": {torch.float32}, "fp16": {torch.float16, torch.float32}, "bf16": {torch.bfloat16, torch.float32}}


def compile_exported(request: StepRequest) -> Path:
    signature = request.signature
    batches = load_batches(request.samples)
    ranges = derive_profile(signature, batches, request.max_batch)
    first = to_torch(resize_batch(batches[0], min(2, request.max_batch), signature), "cuda")
    specs = {
        name: torch_tensorrt.Input(min_shape=low, opt_shape=opt, max_shape=high, dtype=first[name].dtype, name=name)
        for name, (low, opt, high) in ranges.items()
    }
    program = torch.export.load(str(request.input))
    positional = signature.call_style == "positional"
    arg_specs = [specs[n] for n in signature.input_names] if positional else []
    kwarg_specs = {} if positional else specs
    compiled = torch_tensorrt.dynamo.compile(
        program,
        arg_inputs=arg_specs,
        kwarg_inputs=kwarg_specs,
        enabled_precisions=_ENABLED[request.options.get("precision", "fp32")],
    )
    path = request.output_dir / "model.pt2"
    torch_tensorrt.save(
        compiled,
        str(path),
        output_format="exported_program",
        arg_inputs=[first[n] for n in signature.input_names] if positional else [],
        kwarg_inputs={} if positional else first,
    )
    return path


def load(request: RunnerRequest) -> TorchRunner:
    torch.set_num_threads(request.threads)
    program = torch.export.load(str(request.artifact))
    return torch_runner(program.module(), request)
