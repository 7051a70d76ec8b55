"""The runner's fingerprint (sextant_openvino.fingerprint): files OpenVINO compiles to one graph,
run the same way, share it (another exporter's node names and no-op nodes, other weights, a Gelu
written out as an Erf's arithmetic); another graph, or the same one under other settings, does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import openvino as ov
from onnx import TensorProto, helper, numpy_helper
from sextant.api import Fingerprinted, RunnerRequest, Signature, TensorSpec
from sextant_openvino.runner import load

SIGNATURE = Signature((TensorSpec("x", "float32", (None, 16)),), (TensorSpec("y", "float32", (None, 4)),))


def mlp(path: Path, seed: int = 0, activation: str = "Relu", noise: bool = False, prefix: str = "") -> Path:
    """x @ W1 + B1, the activation, @ W2; ``noise``: Identity nodes as an exporter may leave them;
    ``prefix``: node and tensor names another exporter would give."""
    rng = np.random.default_rng(seed)
    arrays = {"w1": rng.standard_normal((16, 32)), "b1": rng.standard_normal(32), "w2": rng.standard_normal((32, 4))}
    weights = [numpy_helper.from_array(a.astype(np.float32), prefix + n) for n, a in arrays.items()]
    n = prefix
    nodes = [
        helper.make_node("MatMul", ["x", n + "w1"], [n + "h0"], name=n + "mm1"),
        helper.make_node("Add", [n + "h0", n + "b1"], [n + "h1"], name=n + "add"),
        *_activation(activation, n + "h1", n + "h2", n),
    ]
    if noise:
        nodes.append(helper.make_node("Identity", [n + "h2"], [n + "h3"], name=n + "id"))
    nodes.append(helper.make_node("MatMul", [nodes[-1].output[0], n + "w2"], ["y"], name=n + "mm2"))
    graph = helper.make_graph(
        nodes,
        prefix + "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], producer_name=prefix or "onnx")
    model.ir_version = 9
    onnx.save_model(model, str(path))
    return path


def _activation(name: str, x: str, y: str, n: str) -> list[onnx.NodeProto]:
    """One operation, or for "ErfGelu" the Gelu as torch's TorchScript-based exporter writes it:
    x * 0.5 * (1 + erf(x / sqrt(2)))."""
    if name != "ErfGelu":
        return [helper.make_node(name, [x], [y], name=n + "act")]
    constants = {"sqrt2": 2**0.5, "one": 1.0, "half": 0.5}
    made = [
        helper.make_node(
            "Constant", [], [n + c], name=n + c, value=helper.make_tensor(n + c, TensorProto.FLOAT, [], [v])
        )
        for c, v in constants.items()
    ]
    return made + [
        helper.make_node("Div", [x, n + "sqrt2"], [n + "g0"], name=n + "div"),
        helper.make_node("Erf", [n + "g0"], [n + "g1"], name=n + "erf"),
        helper.make_node("Add", [n + "g1", n + "one"], [n + "g2"], name=n + "add1"),
        helper.make_node("Mul", [x, n + "g2"], [n + "g3"], name=n + "mul"),
        helper.make_node("Mul", [n + "g3", n + "half"], [y], name=n + "mul_1"),
    ]


def fingerprint(path: Path, **options) -> str:
    runner = load(RunnerRequest(artifact=path, signature=SIGNATURE, threads=2, options=options))
    try:
        assert isinstance(runner, Fingerprinted)
        found = runner.fingerprint()
        assert found is not None and found.startswith("openvino-cpu:")
        return found
    finally:
        runner.close()


def test_files_compiled_to_one_graph_share_a_fingerprint_and_other_graphs_or_settings_do_not(tmp_path):
    base = fingerprint(mlp(tmp_path / "a.onnx"))
    assert fingerprint(mlp(tmp_path / "renamed.onnx", noise=True, prefix="exporter2_")) == base
    assert fingerprint(mlp(tmp_path / "weights.onnx", seed=1)) == base  # the outputs are judged apart
    irs = {}
    for name, source, compress in (("a", "a", False), ("renamed", "renamed", False), ("a16", "a", True)):
        irs[name] = tmp_path / name / "model.xml"  # OpenVINO's own IR of a file
        ov.save_model(ov.convert_model(str(tmp_path / f"{source}.onnx")), str(irs[name]), compress_to_fp16=compress)
    assert fingerprint(irs["a"]) == fingerprint(irs["renamed"])
    assert fingerprint(irs["a"]) != base  # its converter folded the transposes of weights that the ONNX file keeps
    assert fingerprint(irs["a16"]) != fingerprint(irs["a"])  # fp16 weights, converted as it runs: another graph
    assert fingerprint(mlp(tmp_path / "tanh.onnx", activation="Tanh")) != base
    gelu = fingerprint(mlp(tmp_path / "gelu.onnx", activation="Gelu"))  # the dynamo exporter's
    assert gelu != base
    assert fingerprint(mlp(tmp_path / "erf.onnx", activation="ErfGelu", prefix="legacy_")) == gelu  # fused into one
    assert fingerprint(tmp_path / "a.onnx", performance_hint="throughput") != base
    assert fingerprint(tmp_path / "a.onnx", inference_num_threads=1) != base
