"""Real models with the hand-written packages' signature (``_packages.SIGNATURE``), so that a
package written by ``write_package`` can carry a working artifact in place of its placeholder bytes.

Every model computes, from ``pixels`` (N, 3, H, 8) float32 and ``mask`` (N, 8) int64::

    logits = (mean of pixels over axes 1 and 2) * mask @ WEIGHTS      (N, 5) float32
    score  = sum of logits over axis 1, as float16                    (N,)   float16
    table  = TABLE  (the unbatched signature's extra output)           (5, 3) float32

:func:`expected` computes the same in numpy, independently of the frameworks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sextant.api import write_manifest

WEIGHTS = np.random.default_rng(7).standard_normal((8, 5)).astype(np.float32)
TABLE = np.arange(15, dtype=np.float32).reshape(5, 3) / 4


def expected(pixels: np.ndarray, mask: np.ndarray, table: bool = False) -> dict[str, np.ndarray]:
    features = pixels.astype(np.float64).mean(axis=(1, 2)) * mask
    logits = features @ WEIGHTS.astype(np.float64)
    out = {"logits": logits.astype(np.float32), "score": logits.sum(-1).astype(np.float16)}
    return {**out, "table": TABLE} if table else out


def _onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", ["pixels"], ["pooled"], axes=[1, 2], keepdims=0),
        helper.make_node("Cast", ["mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["pooled", "maskf"], ["features"]),
        helper.make_node("MatMul", ["features", "W"], ["logits"]),
        helper.make_node("ReduceSum", ["logits", "axis1"], ["total"], keepdims=0),
        helper.make_node("Cast", ["total"], ["score"], to=TensorProto.FLOAT16),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [
            helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, "H", 8]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, ["N", 8]),
        ],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5]),
            helper.make_tensor_value_info("score", TensorProto.FLOAT16, ["N"]),
        ],
        initializer=[numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(np.array([1], np.int64), "axis1")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def _torch_module(table: bool):
    import torch

    class Tiny(torch.nn.Module):  # defined here: pickled by value, as a user's class is
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("weights", torch.from_numpy(WEIGHTS.copy()))
            self.register_buffer("table", torch.from_numpy(TABLE.copy()))
            self.with_table = table

        def forward(self, pixels, mask):
            logits = (pixels.mean(dim=(1, 2)) * mask.to(pixels.dtype)) @ self.weights
            out = {"logits": logits, "score": logits.sum(-1).to(torch.float16)}
            return {**out, "table": self.table * 1} if self.with_table else out

    return Tiny().eval()


def _torch_exported(path: Path) -> None:
    import torch

    pixels, mask = torch.ones(2, 3, 4, 8), torch.ones(2, 8, dtype=torch.int64)
    batch, height = torch.export.Dim("batch", max=1024), torch.export.Dim("height", max=1024)
    program = torch.export.export(
        _torch_module(False),
        (),
        {"pixels": pixels, "mask": mask},
        dynamic_shapes={"pixels": {0: batch, 2: height}, "mask": {0: batch}},
    )
    torch.export.save(program, path)


def _torch_source(path: Path) -> None:
    import torch
    from sextant_torch import pickling

    torch.save(_torch_module(True), path, pickle_module=pickling)


def _openvino_ir(path: Path) -> None:
    """The ONNX model converted by OpenVINO, saved as ``model.xml`` with its ``model.bin`` beside it."""
    import openvino as ov

    onnx_path = path.with_name("converted-from.onnx")
    _onnx(onnx_path)
    ov.save_model(ov.convert_model(str(onnx_path)), str(path))
    onnx_path.unlink()


WRITERS = {"onnx": _onnx, "torch-exported": _torch_exported, "torch-module": _torch_source, "openvino-ir": _openvino_ir}


def make_real(package: Path) -> Path:
    """Replace the placeholder artifact of a ``write_package`` folder with a working model of its
    format (one of :data:`WRITERS`), and rewrite the manifest; returns the package."""
    import json

    status = json.loads((package / "status.json").read_text())
    (record,) = status["candidates"].values()
    WRITERS[record["format"]](package / record["artifact"])
    write_manifest(package)
    return package
