"""Old-style ONNX files: weights listed as graph inputs (IR < 4) and inputs with no batch axis.

The light model-zoo files the onnx wheel ships (onnx/backend/test/data/light) are such models:
every weight is also a graph input, and the data input is 1x3x224x224 with no symbolic batch.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import sextant
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("onnxruntime")
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def ir3_model(path: Path, *, batch: int | str = 1, table: bool = False, external: bool = False) -> Path:
    """x @ w + b with its weights also listed as graph inputs, as IR version 3 required; ``table``
    adds a data input of fixed first dimension 10 that is not a weight."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16]),
        helper.make_tensor_value_info("w", TensorProto.FLOAT, [16, 8]),
        helper.make_tensor_value_info("b", TensorProto.FLOAT, [8]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8])]
    if table:
        inputs.append(helper.make_tensor_value_info("t", TensorProto.FLOAT, [10, 8]))
        nodes.append(helper.make_node("ReduceSum", ["t"], ["s"], axes=[0], keepdims=1))
        outputs.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 8]))
    graph = helper.make_graph(nodes, "ir3", inputs, outputs, initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 3
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    else:
        onnx.save_model(model, str(path))
    return path


def _batches(status: dict) -> set[int]:
    """Every batch size a candidate was profiled at."""
    return {p["batch"] for r in status["candidates"].values() for p in (r.get("profile") or {}).get("points", [])}


def _failures(status: dict) -> dict[str, str]:
    records = {**status["steps"], **status["candidates"]}
    return {name: r.get("reason", "") for name, r in records.items() if r["status"] in ("failed", "incorrect")}


def test_light_model_zoo_file_runs_every_precision_at_batch_1(catalog, options):
    model = LIGHT / "light_squeezenet.onnx"
    if not model.is_file():
        pytest.skip(f"{model} is not in this onnx wheel")
    package = sextant.optimize(
        model,
        None,
        options=replace(options, precisions=("fp32", "fp16", "int8"), threads=1),
        catalog=catalog,
        runners=("onnxruntime",),
    )
    status = package.status
    notes = "\n".join(status["notes"])
    assert "52 graph inputs are backed by initializers (weights): not fed, the stored values are used" in notes
    assert "input data 'data_0' has a fixed first dimension 1: checked and profiled at batch 1 only" in notes
    assert status["signature"]["inputs"][0]["name"] == "data_0"
    assert len(status["signature"]["inputs"]) == 1
    # onnx-fp16, onnx-int8 and onnx-slim+onnx-int8 failed on the weights listed as inputs
    assert _failures(status) == {}
    for name in ("onnx-fp16:onnxruntime@cpu", "onnx-int8:onnxruntime@cpu", "onnx-slim+onnx-int8:onnxruntime@cpu"):
        record = status["candidates"][name]
        if record["status"] == "duplicate":  # ONNX Runtime optimised it to a graph it measured: its outputs passed
            record = status["candidates"][record["duplicate_of"]]
        assert record["status"] == "ok", name
    assert _batches(status) == {1}
    source = onnx.load(str(package.path / status["model"]["source"]))
    assert [i.name for i in source.graph.input] == ["data_0"] and source.ir_version == 4


def test_fixed_batch_above_1_runs_at_that_size_only(catalog, options, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    model = ir3_model(folder / "m.onnx", batch=4, external=True)
    source = catalog.load_source(model)
    assert source.signature.input_names == ("x",) and source.signature.max_batch == 4
    opts = replace(options, max_batch_size=2, threads=1)  # the model's own size wins, and says so
    status = sextant.optimize(model, None, options=opts, catalog=catalog, runners=("onnxruntime",)).status
    assert _failures(status) == {}
    assert set(status["correctness_batches"]) == {4}
    assert _batches(status) == {4}
    assert any("fixed first dimension 4: checked and profiled at batch 4 only" in n for n in status["notes"])
    assert any("--max-batch-size 2 is below" in n for n in status["notes"])
    with pytest.raises(sextant.SextantError, match="model fixes its first dimension at 4"):
        x = np.ones((3, 16), np.float32)
        sextant.optimize(model, {"x": x}, options=replace(opts, fresh=True), catalog=catalog, runners=("onnxruntime",))


def test_fixed_first_dimension_beside_a_batch_axis_is_no_batch_axis(catalog, options, tmp_path):
    model = ir3_model(tmp_path / "t.onnx", batch="N", table=True)
    source = catalog.load_source(model)
    x, t = source.signature.inputs
    assert (x.name, x.batched, t.name, t.batched, t.shape) == ("x", True, "t", False, (10, 8))
    assert source.signature.max_batch is None
    assert any("'t'" in n and "no batch axis" in n for n in source.notes)
    status = sextant.optimize(model, None, options=options, catalog=catalog, runners=("onnxruntime",)).status
    assert _failures(status) == {}
    assert max(_batches(status)) == options.max_batch_size > 1
