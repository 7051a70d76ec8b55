"""The ONNX plugin: loading .onnx files, converting, running on ONNX Runtime, and bad input."""

from __future__ import annotations

import importlib.metadata
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import sextant
from onnx import TensorProto, helper, numpy_helper
from sextant.devices import cuda_unavailable_reason
from sextant.errors import ModelLoadError, SampleError
from sextant.runtime import RunnerRequest
from sextant.testing.contracts import check_candidates_on_device, check_judged_against_the_reference, check_plugin

pytest.importorskip("onnxruntime")


def mlp_onnx(path: Path, *, batch: int | str = "N", external: bool = False, op: str = "Relu") -> Path:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((16, 32)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.standard_normal(32).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((32, 4)).astype(np.float32) / 4, "w2")
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node(op, ["h1"], ["h2"], domain="" if op == "Relu" else "com.example"),
        helper.make_node("MatMul", ["h2", "w2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])],
        initializer=[w1, b1, w2],
    )
    opsets = [helper.make_opsetid("", 17)] + ([] if op == "Relu" else [helper.make_opsetid("com.example", 1)])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    if external:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="weights.bin",
            size_threshold=0,
        )
    else:
        onnx.save_model(model, str(path))
    return path


def _initializer_types(path: Path) -> dict[str, int]:
    return {t.name: t.data_type for t in onnx.load(str(path)).graph.initializer}



def _no_ort_cuda() -> str | None:
    import onnxruntime as ort

    if cuda_unavailable_reason() or "CUDAExecutionProvider" in ort.get_available_providers():
        return cuda_unavailable_reason()
    return f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (pip install 'sextant-onnx[gpu]')"


NO_ORT_CUDA = _no_ort_cuda()

def test_entry_point_and_contracts():
    (ep,) = [e for e in importlib.metadata.entry_points(group="sextant") if e.name == "onnx"]
    assert ep.load().__name__ == "sextant_onnx"
    names = {c.name for c in check_plugin("sextant_onnx")}
    assert {"onnx-slim", "onnx-fp16", "onnx-int8", "onnxruntime", "onnxruntime-kv", "onnxruntime-genai"} <= names


def test_declared_signature(catalog, tmp_path):
    source = catalog.load_source(mlp_onnx(tmp_path / "m.onnx"))
    (x,) = source.signature.inputs
    assert (x.name, x.dtype, x.shape, x.batched) == ("x", "float32", (None, 16), True)
    fixed = catalog.load_source(mlp_onnx(tmp_path / "f.onnx", batch=1))
    assert fixed.signature.max_batch == 1



@pytest.mark.gpu
@pytest.mark.skipif(NO_ORT_CUDA is not None, reason=f"needs ONNX Runtime on CUDA: {NO_ORT_CUDA}")
def test_cuda_candidates_are_judged_against_the_cpu_reference(catalog, options, tmp_path):
    model = mlp_onnx(tmp_path / "mlp.onnx")
    options = replace(options, device="cuda", precisions=("fp32", "fp16"))
    package = sextant.optimize(model, None, options=options, catalog=catalog)
    # every candidate planned on cuda (the CUDA and TensorRT providers, io_binding) judged by its
    # outputs against the CPU fp32 reference at its precision's tolerance; fp16 ran in fp16
    checked = check_candidates_on_device(package.path, "cuda")
    correct = [cid for cid, r in checked.items() if r["status"] == "ok"]
    assert "source:onnxruntime@cuda" in correct and "onnx-fp16:onnxruntime@cuda" in checked
    best = package.status["selection"]["best"]
    assert best.endswith("@cuda") and best in correct

def test_optimize_with_no_samples_makes_every_variant(catalog, options, tmp_path):
    model = mlp_onnx(tmp_path / "mlp.onnx")
    package = sextant.optimize(
        model, None, options=replace(options, precisions=("fp32", "fp16", "int8")), catalog=catalog
    )
    status = package.status
    assert any("random inputs" in n for n in status["notes"])
    steps = status["steps"]
    # onnxslim on a graph with nothing to fold may write the same bytes: a duplicate is allowed there only
    assert steps["onnx-slim"]["status"] in ("ok", "duplicate"), steps["onnx-slim"].get("reason")
    for step in ("onnx-fp16", "onnx-int8"):
        assert steps[step]["status"] == "ok", (step, steps[step].get("reason"))
    fp16_weights = _initializer_types(package.path / steps["onnx-fp16"]["artifact"])
    assert set(fp16_weights.values()) == {TensorProto.FLOAT16}  # every weight, none left in fp32
    int8_weights = _initializer_types(package.path / steps["onnx-int8"]["artifact"])
    assert {int8_weights.get("w1_quantized"), int8_weights.get("w2_quantized")} <= {TensorProto.INT8, TensorProto.UINT8}
    assert "w1" not in int8_weights and "w2" not in int8_weights  # the fp32 weights were replaced
    for cid, precision in (("onnx-fp16:onnxruntime@cpu", "fp16"), ("onnx-int8:onnxruntime@cpu", "int8")):
        record = status["candidates"][cid]
        assert record["precision"] == precision
        check_judged_against_the_reference(package.path, record)
    # session options are profiled as variants of the runner; a CPU candidate records only the options
    # that matter on the CPU (io_binding is CUDA's)
    assert "source:onnxruntime[intra_op_threads=1]@cpu" in status["candidates"]
    defaults = {"graph_optimization_level": "all", "intra_op_threads": 0, "execution_mode": "sequential"}
    assert status["candidates"]["source:onnxruntime@cpu"]["options"] == defaults
    assert status["selection"]["best"] is not None
    runner = package.best().load(catalog)
    x = np.ones((3, 16), np.float32)
    assert runner.infer({"x": x})["y"].shape == (3, 4)


