"""Runners: eager, torch.compile, TorchScript and exported programs, on CPU or CUDA.

Every runner pins torch's intra-op threads to the request, runs under ``inference_mode``, and in
``bf16`` / ``fp16`` wraps the call in ``torch.autocast`` for the device. Outputs come back as
float32 numpy arrays named as in ``sextant_torch.tensors``. On cuda a runner times the copies in,
the compute and the copies out apart with CUDA events (``stage_times``), and ``synchronize`` lets
the profiler read its clock only once the device is done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from sextant.api import RunnerRequest, Signature, StepError, cache_dir

from sextant_torch.source import load_module
from sextant_torch.tensors import call, to_numpy, to_torch

_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
STAGES = ("host_to_device", "compute", "device_to_host")


class TorchRunner:
    """Calls a torch callable on named numpy inputs."""

    def __init__(self, model: Callable[..., Any], request: RunnerRequest, call_style: str | None = None) -> None:
        self.model = model
        self.signature: Signature = request.signature
        if call_style and call_style != self.signature.call_style:
            self.signature = dataclasses.replace(self.signature, call_style=call_style)
        self.device = request.device
        self.precision = request.precision

    def _context(self) -> contextlib.AbstractContextManager[Any]:
        dtype = _AUTOCAST.get(self.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device, dtype=dtype)

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = to_torch(inputs, self.device)
        with torch.inference_mode(), self._context():
            result = call(self.model, tensors, self.signature)
        if self.device == "cuda":
            torch.cuda.synchronize()
        return to_numpy(result, self.signature)

    def close(self) -> None:
        self.model = None
        if self.device == "cuda":
            torch.cuda.empty_cache()


class CudaTorchRunner(TorchRunner):
    """A torch callable on cuda: each stage of a call between CUDA events, read once the call ends."""

    def __init__(self, model: Callable[..., Any], request: RunnerRequest, call_style: str | None = None) -> None:
        super().__init__(model, request, call_style)
        self.events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        self.totals = dict.fromkeys(STAGES, 0.0)
        self.calls = 0

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        start, copied, computed, done = self.events
        start.record()
        tensors = to_torch(inputs, self.device)
        copied.record()
        with torch.inference_mode(), self._context():
            result = call(self.model, tensors, self.signature)
        computed.record()
        outputs = to_numpy(result, self.signature)
        done.record()
        done.synchronize()
        for stage, (a, b) in zip(STAGES, ((start, copied), (copied, computed), (computed, done))):
            self.totals[stage] += a.elapsed_time(b)
        self.calls += 1
        return outputs

    def stage_times(self) -> dict[str, float]:
        times = {stage: total / max(self.calls, 1) for stage, total in self.totals.items()}
        self.totals = dict.fromkeys(STAGES, 0.0)
        self.calls = 0
        return times

    def synchronize(self) -> None:
        torch.cuda.synchronize()


def torch_runner(model: Callable[..., Any], request: RunnerRequest, call_style: str | None = None) -> TorchRunner:
    """The runner for ``model`` on the request's device (on cuda, one that times its stages)."""
    cls = CudaTorchRunner if request.device == "cuda" else TorchRunner
    return cls(model, request, call_style)


def _setup(request: RunnerRequest) -> None:
    torch.set_num_threads(request.threads)
    if request.device == "cuda" and not torch.cuda.is_available():
        raise StepError("torch sees no CUDA device", hint="Install a CUDA build of torch, or use --device cpu.")


def load_eager(request: RunnerRequest) -> TorchRunner:
    _setup(request)
    return torch_runner(load_module(request.artifact).to(request.device), request)


def load_compiled(request: RunnerRequest) -> TorchRunner:
    _setup(request)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
    model = load_module(request.artifact).to(request.device)
    mode = request.options.get("mode", "default")
    return torch_runner(torch.compile(model, mode=None if mode == "default" else mode), request)


def load_torchscript(request: RunnerRequest) -> TorchRunner:
    _setup(request)
    return torch_runner(torch.jit.load(str(request.artifact), map_location=request.device).eval(), request)


def load_exported(request: RunnerRequest) -> TorchRunner:
    _setup(request)
    program = torch.export.load(str(request.artifact))
    return torch_runner(program.module().to(request.device), request, _exported_call_style(program))


def _exported_call_style(program: Any) -> str | None:
    """How a saved program takes its inputs: as it was exported (positional or keyword), which a
    user's .pt2 file decides, not the samples."""
    try:
        _, kwargs_spec = program.call_spec.in_spec.children_specs
    except Exception:
        return None
    return "keyword" if kwargs_spec.num_leaves else "positional"
