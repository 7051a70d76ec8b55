"""The engine runner: inputs and outputs stay in CUDA buffers (torch tensors) allocated once per
input shape; each call copies the batch in, enqueues the engine on its own stream, and copies the
outputs out. With ``cuda_graph`` the enqueue is captured once per shape and replayed.

Copies in, compute and copies out are timed with CUDA events; ``stage_times`` reports them, and the
profiler records them with each batch size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorrt as trt
import torch
from sextant.api import ModelLoadError, RunnerRequest, StepError, ignored_inputs

from sextant_tensorrt.profiles import Shape, pick_profile

STAGES = ("host_to_device", "compute", "device_to_host")
_DTYPES = {
    trt.DataType.FLOAT: torch.float32,
    trt.DataType.HALF: torch.float16,
    trt.DataType.BF16: torch.bfloat16,
    trt.DataType.INT32: torch.int32,
    trt.DataType.INT64: torch.int64,
    trt.DataType.INT8: torch.int8,
    trt.DataType.UINT8: torch.uint8,
    trt.DataType.BOOL: torch.bool,
}


@dataclass
class _Buffers:
    """The device tensors for one set of input shapes, and its captured graph."""

    shapes: dict[str, Shape]
    inputs: dict[str, torch.Tensor]
    outputs: dict[str, torch.Tensor]
    graph: torch.cuda.CUDAGraph | None = None


class EngineRunner:
    def __init__(self, request: RunnerRequest) -> None:
        if not torch.cuda.is_available():
            raise StepError("torch sees no CUDA device; the engine runner needs one", hint="Use --device cpu.")
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(request.artifact.read_bytes())
        if self.engine is None:
            raise ModelLoadError(
                f"TensorRT {trt.__version__} cannot load {request.artifact.name}",
                hint="Engines only load on the TensorRT version and GPU they were built with; rebuild it.",
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.ignored = ignored_inputs(request.signature, self.input_names)
        self.output_names = [n for n in names if n not in self.input_names]
        self.ranges = [
            {n: tuple(tuple(dims) for dims in self.engine.get_tensor_profile_shape(n, p)) for n in self.input_names}
            for p in range(self.engine.num_optimization_profiles)
        ]
        self.stream = torch.cuda.Stream()
        self.cuda_graph = bool(request.options.get("cuda_graph"))
        self.buffers: dict[tuple[Shape, ...], _Buffers] = {}
        self.current: _Buffers | None = None
        self.profile: int | None = None
        self.events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        self.totals = dict.fromkeys(STAGES, 0.0)
        self.calls = 0

    def _bind(self, shapes: dict[str, Shape]) -> _Buffers:
        """Buffers for these shapes, with the context set up for them."""
        key = tuple(shapes[n] for n in self.input_names)
        entry = self.buffers.get(key)
        if entry is not None and entry is self.current:
            return entry
        profile = pick_profile(shapes, self.ranges)
        if profile != self.profile:
            self.context.set_optimization_profile_async(profile, self.stream.cuda_stream)
            self.profile = profile
        for name in self.input_names:
            self.context.set_input_shape(name, shapes[name])
        if entry is None:
            inputs = {n: self._empty(n, shapes[n]) for n in self.input_names}
            outputs = {}
            for name in self.output_names:
                shape = tuple(self.context.get_tensor_shape(name))
                if any(d < 0 for d in shape):
                    raise StepError(
                        f"output {name!r} has a data-dependent shape {shape}, which this runner does not support"
                    )
                outputs[name] = self._empty(name, shape)
            entry = self.buffers[key] = _Buffers(shapes, inputs, outputs)
        for name, tensor in {**entry.inputs, **entry.outputs}.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        self.current = entry
        return entry

    def _empty(self, name: str, shape: Shape) -> torch.Tensor:
        return torch.empty(shape, dtype=_DTYPES[self.engine.get_tensor_dtype(name)], device="cuda")

    def _enqueue(self, entry: _Buffers) -> None:
        if entry.graph is not None:
            entry.graph.replay()
            return
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise StepError("TensorRT failed to enqueue the engine (see the log for its message)")
        if self.cuda_graph:  # captured after one plain run at these shapes, as TensorRT requires
            self.stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self.stream):
                self.context.execute_async_v3(self.stream.cuda_stream)
            entry.graph = graph

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.ignored:
            inputs = {name: array for name, array in inputs.items() if name not in self.ignored}
        unknown = set(inputs) - set(self.input_names)
        if unknown:
            raise StepError(f"the engine has no input {sorted(unknown)}; it takes {self.input_names}")
        entry = self._bind({name: tuple(np.shape(inputs[name])) for name in self.input_names})
        start, copied, computed, done = self.events
        with torch.cuda.stream(self.stream):
            start.record(self.stream)
            for name, tensor in entry.inputs.items():
                tensor.copy_(torch.from_numpy(np.ascontiguousarray(inputs[name])), non_blocking=True)
            copied.record(self.stream)
            self._enqueue(entry)
            computed.record(self.stream)
            result = {name: _to_host(tensor) for name, tensor in entry.outputs.items()}
            done.record(self.stream)
        self.stream.synchronize()
        for stage, (a, b) in zip(STAGES, ((start, copied), (copied, computed), (computed, done))):
            self.totals[stage] += a.elapsed_time(b)
        self.calls += 1
        return {name: tensor.numpy() for name, tensor in result.items()}

    def stage_times(self) -> dict[str, float]:
        times = {stage: total / max(self.calls, 1) for stage, total in self.totals.items()}
        self.totals = dict.fromkeys(STAGES, 0.0)
        self.calls = 0
        return times

    def close(self) -> None:
        self.buffers.clear()
        self.current = None
        self.context = None
        self.engine = None
        torch.cuda.empty_cache()


def _to_host(tensor: torch.Tensor) -> Any:
    if tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.float()
    return tensor.to("cpu", non_blocking=True)


def load(request: RunnerRequest) -> EngineRunner:
    return EngineRunner(request)
