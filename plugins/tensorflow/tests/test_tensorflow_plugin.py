"""The TensorFlow plugin on real Keras architectures and SavedModels built here with random weights."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import textwrap
from dataclasses import replace

import keras
import numpy as np
import pytest
import sextant
import tensorflow as tf
from sextant.devices import cuda_unavailable_reason
from sextant.errors import ModelLoadError, UsageError
from sextant.plugins import installed
from sextant.testing.contracts import (
    check_computed_in_reduced_precision,
    check_judged_against_the_reference,
    check_light_start_up,
    check_plugin,
)

RNG = np.random.default_rng(0)


def _floats(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _mlp() -> keras.Model:
    inputs = keras.Input((12,), name="features")
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    return keras.Model(inputs, keras.layers.Dense(4)(hidden), name="mlp")


def _ok(status: dict) -> set[str]:
    return {cid for cid, c in status["candidates"].items() if c["status"] == "ok"}


def test_entry_point_and_contracts():
    (ep,) = [e for e in importlib.metadata.entry_points(group="sextant") if e.name == "tensorflow"]
    assert ep.load().__name__ == "sextant_tensorflow"
    names = {c.name for c in check_plugin("sextant_tensorflow")}
    assert {"keras-savedmodel", "tf2onnx", "tf-trt", "keras", "tf-savedmodel"} <= names


def test_keras_file_needs_no_samples_and_gets_savedmodel_and_xla_candidates(options, tmp_path):
    path = tmp_path / "mlp.keras"
    _mlp().save(path)
    status = sextant.optimize(path, None, options=options).status
    assert status["baseline"] == "source:keras@cpu"
    assert status["signature"]["inputs"][0]["name"] == "features"
    expected = {
        "source:keras@cpu",
        "source:keras[mode=function]@cpu",
        "keras-savedmodel:tf-savedmodel@cpu",
        "keras-savedmodel:tf-savedmodel[jit_compile=True]@cpu",
    }
    assert expected <= set(status["candidates"])
    # a variant of tf-savedmodel is not tried when its defaults were screened out (ONNX Runtime on
    # the tf2onnx export is measured first, and is much faster here); the reference runner's always is
    passed_over = {
        cid
        for cid, c in status["candidates"].items()
        if c["status"] == "skipped" and "was screened out on every artifact" in c["reason"]
    }
    assert expected <= _ok(status) | passed_over, status["candidates"]
    assert "source:keras[mode=function]@cpu" in _ok(status)
    if "keras-savedmodel:tf-savedmodel[jit_compile=True]@cpu" in passed_over:
        assert status["candidates"]["keras-savedmodel:tf-savedmodel@cpu"]["profile"]["stop"] == "screened"
    for cid in expected & _ok(status):  # one the profiler cut off is still ok: its profile says why it stopped
        profile = status["candidates"][cid]["profile"]
        last, stopped = profile["points"][-1]["batch"], profile["stopped"]
        if profile["stop"] == "screened":  # measured at the ends of the range only, and says at what
            assert stopped.startswith("screened out: estimate ") and [p["batch"] for p in profile["points"]] == [
                1,
                last,
            ]
            assert cid not in status["selection"]["ranking"]
        elif stopped.startswith("stopped early"):
            # the closest miss (sextant.earlystop.stop_reason): a batch size not measured, after the
            # largest measured one below it, which a sparse sweep need not have measured last
            words = r"stopped early: cannot win \((\d+)/s at batch (\d+); at most \d+/s at batch (\d+),"
            found = re.match(words, stopped)
            assert found, stopped
            measured = {p["batch"]: p["throughput"] for p in profile["points"]}
            named, missed = int(found[2]), int(found[3])
            assert missed not in measured and named == max(b for b in measured if b < missed), stopped
            assert int(found[1]) == round(measured[named]), stopped
            assert last >= 2  # batch 1 is always measured in full
        else:
            assert stopped in (f"reached max batch {last}", f"throughput stopped improving at batch {last}"), stopped
    assert status["selection"]["best"] in _ok(status)
    assert any("no samples given" in note for note in status["notes"])


def test_a_keras_object_with_dict_inputs_and_outputs_keeps_their_names(options):
    a, b = keras.Input((8,), name="a"), keras.Input((4,), name="b")
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Concatenate()([a, b]))
    model = keras.Model(
        {"a": a, "b": b},
        {"score": keras.layers.Dense(1)(hidden), "probs": keras.layers.Dense(3, activation="softmax")(hidden)},
    )
    samples = [{"a": _floats(4, 8), "b": _floats(4, 4)}, {"a": _floats(2, 8), "b": _floats(2, 4)}]
    package = sextant.optimize(model, samples, options=replace(options, runners=("tf-savedmodel",)))
    status = package.status
    assert {o["name"] for o in status["signature"]["outputs"]} == {"score", "probs"}
    assert "keras-savedmodel:tf-savedmodel@cpu" in _ok(status)
    outputs = package.best().load().infer(samples[0])
    expected = model(samples[0], training=False)
    np.testing.assert_allclose(outputs["probs"], expected["probs"].numpy(), atol=1e-5)


def test_a_multi_input_model_takes_positional_samples_by_its_input_names(options):
    tokens, extra = keras.Input((None,), dtype="int32", name="tokens"), keras.Input((3,), name="extra")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(20, 8)(tokens))
    model = keras.Model([tokens, extra], keras.layers.Dense(2)(keras.layers.Concatenate()([pooled, extra])))
    samples = [
        (RNG.integers(0, 20, (3, 7)).astype(np.int32), _floats(3, 3)),
        (RNG.integers(0, 20, (2, 5)).astype(np.int32), _floats(2, 3)),
    ]
    status = sextant.optimize(model, samples, options=options).status
    assert [t["name"] for t in status["signature"]["inputs"]] == ["tokens", "extra"]
    assert status["signature"]["inputs"][0]["shape"] == [None, None]  # the sequence length varies
    assert {"source:keras@cpu", "keras-savedmodel:tf-savedmodel@cpu"} <= _ok(status)


def test_a_keras_applications_architecture_with_mixed_precision(options):
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), weights=None, classes=10, alpha=0.35)
    samples = [_floats(2, 32, 32, 3)]
    package = sextant.optimize(
        model, samples, options=replace(options, precisions=("fp32", "bf16"), runners=("keras",))
    )
    mixed = package.status["candidates"]["source:keras/bf16@cpu"]
    assert mixed["precision"] == "bf16"
    # judged against the fp32 reference with bf16 tolerances; its status follows from its outputs
    check_judged_against_the_reference(package.path, mixed)
    if mixed["status"] == "incorrect":
        assert mixed["reason"].startswith("correctness: output "), mixed  # and it says by how much
    assert "source:keras@cpu" in _ok(package.status)
    # and computed in bf16: a runner that silently ran fp32 would match the reference to ~1e-7
    check_computed_in_reduced_precision(package.path, mixed, package.status["candidates"]["source:keras@cpu"])


class _Signatures(tf.Module):
    def __init__(self) -> None:
        self.scale = tf.Variable(3.0)

    @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32, name="x")])
    def triple(self, x):
        return {"y": x * self.scale}

    @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32, name="x")])
    def shift(self, x):
        return {"y": x + 1.0, "total": tf.reduce_sum(x, axis=1)}


def test_a_savedmodel_with_several_signatures_is_used_through_the_chosen_one(options, tmp_path):
    module = _Signatures()
    folder = tmp_path / "multi"
    tf.saved_model.save(module, str(folder), signatures={"triple": module.triple, "shift": module.shift})
    with pytest.raises(ModelLoadError, match="several signatures") as caught:
        sextant.optimize(folder, None, options=options)
    assert "--source-option signature=NAME" in caught.value.hint and "shift, triple" in caught.value.hint
    with pytest.raises(UsageError, match="no signature 'double'"):
        sextant.optimize(folder, None, options=replace(options, source_options={"signature": "double"}))

    package = sextant.optimize(folder, None, options=replace(options, source_options={"signature": "shift"}))
    status = package.status
    assert status["baseline"] == "source:tf-savedmodel@cpu"
    assert {o["name"] for o in status["signature"]["outputs"]} == {"y", "total"}
    assert "source:tf-savedmodel[jit_compile=True]@cpu" in _ok(status)
    x = _floats(3, 5)
    np.testing.assert_allclose(package.best().load().infer({"x": x})["y"], x + 1.0, atol=1e-6)


def test_a_tf_function_with_an_input_signature_is_a_source(options):
    weights = tf.Variable(_floats(6, 2))

    @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="x")])
    def project(x):
        return tf.nn.relu(x @ weights)

    status = sextant.optimize(project, [_floats(4, 6)], options=options).status
    assert status["model"]["format"] == "tf-savedmodel"
    assert "source:tf-savedmodel@cpu" in _ok(status)

    @tf.function
    def unsigned(x):
        return x

    with pytest.raises(ModelLoadError, match="needs an input_signature"):
        sextant.optimize(unsigned, [_floats(4, 6)], options=options)


CUSTOM = """
import keras
import numpy as np


