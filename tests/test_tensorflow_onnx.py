"""The TensorFlow plugin with the ONNX plugin installed: Keras models get ONNX Runtime candidates."""

from __future__ import annotations

import json

from _support import FAST, sextant
from sextant.testing.requires import importorskip

importorskip("tf2onnx")
importorskip("onnxruntime")


def test_a_keras_file_competes_on_onnx_runtime_too(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(32, activation="relu")(inputs)))
    model.save(tmp_path / "small.keras")
    ws = tmp_path / "ws"
    result = sextant("optimize", str(tmp_path / "small.keras"), "-w", str(ws), "--json", *FAST)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    steps = document["steps"]
    assert steps["keras-savedmodel"]["status"] == "ok"
    assert steps["keras-savedmodel+tf2onnx"]["status"] == "ok"
    candidates = document["candidates"]
    onnx = candidates["keras-savedmodel+tf2onnx:onnxruntime@cpu"]
    assert onnx["status"] == "ok", onnx
    assert max(o["max_abs_error"] for o in onnx["correctness"]["outputs"]) < 1e-4
    # the chain is already two steps long: no ONNX converter follows tf2onnx
    assert not any(step.startswith("keras-savedmodel+tf2onnx+") for step in steps)


def test_the_keras_example_runs_through_the_command_line(tmp_path):
    ws = tmp_path / "cnn"
    result = sextant(
        "optimize",
        "examples/keras_cnn.py:build",
        "--samples",
        "examples/keras_cnn.py:samples",
        "-w",
        str(ws),
        "--json",
        *FAST,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    ok = {cid for cid, c in document["candidates"].items() if c["status"] == "ok"}
    assert {"source:keras@cpu", "keras-savedmodel:tf-savedmodel@cpu", "keras-savedmodel+tf2onnx:onnxruntime@cpu"} <= ok
    assert document["selection"]["best"] in ok
