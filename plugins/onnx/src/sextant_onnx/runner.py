"""ONNX Runtime runners; session options come from the runner's searchable options."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument
from sextant.api import ModelLoadError, RunnerRequest, SampleError, cache_dir, ignored_inputs
from sextant_onnx.fingerprint import fingerprint

_LEVELS = {
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}


class OrtRunner:
    def __init__(self, request: RunnerRequest, providers: Sequence[Any]) -> None:
        self.request, self.providers = request, list(providers)
        try:
            so = session_options(request)
            self.session = ort.InferenceSession(str(request.artifact), so, providers=self.providers)
        except Exception as exc:  # ORT raises its own exception types for bad models and missing ops
            raise ModelLoadError(
                f"ONNX Runtime cannot load {request.artifact.name}: {exc}", hint=_hint(request)
            ) from exc
        wanted = [p if isinstance(p, str) else p[0] for p in providers]
        if wanted[0] not in self.session.get_providers():
            raise ModelLoadError(f"ONNX Runtime did not enable {wanted[0]} (got {self.session.get_providers()})")
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.ignored = ignored_inputs(request.signature, self.inputs)
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.io_binding = bool(request.options.get("io_binding")) and request.device == "cuda"

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.ignored:
            inputs = {name: array for name, array in inputs.items() if name not in self.ignored}
        unknown = set(inputs) - set(self.inputs)
        if unknown:
            raise SampleError(f"the ONNX model has no input named {sorted(unknown)}; it takes {sorted(self.inputs)}")
        if self.io_binding:
            binding = self.session.io_binding()
            for name, array in inputs.items():
                binding.bind_cpu_input(name, np.ascontiguousarray(array).reshape(np.shape(array)))  # keeps 0-d
            for name in self.outputs:
                binding.bind_output(name, "cuda")
            self.session.run_with_iobinding(binding)
            return dict(zip(self.outputs, binding.copy_outputs_to_cpu()))
        try:
            return dict(zip(self.outputs, self.session.run(self.outputs, dict(inputs))))
        except InvalidArgument as exc:  # a dtype or rank the model does not take
            takes = ", ".join(f"{i.name}: {i.type} {i.shape}" for i in self.inputs.values())
            raise SampleError(
                f"ONNX Runtime refused the inputs: {exc}", hint=f"Pass what the model takes ({takes})."
            ) from exc

    def fingerprint(self) -> str | None:
        """The graph the CPU provider runs and the settings it runs it with, hashed
        (:mod:`sextant_onnx.fingerprint`); ``None`` on another provider."""
        if self.providers != ["CPUExecutionProvider"]:
            return None
        options = sorted((k, v) for k, v in self.request.options.items() if k != "io_binding")
        settings = f"{options} threads={self.request.threads} shared={self.request.shared}"
        try:
            return fingerprint(self.request.artifact, lambda: session_options(self.request), settings)
        except Exception:  # noqa: BLE001 - a graph ONNX Runtime cannot write back: no fingerprint, measured
            return None

    def close(self) -> None:
        self.session = None


def session_options(request: RunnerRequest) -> ort.SessionOptions:
    """The session options of ``request``'s runner options and threads."""
    options = request.options
    so = ort.SessionOptions()
    so.graph_optimization_level = _LEVELS[options.get("graph_optimization_level", "all")]
    so.intra_op_num_threads = int(options.get("intra_op_threads") or request.threads)
    so.inter_op_num_threads = 1 if options.get("execution_mode", "sequential") == "sequential" else request.threads
    so.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL
        if options.get("execution_mode") == "parallel"
        else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    so.log_severity_level = 3
    if request.shared:  # idle threads spinning between calls would starve the rest of a pipeline
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return so


def _hint(request: RunnerRequest) -> str | None:
    import onnx

    try:
        model = onnx.load(str(request.artifact), load_external_data=False)
    except Exception:
        return None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and opset < 7:
        return (
            f"The model uses opset {opset}; ONNX Runtime supports opset 7 and later. Upgrade it with "
            "onnx.version_converter.convert_version(model, 17) and save it again."
        )
    return "An operator may be missing from this ONNX Runtime build, or the model may be invalid."


def load(request: RunnerRequest) -> OrtRunner:
    providers = ["CUDAExecutionProvider"] if request.device == "cuda" else ["CPUExecutionProvider"]
    return OrtRunner(request, providers)


def load_tensorrt(request: RunnerRequest) -> OrtRunner:
    cache = cache_dir() / "ort-tensorrt"
    trt = (
        "TensorrtExecutionProvider",
        {
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_fp16_enable": request.precision == "fp16",
        },
    )
    return OrtRunner(request, [trt, "CUDAExecutionProvider"])


def load_openvino(request: RunnerRequest) -> OrtRunner:
    return OrtRunner(request, ["OpenVINOExecutionProvider"])
