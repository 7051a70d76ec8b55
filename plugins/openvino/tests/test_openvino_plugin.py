"""The OpenVINO runner on ONNX files: entry point and contracts, outputs against numpy, the compile
properties read back from OpenVINO, the precision policy, and clear failures."""

from __future__ import annotations

import importlib.metadata
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import openvino as ov
import pytest
from onnx import TensorProto, helper, numpy_helper
from sextant.api import ONNX, ModelLoadError, RunnerRequest, SampleError, Signature, StepError, TensorSpec
from sextant.devices import precision_unavailable_reason
from sextant.planner import make_plan
from sextant.plugins import load_catalog
from sextant.testing.contracts import check_light_start_up, check_plugin, check_runner
from sextant_openvino.batches import join, split, splittable
from sextant_openvino.config import compile_config
from sextant_openvino.runner import check_precision, load

RNG = np.random.default_rng(0)
W1 = RNG.standard_normal((16, 32)).astype(np.float32)
B1 = RNG.standard_normal(32).astype(np.float32)
W2 = (RNG.standard_normal((32, 4)) / 4).astype(np.float32)
SIGNATURE = Signature(
    (TensorSpec("x", "float32", (None, 16)),),
    # declared in another order than the file's outputs: the runner names them, it does not count them
    (TensorSpec("logits", "float32", (None, 4)), TensorSpec("hidden", "float32", (None, 32))),
)


def mlp_onnx(path: Path) -> Path:
    """x → hidden = relu(x @ W1 + B1) → logits = hidden @ W2; outputs in the file: hidden, logits."""
    weights = [numpy_helper.from_array(a, n) for a, n in ((W1, "w1"), (B1, "b1"), (W2, "w2"))]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["hidden"]),
        helper.make_node("MatMul", ["hidden", "w2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [
            helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["N", 32]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 4]),
        ],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path))
    return path


def reference(x: np.ndarray) -> dict[str, np.ndarray]:
    hidden = np.maximum(x.astype(np.float64) @ W1 + B1, 0)
    return {"hidden": hidden, "logits": hidden @ W2}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return mlp_onnx(tmp_path_factory.mktemp("onnx") / "mlp.onnx")


def request(artifact: Path, **kw) -> RunnerRequest:
    return RunnerRequest(artifact=artifact, signature=SIGNATURE, threads=2, **kw)


def test_entry_point_contracts_and_light_start_up():
    (entry,) = [e for e in importlib.metadata.entry_points(group="sextant") if e.name == "openvino"]
    assert entry.value == "sextant_openvino"
    names = {
        (c.kind, c.spec.name, c.spec.consumes.name, c.spec.produces.name if c.kind == "converter" else None)
        for c in check_plugin("sextant_openvino")
    }
    assert names == {
        ("converter", "openvino", "torch-exported", "openvino-ir"),
        ("runner", "openvino", "onnx", None),
        ("runner", "openvino-ir", "openvino-ir", None),
        ("generator", "openvino-stateful", "transformers-causal-lm", None),
        ("generator", "openvino-genai", "transformers-causal-lm", None),
    }
    listing = check_light_start_up(["openvino", "torch", "onnx"])
    mine = next(p for p in listing["plugins"] if p["name"] == "openvino")
    assert mine["distribution"] == "sextant-openvino"


@pytest.mark.parametrize("hint", ["latency", "throughput"])
def test_outputs_match_numpy_at_every_batch_size(model, hint):
    runner = load(request(model, options={"performance_hint": hint}))
    try:
        for rows in (1, 2, 5, 8):  # the batch axis stays dynamic; under throughput 5 rows are split 3 + 2
            x = RNG.standard_normal((rows, 16)).astype(np.float32)
            out = runner.infer({"x": x})
            assert set(out) == {"logits", "hidden"}  # named as the signature names them, not counted
            for name, expected in reference(x).items():
                assert out[name].shape == expected.shape and out[name].dtype == np.float32
                np.testing.assert_allclose(out[name], expected, rtol=1e-5, atol=1e-5)
    finally:
        runner.close()
    spec = next(c.spec for c in check_plugin("sextant_openvino") if c.kind == "runner" and c.spec.name == "openvino")
    check_runner(spec, model, SIGNATURE, {"x": RNG.standard_normal((6, 16)).astype(np.float32)}, threads=2)


