"""Real packages for the server tests: a torch model and an ONNX file, optimized with a short
profiler (batch sizes 1, 2, 4), once per test module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sextant
from sextant.api import Package, load_batches
from sextant.options import OptimizeOptions
from sextant.testing import FAST

MAX_BATCH = FAST.max_batch  # 4


def _options(workspace: Path, **kw) -> OptimizeOptions:
    return OptimizeOptions(workspace=workspace, max_batch_size=MAX_BATCH, profiler=FAST, step_timeout=300, **kw)


def torch_package(workspace: Path) -> Package:
    """Two inputs (float and int64) and two outputs, one of them a batch axis alone."""
    import torch
    from torch import nn

    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.Linear(16, 4))

        def forward(self, x, mask):
            logits = self.body(x * mask.to(x.dtype))
            return {"logits": logits, "score": logits.sum(-1)}

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    samples = [
        {"x": rng.standard_normal((3, 6)).astype(np.float32), "mask": rng.integers(0, 2, (3, 6)).astype(np.int64)}
        for _ in range(2)
    ]
    return sextant.optimize(
        TwoHeads().eval(),
        samples,
        options=_options(
            workspace, runners=("torch-eager", "torch-compile", "torchscript", "torch-exported", "onnxruntime")
        ),
    )


def onnx_package(workspace: Path) -> Package:
    """An ONNX file with a dynamic batch axis: softmax(relu(x @ W + b) @ V)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    weights = [
        numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
        for name, shape in (("W", (8, 16)), ("b", (16,)), ("V", (16, 3)))
    ]
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "W"], ["h0"]),
            helper.make_node("Add", ["h0", "b"], ["h1"]),
            helper.make_node("Relu", ["h1"], ["h2"]),
            helper.make_node("MatMul", ["h2", "V"], ["h3"]),
            helper.make_node("Softmax", ["h3"], ["probabilities"], axis=-1),
        ],
        "classifier",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    workspace.parent.mkdir(parents=True, exist_ok=True)
    path = workspace.parent / "classifier.onnx"
    onnx.save(model, path)
    samples = {"features": rng.standard_normal((3, 8)).astype(np.float32)}
    return sextant.optimize(path, samples, options=_options(workspace, runners=("onnxruntime",)))


def correctness_cases(
    package: Package, candidate: str, sizes: tuple[int, ...]
) -> list[tuple[dict, dict, float, float]]:
    """``(inputs, reference outputs, atol, rtol)`` for the package's correctness batches of ``sizes``."""
    record = package.candidate(candidate).record
    inputs = load_batches(package.path / "inputs.npz")
    references = load_batches(package.path / "reference.npz")
    cases = []
    for size in sizes:
        index = next(i for i, batch in enumerate(inputs) if len(next(iter(batch.values()))) == size)
        cases.append((inputs[index], references[index], record.correctness.atol, record.correctness.rtol))
    return cases


def first_ok(package: Package, runner: str) -> str | None:
    """The first passing candidate of ``runner`` with its default options, if any."""
    for view in package.candidates():
        if view.record.runner == runner and str(view.status) == "ok" and "[" not in view.id:
            return view.id
    return None
