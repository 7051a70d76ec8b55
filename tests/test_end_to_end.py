"""The real torch and ONNX plugins together, through the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sextant as sx
import torch
from _support import FAST, ROOT, mlp_args, sextant
from sextant.testing.contracts import check_judged_against_the_reference
from sextant.testing.requires import importorskip

importorskip("onnxruntime")


def test_torch_factory_to_a_loaded_runner(tmp_path):
    ws = tmp_path / "mlp"
    result = sextant(*mlp_args(ws, "--runners", "torch-eager,torchscript,torch-exported,onnxruntime"))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    formats = {r["format"] for r in document["candidates"].values() if r["status"] == "ok"}
    assert {"torch-module", "torchscript", "torch-exported", "onnx"} <= formats
    best = sx.load(ws).best()
    runner = best.load(trust_source=True)  # our own package; eager may win, and its source is a pickle
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
    ws = tmp_path / "ws"
    # every precision named (auto would leave fp16 out on a CPU without native fp16)
    result = sextant("optimize", str(path), "--precision", "fp32,fp16,int8", "-w", str(ws), "--json", *FAST)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert any("random inputs" in note for note in document["notes"])
    # each precision's conversion was judged against the fp32 reference under its own tolerance, and
    # its status follows from its outputs
    for cid, precision in (
        ("source:onnxruntime@cpu", "fp32"),
        ("onnx-fp16:onnxruntime@cpu", "fp16"),
        ("onnx-int8:onnxruntime@cpu", "int8"),
    ):
        record = document["candidates"][cid]
        assert record["precision"] == precision
        check_judged_against_the_reference(ws, record)
    best = document["candidates"][document["selection"]["best"]]
    assert best["status"] == "ok" and best["correctness"]["passed"]


@pytest.mark.parametrize("strategy", ["brute", "quick", "optuna"])
def test_search_of_onnx_runtime_options_on_a_real_runner(tmp_path, strategy):
    ws = tmp_path / "ws"
    # one ONNX file, from the legacy exporter: the search is what this test is about (the dynamo
    # exporter and onnxslim run in test_torch_factory_to_a_loaded_runner; on which artifact a runner's
    # options are tried: core/tests/test_pipeline.py); one thread, whatever the machine: the thread
    # counts then leave the space (the rule checked below), the 8 other configurations are searched
    steps = ("--steps", "torch-onnx-legacy", "--threads", "1")
    args = mlp_args(ws, "--runners", "onnxruntime", "--formats", "onnx", *steps, "--search", strategy)
    result = sextant(*args)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    ((start, searched),) = document["search"].items()
    assert searched["strategy"] == strategy and searched["measured"] >= 2
    candidates = document["candidates"]
    defaults = candidates[start]  # the search starts from the candidate with the runner's defaults
    measured = [
        r
        for r in candidates.values()
        if (r["step"], r["runner"], r["device"]) == (defaults["step"], defaults["runner"], defaults["device"])
        and r["status"] == "ok"
    ]
    assert len(measured) >= 2, "the search measured configurations other than the defaults"
    (best,) = [r for r in measured if searched["best_options"].items() <= r["options"].items()]
    # the best configuration is the one with the highest throughput recorded among those searched, and
    # the gain reported is the one its measurements and the defaults' give
    assert best["best_point"]["throughput"] == max(r["best_point"]["throughput"] for r in measured)
    gain = best["best_point"]["throughput"] / defaults["best_point"]["throughput"] - 1
    assert searched["gain_over_defaults"] == pytest.approx(gain, abs=1e-4)
    assert "io_binding" not in json.dumps(document["search"])  # a CUDA-only option is not searched on the CPU
    # thread counts at or above the run's threads (0 stands for them) are not searched
    threads = document["host"]["threads"]
    assert threads == 1  # --threads
    assert {r["options"]["intra_op_threads"] for r in measured} <= {0, *range(1, threads)}
    # a second run that loads the model (--reload; unchanged, it would answer from the package) finds every
    # measurement in its store and the workspace: nothing is measured again, and it reports every
    # configuration the first searched (an Optuna study kept in the workspace already holds its trials:
    # they are asked for again, from the store), and the same best
    again = json.loads(sextant(*args, "--reload").stdout)
    ((start_again, searched_again),) = again["search"].items()
    assert start_again == start and searched_again["measured"] == 0
    for item in ("configurations", "best_options", "gain_over_defaults"):
        assert searched_again[item] == searched[item], item
    options = lambda document: sorted(  # noqa: E731
        json.dumps(r["options"], sort_keys=True)
        for r in document["candidates"].values()
        if (r["step"], r["runner"], r["device"]) == (defaults["step"], defaults["runner"], defaults["device"])
        and r["status"] == "ok"
    )
    assert options(again) == options(document) and len(options(again)) == searched["configurations"]