@pytest.mark.parametrize(
    ("options", "hint", "streams", "threads"),
    [
        ({}, "LATENCY", 1, 2),
        ({"performance_hint": "throughput"}, "THROUGHPUT", 2, 2),  # 2 threads: 2 streams of one thread
        ({"num_streams": 2}, "LATENCY", 2, 2),
        ({"performance_hint": "throughput", "num_streams": 1}, "THROUGHPUT", 1, 2),
        ({"inference_num_threads": 1, "cpu_pinning": True}, "LATENCY", 1, 1),
    ],
)
def test_options_reach_openvino(model, options, hint, streams, threads):
    runner = load(request(model, options=options))
    compiled = runner.compiled
    assert str(compiled.get_property("PERFORMANCE_HINT")) == hint
    assert compiled.get_property("ENABLE_CPU_PINNING") is options.get("cpu_pinning", False)
    assert int(compiled.get_property("NUM_STREAMS")) == streams
    assert int(compiled.get_property("INFERENCE_NUM_THREADS")) == threads
    # fp32 is asked for by name (OpenVINO's default on AMX CPUs is bf16) and is what it compiled
    assert compile_config(request(model)).properties()["INFERENCE_PRECISION_HINT"] == "f32"
    assert compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"
    jobs = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    assert (runner.streams is not None) == (jobs > 1)  # several streams: a batch's parts run at once
    if runner.streams is not None:
        assert runner.streams.jobs == jobs
    runner.close()


@pytest.mark.parametrize(
    ("precision", "expected"), [("fp32", "f32"), ("bf16", "bf16"), ("fp16", "f32"), ("int8", "f32")]
)
def test_the_inference_precision_follows_the_candidates(model, precision, expected):
    """Never OpenVINO's default (bf16 on AMX CPUs): an fp16 or int8 artifact carries its precision in
    the graph, and the rest of it runs in f32."""
    props = compile_config(request(model, precision=precision, shared=True)).properties()
    assert props == {
        "INFERENCE_PRECISION_HINT": expected,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": "2",
        "ENABLE_CPU_PINNING": "NO",  # a pipeline's other parts run between the calls
    }
    pinned = compile_config(request(model, options={"cpu_pinning": True}))
    assert pinned.properties()["ENABLE_CPU_PINNING"] == "YES"
    assert not compile_config(request(model, options={"cpu_pinning": True}, shared=True)).cpu_pinning


def test_bf16_computes_bf16_or_is_refused(model):
    """bf16 is OpenVINO's inference precision for a bf16 candidate; where OpenVINO cannot run it,
    loading says so instead of measuring f32 under the bf16 name."""
    x = RNG.standard_normal((4, 16)).astype(np.float32)
    try:
        runner = load(request(model, precision="bf16"))
    except StepError as exc:
        assert "runs f32, not bf16" in str(exc)
        return
    assert runner.compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "bf16"
    out, expected = runner.infer({"x": x}), reference(x)
    error = np.abs(out["hidden"] - expected["hidden"]).max()
    assert 1e-5 < error < 0.1 * np.abs(expected["hidden"]).max()  # rounded to bf16, not f32, and close


def test_a_precision_openvino_does_not_compile_is_refused(model):
    """OpenVINO falls back to f32 silently where a CPU lacks a precision (f16 on most x86 CPUs):
    the runner reads back what was compiled and refuses the candidate instead of measuring f32."""
    asked = replace(compile_config(request(model)), inference_precision="f16")
    compiled = ov.Core().compile_model(str(model), "CPU", asked.properties())
    got = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
    if got == "f16":
        pytest.skip("this CPU computes f16 (AMX-FP16 or AVX512-FP16): OpenVINO compiled what was asked")
    with pytest.raises(StepError, match=rf"runs {got}, not f16, on this CPU \("):
        check_precision(compiled, asked)
    check_precision(compiled, replace(asked, inference_precision=got))  # what was compiled passes


def _catalog():
    return load_catalog(extra_modules=["sextant_openvino"], entry_points=False)


