"""A Python-based Triton backend named ``openvino``, for servers without the native one.

Copied as ``backends/openvino/model.py``, it lets Triton load an unchanged ``backend: "openvino"``
model (the config ``sextant deploy triton`` writes for OpenVINO IR candidates) on a server that has
only the Python backend, as the one in the ``nvidia-pytriton`` wheel. It reads the settings Triton's
own OpenVINO backend reads, with the same names: ``default_model_filename`` (``model.xml``, its
weights beside it) and the parameters as OpenVINO properties (``PERFORMANCE_HINT``,
``NUM_STREAMS``, ``INFERENCE_NUM_THREADS``, ``ENABLE_CPU_PINNING``, ``INFERENCE_PRECISION_HINT``),
compiled for the CPU. It checks that the config's inputs and
outputs are the model's, and runs every request group with equal shapes as one batch, as the
dynamic batcher would.

This module runs inside Triton's Python stub: it imports numpy, openvino,
``triton_python_backend_utils`` and :mod:`sextant_triton.batching`, never sextant.
"""

from __future__ import annotations

import json
from pathlib import Path

import openvino as ov
import triton_python_backend_utils as pb_utils


def properties(config: dict) -> dict[str, str]:
    """The CPU plugin's properties from a Triton model config's parameters (``PERFORMANCE_HINT``,
    ``NUM_STREAMS``, ...), passed on as OpenVINO properties as Triton's OpenVINO backend does;
    sextant's own (``sextant_*``: which candidate it is) are not OpenVINO's."""
    parameters = config.get("parameters", {})
    return {k: v.get("string_value", "") for k, v in parameters.items() if not k.startswith("sextant_")}


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        folder = Path(args["model_repository"]) / args["model_version"]
        path = folder / (config.get("default_model_filename") or "model.xml")
        core = ov.Core()
        try:
            self.compiled = core.compile_model(core.read_model(str(path)), "CPU", properties(config))
        except RuntimeError as exc:
            raise pb_utils.TritonModelException(f"OpenVINO could not compile {path.name}: {exc}") from None
        self.batching = int(config.get("max_batch_size", 0)) > 0
        self.inputs = [i["name"] for i in config.get("input", [])]
        self.outputs = [o["name"] for o in config.get("output", [])]
        model_inputs = {name for port in self.compiled.inputs for name in port.get_names()}
        model_outputs = {name for port in self.compiled.outputs for name in port.get_names()}
        if not set(self.inputs) <= model_inputs or len(self.inputs) != len(self.compiled.inputs):
            raise pb_utils.TritonModelException(
                f"config inputs {self.inputs} are not the model's {sorted(model_inputs)}"
            )
        unknown = set(self.outputs) - model_outputs
        if unknown:
            raise pb_utils.TritonModelException(f"config outputs {sorted(unknown)} are not in the model")
        self.dtypes = {o["name"]: pb_utils.triton_string_to_numpy(o["data_type"]) for o in config["output"]}
        self.request = self.compiled.create_infer_request()

    def execute(self, requests: list) -> list:
        from sextant_triton.batching import respond

        def infer(feed: dict) -> dict:
            results = self.request.infer(dict(feed))
            return {name: results[self.compiled.output(name)] for name in self.outputs}

        return respond(requests, self.inputs, self.dtypes, infer, self.batching, pb_utils)

    def finalize(self) -> None:
        self.request = self.compiled = None
