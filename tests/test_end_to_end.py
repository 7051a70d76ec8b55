"""The real torch and ONNX plugins together, through the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sextant as sx
import torch
from _support import FAST, ROOT, sextant

pytest.importorskip("onnxruntime")


def test_torch_factory_to_a_loaded_runner(tmp_path):
    ws = tmp_path / "mlp"
    result = sextant(
        "optimize",
        "examples/mlp.py:build",
        "--samples",
        "examples/mlp.py:samples",
        "-w",
        str(ws),
        "--runners",
        "torch-eager,torchscript,torch-exported,onnxruntime",
        "--json",
        *FAST,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    formats = {r["format"] for r in document["candidates"].values() if r["status"] == "ok"}
    assert {"torch-module", "torchscript", "torch-exported", "onnx"} <= formats
    best = sx.load(ws).best()
    runner = best.load()
    import importlib.util

    spec = importlib.util.spec_from_file_location("mlp_example", ROOT / "examples" / "mlp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x = module.samples()[0]
    with torch.inference_mode():
        expected = module.build()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(runner.infer({"input_0": x})["output_0"], expected, rtol=1e-3, atol=1e-4)
    runner.close()


def test_onnx_file_with_no_samples_and_every_precision(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8)).eval()
    path = tmp_path / "small.onnx"
    torch.onnx.export(
        model,
        (torch.randn(2, 32),),
        str(path),
        dynamo=False,
        input_names=["features"],
        output_names=["logits"],
        dynamic_axes={"features": {0: "n"}, "logits": {0: "n"}},
    )
    result = sextant("optimize", str(path), "--precision", "auto", "-w", str(tmp_path / "ws"), "--json", *FAST)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert any("random inputs" in note for note in document["notes"])
    precisions = {r["precision"] for r in document["candidates"].values() if r["status"] in ("ok", "incorrect")}
    assert {"fp32", "fp16", "int8"} <= precisions
    best = document["candidates"][document["selection"]["best"]]
    assert best["correctness"]["passed"]