def test_bf16_is_planned_only_as_the_precision_policy_allows():
    def plan(precisions, flags):
        native = None if flags is None else (lambda p, d: precision_unavailable_reason(p, d, frozenset(flags)))
        return make_plan(_catalog(), ONNX, devices=["cpu"], precisions=precisions, native=native)

    default = plan(("fp32",), None)  # the default run: fp32 only
    assert {(c.id, c.precision) for c in default.candidates} == {
        ("source:openvino@cpu", "fp32"),
        ("source:openvino[performance_hint=throughput]@cpu", "fp32"),
    }
    auto_plain = plan(("fp32", "bf16", "fp16"), {"avx512f"})  # --precision auto on a CPU without bf16
    assert all(c.precision == "fp32" for c in auto_plain.candidates)
    assert "no native bf16" in dict(auto_plain.skipped)["source:openvino/bf16@cpu"]
    auto_amx = plan(("fp32", "bf16", "fp16"), {"avx512f", "amx_bf16"})  # ... and on one with AMX-BF16
    assert {c.id for c in auto_amx.candidates if c.precision == "bf16"} == {
        "source:openvino/bf16@cpu",
        "source:openvino/bf16[performance_hint=throughput]@cpu",
    }
    named = plan(("fp32", "bf16"), None)  # a precision asked for by name is tried on any CPU
    assert "source:openvino/bf16@cpu" in {c.id for c in named.candidates}


def test_a_bad_artifact_fails_clearly(model, tmp_path):
    garbage = tmp_path / "broken.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match=r"OpenVINO cannot read broken\.onnx: .*broken\.onnx"):
        load(request(garbage))
    lonely = tmp_path / "model.xml"
    lonely.write_text("<net/>")
    with pytest.raises(ModelLoadError, match=r"model\.xml has no weights file model\.bin"):
        load(request(lonely))
    runner = load(request(model))
    with pytest.raises(SampleError, match=r"it has none named \['y'\]; \['x'\] not given"):
        runner.infer({"y": np.zeros((1, 16), np.float32)})
    with pytest.raises(StepError, match="runs on the CPU, not cuda"):
        load(request(model, device="cuda"))


@pytest.mark.parametrize("hint", ["latency", "throughput"])
def test_a_scalar_input_beside_the_batch(tmp_path, hint):
    """A 0-d input (a scale, a timestep) stays 0-d, and under throughput goes whole to every part."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "scale"], ["y"])],
        "scaled",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("scale", TensorProto.FLOAT, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    )
    path = tmp_path / "scaled.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    signature = Signature(
        (TensorSpec("x", "float32", (None, 3)), TensorSpec("scale", "float32", (), batched=False)),
        (TensorSpec("y", "float32", (None, 3)),),
    )
    runner = load(RunnerRequest(path, signature, threads=2, options={"performance_hint": hint}))
    x = np.arange(12, dtype=np.float32).reshape(4, 3)[:, ::-1]  # not C-contiguous: copied in order
    out = runner.infer({"x": x, "scale": np.array(2.0, np.float32)})
    np.testing.assert_array_equal(out["y"], x * 2)
    runner.close()


def test_batches_split_and_join():
    signature = Signature(
        (TensorSpec("x", "float32", (None, 3)), TensorSpec("table", "float32", (4,), batched=False)),
        (TensorSpec("y", "float32", (None,)),),
    )
    batch = {"x": np.arange(15, dtype=np.float32).reshape(5, 3), "table": np.ones(4, np.float32)}
    parts = split(batch, 2, signature)
    assert [p["x"].shape[0] for p in parts] == [2, 3] or [p["x"].shape[0] for p in parts] == [3, 2]
    assert all(p["table"] is batch["table"] for p in parts)
    np.testing.assert_array_equal(join([{"y": p["x"][:, 0]} for p in parts])["y"], batch["x"][:, 0])
    assert len(split(batch, 8, signature)) == 5  # never an empty part
    assert splittable(signature)
    assert not splittable(signature.with_outputs([TensorSpec("count", "int64", (), batched=False)]))
    assert not splittable(Signature(signature.inputs))  # outputs unknown: one request for the batch