class Scale(keras.layers.Layer):
    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class NoConfig(keras.layers.Layer):
    def __init__(self, table):
        super().__init__()
        self.table = table

    def call(self, x):
        return x


def good():
    inputs = keras.Input((6,), name="x")
    return keras.Model(inputs, Scale(2.5)(keras.layers.Dense(3)(inputs)))


def bad():
    inputs = keras.Input((6,), name="x")
    return keras.Model(inputs, NoConfig(object())(inputs))


def samples():
    return [np.ones((2, 6), np.float32)]
"""


def test_custom_layers_from_a_script_travel_to_the_children(options, tmp_path):
    script = tmp_path / "custom_model.py"
    script.write_text(textwrap.dedent(CUSTOM))
    status = sextant.optimize(f"{script}:good", f"{script}:samples", options=options).status
    assert {"source:keras@cpu", "keras-savedmodel:tf-savedmodel@cpu"} <= _ok(status)
    with pytest.raises(ModelLoadError, match="cannot save the Keras model") as caught:
        sextant.optimize(f"{script}:bad", f"{script}:samples", options=replace(options, fresh=True))
    assert "get_config" in caught.value.hint


def test_a_rerun_with_an_equal_model_object_is_served_from_the_cache(options):
    from sextant_tensorflow.source import read_keras

    samples = [_floats(4, 12)]
    package = sextant.optimize(_mlp(), samples, options=replace(options, runners=("keras",)))
    # the same architecture and weights, as a new Python object (loaded from the saved source)
    same = read_keras(package.path / package.status["model"]["source"])
    rerun = sextant.optimize(same, samples, options=replace(options, runners=("keras",))).status
    assert all(c.get("cached") for c in rerun["candidates"].values()), rerun["candidates"]


def test_savedmodel_to_onnx_keeps_names_and_numbers(tmp_path):
    # tf2onnx, onnx and onnxruntime are in the 'test' extra: missing, they fail this test
    import onnxruntime as ort
    from sextant.runtime import StepRequest
    from sextant.signature import Signature, TensorSpec
    from sextant_tensorflow.export import keras_to_savedmodel, savedmodel_to_onnx

    model = _mlp()
    model.save(tmp_path / "model.keras")
    signature = Signature((TensorSpec("features", "float32", (None, 12)),), call_style="positional")
    saved = keras_to_savedmodel(
        StepRequest(tmp_path / "model.keras", tmp_path / "saved", signature, samples=tmp_path / "unused.npz")
    )
    onnx_path = savedmodel_to_onnx(StepRequest(saved, tmp_path / "onnx", signature, samples=tmp_path / "unused.npz"))
    session = ort.InferenceSession(str(onnx_path))
    assert [i.name for i in session.get_inputs()] == ["features"]
    assert [o.name for o in session.get_outputs()] == ["output_0"]
    x = _floats(5, 12)
    np.testing.assert_allclose(session.run(None, {"features": x})[0], model(x).numpy(), atol=1e-5)


def test_gpu_steps_and_runners_say_why_they_are_unavailable():
    from sextant.plugins import availability, load_catalog
    from sextant_tensorflow.checks import check_tensorflow

    # what the reason must be here, from this machine: TensorRT importable? a GPU? a TensorFlow with CUDA?
    gpu_build = any(installed(d) for d in ("tensorflow", "tensorflow-gpu", "tf-nightly"))
    no_cuda_build = "tensorflow-cpu has no CUDA support (pip install 'sextant-tensorflow[gpu]' instead of [cpu])"
    assert check_tensorflow("cuda") == (None if gpu_build else no_cuda_build)
    assert check_tensorflow("cpu") is None

    catalog = load_catalog(allow=["tensorflow"])
    for name in ("tf-trt", "tf-trt-fp16"):
        tftrt = catalog.get("converter", name).spec
        assert tftrt.requires == ("tensorflow", "tensorrt") and tftrt.device == "cuda"
        install = "TF-TRT needs TensorFlow with CUDA and TensorRT: pip install 'sextant-tensorflow[gpu]' tensorrt"
        if importlib.util.find_spec("tensorrt") is None:
            expected = f"tensorrt not importable ({install})"
        elif cuda_unavailable_reason() is not None:
            expected = cuda_unavailable_reason()
        else:
            expected = None if gpu_build else no_cuda_build
        assert availability(tftrt) == expected, name


def test_listing_plugins_does_not_import_tensorflow():
    check_light_start_up(["tensorflow", "keras", "tf2onnx"])
