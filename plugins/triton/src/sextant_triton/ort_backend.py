"""A Python-based Triton backend named ``onnxruntime``, for servers without the native one.

Copied as ``backends/onnxruntime/model.py``, it lets Triton load an unchanged ``onnxruntime_onnx``
model (the config ``sextant deploy triton`` writes for ONNX candidates) on a server that has only
the Python backend, as the one in the ``nvidia-pytriton`` wheel. It reads the settings Triton's own
ONNX Runtime backend reads, with the same meanings and the same refusals: ``default_model_filename``
(``model.onnx``), ``optimization.graph.level`` (-1 basic, 1 extended, 2 disabled, else all), the
``intra_op_thread_count``, ``inter_op_thread_count`` and ``execution_mode`` (0 or 1) parameters,
and the ``cpu_execution_accelerator`` / ``gpu_execution_accelerator`` lists (``openvino``,
``tensorrt``, ``cuda``). It checks that the config's inputs and outputs are the model's, and runs
every request group with equal shapes as one batch, as the dynamic batcher would.

This module runs inside Triton's Python stub: it imports numpy, onnxruntime,
``triton_python_backend_utils`` and :mod:`sextant_triton.batching`, never sextant.
"""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import triton_python_backend_utils as pb_utils

_LEVELS = {
    -1: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    1: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    2: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
}
_PROVIDERS = {
    "openvino": "OpenVINOExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
}


def _int_parameter(parameters: dict, key: str) -> int:
    value = parameters.get(key, {}).get("string_value", "0") or "0"
    try:
        return int(value)
    except ValueError:
        raise pb_utils.TritonModelException(f"parameter {key} must be an integer, got {value!r}") from None


def session_options(config: dict) -> ort.SessionOptions:
    """ONNX Runtime session options from a Triton model config (as Triton's backend reads it)."""
    parameters = config.get("parameters", {})
    so = ort.SessionOptions()
    level = int(config.get("optimization", {}).get("graph", {}).get("level", 0))
    so.graph_optimization_level = _LEVELS.get(level, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    mode = _int_parameter(parameters, "execution_mode")
    if mode not in (0, 1):
        raise pb_utils.TritonModelException(f"execution_mode must be 0 or 1, got {mode}")
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL if mode == 0 else ort.ExecutionMode.ORT_PARALLEL
    intra = _int_parameter(parameters, "intra_op_thread_count")
    inter = _int_parameter(parameters, "inter_op_thread_count")
    if intra > 0:
        so.intra_op_num_threads = intra
    if inter > 0:
        so.inter_op_num_threads = inter
    return so


def providers(config: dict) -> list:
    accelerators = config.get("optimization", {}).get("execution_accelerators", {})
    chosen: list = []
    for key in ("gpu_execution_accelerator", "cpu_execution_accelerator"):
        for accelerator in accelerators.get(key, []):
            name = accelerator.get("name", "")
            if name not in _PROVIDERS:
                raise pb_utils.TritonModelException(f"unknown execution accelerator {name!r}")
            chosen.append((_PROVIDERS[name], dict(accelerator.get("parameters", {}))))
    return [*chosen, "CPUExecutionProvider"]


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        folder = Path(args["model_repository"]) / args["model_version"]
        path = folder / (config.get("default_model_filename") or "model.onnx")
        wanted = providers(config)
        first = wanted[0][0] if isinstance(wanted[0], tuple) else wanted[0]
        if first not in ort.get_available_providers():
            raise pb_utils.TritonModelException(
                f"this onnxruntime has no {first} (it has {', '.join(ort.get_available_providers())}), which the "
                "config's execution accelerator asks for: install the onnxruntime build that has it "
                "(onnxruntime-openvino for openvino), or deploy the candidate with --backend python"
            )
        self.session = ort.InferenceSession(str(path), session_options(config), providers=wanted)
        if first not in self.session.get_providers():
            raise pb_utils.TritonModelException(f"ONNX Runtime could not enable {first}")
        self.batching = int(config.get("max_batch_size", 0)) > 0
        self.inputs = [i["name"] for i in config.get("input", [])]
        self.outputs = [o["name"] for o in config.get("output", [])]
        model_inputs = {i.name for i in self.session.get_inputs()}
        model_outputs = {o.name for o in self.session.get_outputs()}
        if set(self.inputs) != model_inputs:
            raise pb_utils.TritonModelException(
                f"config inputs {self.inputs} are not the model's {sorted(model_inputs)}"
            )
        unknown = set(self.outputs) - model_outputs
        if unknown:
            raise pb_utils.TritonModelException(f"config outputs {sorted(unknown)} are not in the model")
        self.dtypes = {o["name"]: pb_utils.triton_string_to_numpy(o["data_type"]) for o in config["output"]}

    def execute(self, requests: list) -> list:
        from sextant_triton.batching import respond

        def infer(feed: dict) -> dict:
            return dict(zip(self.outputs, self.session.run(self.outputs, dict(feed))))

        return respond(requests, self.inputs, self.dtypes, infer, self.batching, pb_utils)

    def finalize(self) -> None:
        self.session = None
