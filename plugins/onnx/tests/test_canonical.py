"""ONNX's canonical fingerprint (sextant_onnx.canonical, the ``onnx`` FormatSpec's
``canonical_hash``): equal for two files that differ only in metadata and names, as torch's two
exporters write them; different for a changed weight, op attribute, op or input name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from sextant_onnx.canonical import canonical_hash  # noqa: E402


def write(
    path: Path,
    *,
    names: dict[str, str] | None = None,
    producer: tuple[str, str] = ("pytorch", "2.5.0"),
    weight_delta: float = 0.0,
    alpha: float = 1.0,
    activation: str = "Relu",
    input_name: str = "x",
    reorder_weights: bool = False,
    external: bool = False,
    doc: str = "",
    torch_dynamo: bool = False,
) -> Path:
    """A two-layer MLP (MatMul, Add, activation, Gemm with ``alpha``); ``names`` renames the
    weights, intermediate values and nodes; ``torch_dynamo`` writes what that exporter adds: IR 10,
    Gemm's default attributes stated, in another order, metadata on the inputs."""
    n = {key: key for key in ("w1", "b1", "w2", "b2", "h0", "h1", "h2", "node")} | (names or {})
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((16, 32)).astype(np.float32)
    w1[3, 5] += weight_delta
    weights = [
        numpy_helper.from_array(w1, n["w1"]),
        numpy_helper.from_array(rng.standard_normal(32).astype(np.float32), n["b1"]),
        numpy_helper.from_array(rng.standard_normal((32, 4)).astype(np.float32), n["w2"]),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), n["b2"]),
    ]
    nodes = [
        helper.make_node("MatMul", [input_name, n["w1"]], [n["h0"]], name=f"{n['node']}_0", doc_string=doc),
        helper.make_node("Add", [n["h0"], n["b1"]], [n["h1"]], name=f"{n['node']}_1"),
        helper.make_node(activation, [n["h1"]], [n["h2"]], name=f"{n['node']}_2"),
        helper.make_node("Gemm", [n["h2"], n["w2"], n["b2"]], ["y"], name=f"{n['node']}_3", alpha=alpha),
    ]
    if torch_dynamo:
        gemm = nodes[-1]
        stated = [helper.make_attribute("transA", 0), helper.make_attribute("beta", 1.0), *gemm.attribute]
        del gemm.attribute[:]
        gemm.attribute.extend(stated)
    graph = helper.make_graph(
        nodes,
        f"graph_{n['node']}",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=weights[::-1] if reorder_weights else weights,
        doc_string=doc,
        value_info=[helper.make_tensor_value_info(n["h0"], TensorProto.FLOAT, ["N", 32])] if doc else [],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], doc_string=doc)
    model.producer_name, model.producer_version = producer
    model.ir_version = 10 if torch_dynamo else 8
    if torch_dynamo:
        entry = model.graph.input[0].metadata_props.add()
        entry.key, entry.value = "pkg.torch.export.graph_signature.InputSpec.kind", "USER_INPUT"
    if doc:
        helper.set_model_props(model, {"exporter": doc})
    onnx.save_model(model, str(path), save_as_external_data=external, location=f"{path.name}.data", size_threshold=0)
    return path


def test_files_that_differ_only_in_metadata_and_names_have_one_fingerprint(tmp_path):
    first = write(tmp_path / "torchscript.onnx")
    second = write(  # what the dynamo exporter writes: other names, producer, docs, weight order, shapes
        tmp_path / "dynamo.onnx",
        names={"w1": "p_fc1_weight", "b1": "p_fc1_bias", "w2": "fc2.weight", "h0": "val_0", "h1": "val_1",
               "h2": "relu", "node": "node_MatMul"},
        producer=("onnxscript", "0.1.0"),
        reorder_weights=True,
        doc="exported by torch.onnx.export(dynamo=True)",
        torch_dynamo=True,
    )  # fmt: skip
    assert first.read_bytes() != second.read_bytes()
    assert canonical_hash(first) == canonical_hash(second)
    (tmp_path / "ext").mkdir()
    external = write(tmp_path / "ext" / "model.onnx", external=True)
    assert canonical_hash(external) == canonical_hash(first)  # its weights read from beside it
    assert canonical_hash(tmp_path / "ext") == canonical_hash(first)  # a folder holding one .onnx file


@pytest.mark.parametrize(
    "change",
    [
        {"weight_delta": 1e-3},  # one weight of 512
        {"alpha": 0.5},  # one op attribute
        {"activation": "Sigmoid"},  # one op
        {"input_name": "inputs"},  # callers feed inputs by name
        {"alpha": 0.5, "torch_dynamo": True},  # the attribute changed among stated defaults
    ],
    ids=["weight", "attribute", "op", "input-name", "attribute-among-defaults"],
)
def test_a_change_in_what_runs_changes_the_fingerprint(tmp_path, change):
    base = canonical_hash(write(tmp_path / "base.onnx"))
    renamed = {"names": {"w1": "other", "h1": "other_value", "node": "n"}, "producer": ("x", "1")}
    assert canonical_hash(write(tmp_path / "renamed.onnx", **renamed)) == base  # the renaming alone changes nothing
    assert canonical_hash(write(tmp_path / "changed.onnx", **change, **renamed)) != base