def test_shape_override_and_fixed_batch(catalog, options, tmp_path):
    model = mlp_onnx(tmp_path / "fixed.onnx", batch=1)
    status = sextant.optimize(model, None, options=options, catalog=catalog, runners=("onnxruntime",)).status
    assert set(status["correctness_batches"]) == {1}  # the model fixes the batch size
    with pytest.raises(sextant.SextantError, match="does not fit the declared shape"):
        sextant.optimize(model, None, options=replace(options, shapes={"x": (1, 15)}), catalog=catalog)


def test_external_data_travels_with_the_model(catalog, options, tmp_path):
    folder = tmp_path / "ext"
    folder.mkdir()
    model = mlp_onnx(folder / "model.onnx", external=True)
    package = sextant.optimize(model, None, options=options, catalog=catalog, runners=("onnxruntime",))
    assert (package.path / "source" / "weights.bin").exists()
    assert package.status["candidates"]["source:onnxruntime@cpu"]["status"] == "ok"
    (folder / "weights.bin").unlink()
    with pytest.raises(ModelLoadError, match="external data files that are missing: weights.bin"):
        catalog.load_source(model)


def test_bad_files_and_inputs_say_what_is_wrong(catalog, tmp_path):
    from sextant_onnx.runner import load

    good = mlp_onnx(tmp_path / "good.onnx")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(ModelLoadError, match="not a readable ONNX model|not a valid ONNX model"):
        catalog.load_source(truncated)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01this is not protobuf" * 10)
    with pytest.raises(ModelLoadError):
        catalog.load_source(garbage)
    unknown_op = mlp_onnx(tmp_path / "custom.onnx", op="Frobnicate")
    signature = catalog.load_source(unknown_op).signature
    with pytest.raises(ModelLoadError, match="Frobnicate"):
        load(RunnerRequest(artifact=unknown_op, signature=signature))
    runner = load(RunnerRequest(artifact=good, signature=catalog.load_source(good).signature))
    with pytest.raises(SampleError, match="no input named \\['z'\\]"):
        runner.infer({"z": np.ones((1, 16), np.float32)})
    with pytest.raises(SampleError, match=r"Unexpected input data type. Actual: \(tensor\(double\)\)") as refused:
        runner.infer({"x": np.ones((1, 16), np.float64)})
    assert refused.value.hint == "Pass what the model takes (x: tensor(float) ['N', 16])."


def test_samples_that_do_not_fit_the_declared_inputs(catalog, options, tmp_path):
    model = mlp_onnx(tmp_path / "m.onnx")
    with pytest.raises(SampleError, match="missing \\['x'\\], unknown \\['input'\\]"):
        sextant.optimize(model, {"input": np.ones((2, 16), np.float32)}, options=options, catalog=catalog)
    with pytest.raises(SampleError, match="input 'x': samples are float64, the model takes float32"):
        sextant.optimize(model, {"x": np.ones((2, 16))}, options=options, catalog=catalog)
    with pytest.raises(SampleError, match="input 'x' axis 1: samples have 15, the model takes 16"):
        sextant.optimize(model, {"x": np.ones((2, 15), np.float32)}, options=options, catalog=catalog)


def _unknown_rank_onnx(path: Path) -> Path:
    """``y = relu(x) * 2`` whose input and output declare no shape at all (ONNX Runtime runs it)."""
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["h"]), helper.make_node("Mul", ["h", "two"], ["y"])],
        "unranked",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[two],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path))
    return path


def test_an_input_of_unknown_rank_is_accepted_when_samples_or_shape_give_it(catalog, options, tmp_path):
    model = _unknown_rank_onnx(tmp_path / "unranked.onnx")
    (x,) = catalog.load_source(model).signature.inputs
    assert (x.name, x.shape, x.batched, x.ranked) == ("x", (), True, False)
    with pytest.raises(sextant.SextantError) as refused:  # nothing says its shape
        sextant.optimize(model, None, options=options, catalog=catalog, runners=("onnxruntime",))
    assert "does not declare how many axes its input 'x' has" in refused.value.message
    assert "--shape x:" in refused.value.hint

    shaped = replace(options, shapes={"x": (2, 3, 5)}, workspace=tmp_path / "shaped")
    status = sextant.optimize(model, None, options=shaped, catalog=catalog, runners=("onnxruntime",)).status
    assert status["signature"]["inputs"][0]["shape"] == [None, 3, 5]
    assert status["selection"]["best"] is not None

    samples = {"x": np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6)}
    given = replace(options, workspace=tmp_path / "sampled")
    package = sextant.optimize(model, samples, options=given, catalog=catalog, runners=("onnxruntime",))
    out = package.best().load(catalog).infer(samples)
    np.testing.assert_allclose(out["y"], np.maximum(samples["x"], 0) * 2, rtol=1e-6)
