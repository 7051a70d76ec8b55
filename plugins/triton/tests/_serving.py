"""A small model repository for ``sextant analyze``: Python-backend models that load in a second.

- ``scale``: y = 2x (batching, max_batch_size 8);
- ``prep``: y = x - 1 (the preprocessing step);
- ``pipeline``: an ensemble, prep → scale;
- ``bls``: a Python model that calls ``scale`` through BLS and adds one.
"""

from __future__ import annotations

from pathlib import Path

_SIMPLE = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "x").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("y", ({expr}).astype(np.float32))]))
        return out
"""

_BLS = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "x")
            called = pb_utils.InferenceRequest(model_name="scale", requested_output_names=["y"], inputs=[x])
            answer = called.exec()
            if answer.has_error():
                raise pb_utils.TritonModelException(answer.error().message())
            y = pb_utils.get_output_tensor_by_name(answer, "y").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("y", (y + 1).astype(np.float32))]))
        return out
"""

_IO = """
max_batch_size: 8
input [{ name: "x" data_type: TYPE_FP32 dims: [ 4 ] }]
output [{ name: "y" data_type: TYPE_FP32 dims: [ 4 ] }]
"""


def _python_model(repository: Path, name: str, code: str, dynamic: bool = False) -> None:
    (repository / name / "1").mkdir(parents=True)
    (repository / name / "1" / "model.py").write_text(code)
    config = f'name: "{name}"\nbackend: "python"\n{_IO}instance_group [{{ kind: KIND_CPU count: 1 }}]\n'
    if dynamic:
        config += "dynamic_batching { }\n"
    (repository / name / "config.pbtxt").write_text(config)


def write_repository(repository: Path) -> Path:
    _python_model(repository, "scale", _SIMPLE.format(expr="x * 2"), dynamic=True)
    _python_model(repository, "prep", _SIMPLE.format(expr="x - 1"))
    _python_model(repository, "bls", _BLS)
    (repository / "pipeline" / "1").mkdir(parents=True)
    (repository / "pipeline" / "config.pbtxt").write_text(
        'name: "pipeline"\nplatform: "ensemble"\n'
        + _IO
        + """ensemble_scheduling {
  step [
    { model_name: "prep" model_version: -1 input_map { key: "x" value: "x" } output_map { key: "y" value: "prepared" } },
    { model_name: "scale" model_version: -1 input_map { key: "x" value: "prepared" } output_map { key: "y" value: "y" } }
  ]
}
"""
    )
    return repository
