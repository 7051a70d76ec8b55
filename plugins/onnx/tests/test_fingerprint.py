"""ONNX Runtime's fingerprint (sextant_onnx.fingerprint): files its CPU provider optimises to one
graph, run with the same settings, share it (names, the order of nodes in the file, no-op nodes,
other weights); another graph, another small constant, or the same graph under other settings, does
not; a graph with a subgraph has none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sextant.api import Fingerprinted, RunnerRequest, Signature, TensorSpec
from sextant_onnx.runner import load

SIGNATURE = Signature((TensorSpec("x", "float32", (None, 16)),), (TensorSpec("y", "float32", (None, 4, 8)),))


def two_branches(
    path: Path,
    *,
    seed: int = 0,
    activation: str = "Relu",
    prefix: str = "",
    skip_first: bool = False,
    noise: bool = False,
    shape: tuple[int, ...] = (-1, 4, 8),
) -> Path:
    """``reshape(act(x @ W1 + b1) @ W2 * (x @ W3), shape)``: two branches, so a file can list them
    in either order (``skip_first``; joined by a product, which ONNX Runtime fuses into neither, as
    it would a sum into whichever branch comes first); ``prefix``: the names another exporter would
    give; ``noise``: an Identity node an exporter may leave."""
    rng = np.random.default_rng(seed)
    n = prefix
    arrays = {"w1": (16, 32), "b1": (32,), "w2": (32, 32), "w3": (16, 32)}
    weights = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n + k) for k, s in arrays.items()]
    weights.append(numpy_helper.from_array(np.array(shape, np.int64), n + "shape"))
    main = [
        helper.make_node("MatMul", ["x", n + "w1"], [n + "h0"], name=n + "mm1"),
        helper.make_node("Add", [n + "h0", n + "b1"], [n + "h1"], name=n + "add1"),
        helper.make_node(activation, [n + "h1"], [n + "h2"], name=n + "act"),
        helper.make_node("MatMul", [n + "h2", n + "w2"], [n + "h3"], name=n + "mm2"),
    ]
    if noise:
        main.append(helper.make_node("Identity", [n + "h3"], [n + "h3i"], name=n + "id"))
    skip = [helper.make_node("MatMul", ["x", n + "w3"], [n + "s"], name=n + "mm3")]
    tail = [
        helper.make_node("Mul", [main[-1].output[0], n + "s"], [n + "sum"], name=n + "join"),
        helper.make_node("Reshape", [n + "sum", n + "shape"], ["y"], name=n + "reshape"),
    ]
    graph = helper.make_graph(
        (skip + main if skip_first else main + skip) + tail,
        n + "two_branches",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name=prefix or "onnx")
    model.ir_version = 8
    onnx.save_model(model, str(path))
    return path


def fingerprint(path: Path, **options) -> str | None:
    runner = load(RunnerRequest(artifact=path, signature=SIGNATURE, threads=2, options=options))
    try:
        assert isinstance(runner, Fingerprinted)
        return runner.fingerprint()
    finally:
        runner.close()


def test_files_optimised_to_one_graph_share_a_fingerprint_and_other_graphs_or_settings_do_not(tmp_path):
    base = fingerprint(two_branches(tmp_path / "a.onnx"))
    assert base is not None and base.startswith("onnxruntime-cpu-")
    other_file = two_branches(tmp_path / "b.onnx", prefix="exporter2_", skip_first=True, noise=True)
    assert onnx.load(str(other_file)).graph.node[0].name == "exporter2_mm3"  # the file lists the other branch first
    assert fingerprint(other_file) == base
    assert fingerprint(two_branches(tmp_path / "weights.onnx", seed=1)) == base  # the outputs are judged apart
    assert fingerprint(two_branches(tmp_path / "tanh.onnx", activation="Tanh")) != base
    assert fingerprint(two_branches(tmp_path / "shape.onnx", shape=(-1, 8, 4))) != base  # a small constant counts
    assert fingerprint(tmp_path / "a.onnx", intra_op_threads=1) != base
    assert fingerprint(tmp_path / "a.onnx", execution_mode="parallel") != base
    unoptimised = fingerprint(tmp_path / "a.onnx", graph_optimization_level="disable")
    assert unoptimised != base
    assert fingerprint(tmp_path / "b.onnx", graph_optimization_level="disable") != unoptimised  # the Identity stays


def test_a_graph_with_a_subgraph_has_no_fingerprint(tmp_path):
    branch = {
        name: helper.make_graph(
            [helper.make_node(op, ["x"], [f"{name}_y"])], name, [], [helper.make_tensor_value_info(f"{name}_y", 1, None)]
        )
        for name, op in (("then", "Relu"), ("else", "Neg"))
    }
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
        helper.make_node("Greater", ["total", "zero"], ["positive"]),
        helper.make_node("If", ["positive"], ["y"], then_branch=branch["then"], else_branch=branch["else"]),
    ]
    graph = helper.make_graph(
        nodes,
        "conditional",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.zeros((), np.float32), "zero")],
    )
    path = tmp_path / "if.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path))
    signature = Signature((TensorSpec("x", "float32", (None, 16)),), (TensorSpec("y", "float32", (None, 16)),))
    runner = load(RunnerRequest(artifact=path, signature=signature, threads=2, options={}))
    try:
        assert runner.infer({"x": np.ones((2, 16), np.float32)})["y"].shape == (2, 16)  # it runs
        assert runner.fingerprint() is None
    finally:
        runner.close()
