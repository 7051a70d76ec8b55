"""The TensorRT plugin: what needs no GPU is tested everywhere; builds and runs on a GPU with TensorRT."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from sextant.devices import cuda_unavailable_reason
from sextant.errors import StepError
from sextant.plugins import availability, load_catalog
from sextant.profiler import PLATEAU
from sextant.records import CUTOFF_WORDS, SCREENED_WORDS
from sextant.signature import Signature, TensorSpec
from sextant.testing.contracts import check_candidates_on_device, check_light_start_up, check_plugin
from sextant.testing.requires import skip_or_fail
from sextant_tensorrt.profiles import builder_flags, derive_profile, pick_profile, timing_cache_path

HAS_TRT = importlib.util.find_spec("tensorrt") is not None
GPU_REASON = cuda_unavailable_reason() or (None if HAS_TRT else "tensorrt not installed")
needs_gpu = pytest.mark.skipif(GPU_REASON is not None, reason=f"needs a GPU with TensorRT: {GPU_REASON}")


def _signature(*inputs: TensorSpec) -> Signature:
    return Signature(inputs, call_style="keyword")


def test_entry_point_and_contracts():
    (ep,) = [e for e in importlib.metadata.entry_points(group="sextant") if e.name == "tensorrt"]
    assert ep.load().__name__ == "sextant_tensorrt"
    names = {c.name for c in check_plugin("sextant_tensorrt")}
    assert {"tensorrt", "tensorrt-fp16", "tensorrt-int8", "tensorrt-tf32", "torch-tensorrt"} <= names


def test_profile_covers_batch_one_to_the_largest_batch_and_the_sequence_lengths_seen():
    signature = _signature(TensorSpec("ids", "int64", (None, None)), TensorSpec("image", "float32", (None, 3, 8, 8)))
    batches = [
        {"ids": np.zeros((4, 16), np.int64), "image": np.zeros((4, 3, 8, 8), np.float32)},
        {"ids": np.zeros((2, 40), np.int64), "image": np.zeros((2, 3, 8, 8), np.float32)},
        {"ids": np.zeros((8, 24), np.int64), "image": np.zeros((8, 3, 8, 8), np.float32)},
    ]
    profile = derive_profile(signature, batches, max_batch=32)
    assert profile["ids"] == ((1, 16), (8, 24), (32, 40))
    assert profile["image"] == ((1, 3, 8, 8), (8, 3, 8, 8), (32, 3, 8, 8))
    # opt never exceeds max when the user caps the batch below the samples'
    assert derive_profile(signature, batches, max_batch=4)["image"][1] == (4, 3, 8, 8)


def test_an_unbatched_input_keeps_its_shape():
    signature = _signature(TensorSpec("table", "float32", (5, 2), batched=False))
    assert derive_profile(signature, [{"table": np.zeros((5, 2), np.float32)}], 16)["table"] == ((5, 2),) * 3


def test_precision_flags():
    assert builder_flags("fp32") == ((), ("TF32",))  # strict fp32: TensorRT allows TF32 unless told not to
    assert builder_flags("tf32") == (("TF32",), ())
    assert builder_flags("fp16") == (("FP16",), ())
    assert builder_flags("bf16") == (("BF16",), ())
    assert builder_flags("int8") == (("INT8", "FP16"), ())
    with pytest.raises(StepError, match="no 'fp8' engines"):
        builder_flags("fp8")


def test_timing_cache_is_keyed_by_tensorrt_version_and_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("SEXTANT_CACHE_DIR", str(tmp_path))
    a = timing_cache_path("10.3.0", "cuda: NVIDIA H100; driver 550")
    assert a == timing_cache_path("10.3.0", "cuda: NVIDIA H100; driver 550")
    assert a.parent == tmp_path / "tensorrt"
    assert a != timing_cache_path("10.4.0", "cuda: NVIDIA H100; driver 550")
    assert a != timing_cache_path("10.3.0", "cuda: NVIDIA A100; driver 550")


def test_the_runner_picks_the_profile_that_holds_the_shapes():
    ranges = [
        {"x": ((1, 8), (4, 8), (8, 8))},
        {"x": ((9, 8), (32, 8), (64, 8))},
    ]
    assert pick_profile({"x": (4, 8)}, ranges) == 0
    assert pick_profile({"x": (33, 8)}, ranges) == 1
    with pytest.raises(StepError, match=r"fit none of the engine's profiles \(x \(1, 8\)\.\.\(8, 8\); x \(9, 8\)"):
        pick_profile({"x": (128, 8)}, ranges)


ENGINE_NEEDS = ("tensorrt", "torch")
TORCH_TRT_NEEDS = ("torch", "torch_tensorrt", "sextant_torch")


def test_every_contribution_says_why_it_is_unavailable_and_how_to_fix_it():
    catalog = load_catalog(allow=["tensorrt"])
    mine = [(c.kind, c.spec) for c in catalog.contributions if c.plugin.name == "tensorrt"]
    engines = {"tensorrt", "tensorrt-tf32", "tensorrt-fp16", "tensorrt-bf16", "tensorrt-int8"}
    torch_trt = {"torch-tensorrt", "torch-tensorrt-fp16"}
    assert {(kind, spec.name) for kind, spec in mine} == {
        *(("converter", n) for n in engines | torch_trt),
        ("runner", "tensorrt"),
        ("runner", "torch-tensorrt"),
    }
    for _, spec in mine:
        name = spec.name
        # what the reason must be on this machine: the first requirement not importable (with how to
        # install it), else no CUDA device, else nothing
        needs = TORCH_TRT_NEEDS if name.startswith("torch-tensorrt") else ENGINE_NEEDS
        assert spec.requires == needs, name
        assert "pip install 'sextant-tensorrt[runtime]'" in spec.install, name
        if needs == TORCH_TRT_NEEDS:
            assert "'./plugins/tensorrt[torch]'" in spec.install, name  # the extra that brings sextant-torch
        missing = [m for m in needs if importlib.util.find_spec(m) is None]
        expected = f"{missing[0]} not importable ({spec.install})" if missing else cuda_unavailable_reason()
        assert availability(spec, "cuda") == expected, name


def test_without_a_gpu_the_planner_skips_engine_builds_with_the_reason():
    if importlib.util.find_spec("sextant_onnx") is None:
        # sextant-tensorrt's own environment has no sextant-onnx: `make test` runs this in test-all,
        # with everything installed, where SEXTANT_REQUIRE_ALL=1 makes this a failure
        skip_or_fail("the ONNX plugin is not installed: no ONNX source to plan from")
    from sextant.planner import make_plan
    from sextant.specs import Format

    plan = make_plan(load_catalog(), Format("onnx"), devices=["cpu"], precisions=("fp32", "fp16"))
    skipped = dict(plan.skipped)
    assert skipped["tensorrt"] == "builds for cuda (add --device cuda)"
    assert skipped["tensorrt-fp16"] == "builds for cuda (add --device cuda)"


def test_sextant_plugins_lists_the_plugin_without_importing_tensorrt():
    document = check_light_start_up(["tensorrt", "torch_tensorrt", "torch"])
    plugin = next(p for p in document["plugins"] if p["name"] == "tensorrt")
    assert plugin["distribution"] == "sextant-tensorrt"


def _onnx_mlp(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((16, 32)).astype(np.float32), rng.standard_normal((32, 4)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.mark.gpu
@needs_gpu
def test_fp32_and_fp16_engines_pass_correctness_and_are_profiled(options, tmp_path):
    pytest.importorskip("sextant_onnx")
    from dataclasses import replace

    import sextant

    _onnx_mlp(tmp_path / "mlp.onnx")
    package = sextant.optimize(
        tmp_path / "mlp.onnx", None, options=replace(options, device="cuda", precisions=("fp32", "fp16"))
    )
    # every candidate planned on cuda (ONNX Runtime's too) judged by its outputs against the CPU fp32
    # reference at its precision's tolerance; the fp16 engine's outputs show it ran in fp16
    checked = check_candidates_on_device(package.path, "cuda")
    for cid in ("tensorrt:tensorrt@cuda", "tensorrt-fp16:tensorrt@cuda"):
        record = checked[cid]
        assert record["status"] == "ok", record  # this small MLP is within fp16's tolerance
        # profiled in full, cut off, or screened out: in every case it says why it stopped
        assert record["profile"]["stop"] in ("max_batch", "plateau", "cutoff", "screened"), record["profile"]
        stopped = record["profile"]["stopped"]
        assert stopped.startswith((CUTOFF_WORDS, SCREENED_WORDS, "reached max batch", PLATEAU)), stopped
        # copies in, compute and copies out timed apart with CUDA events
        stages = record["best_point"]["stages_ms"]
        assert set(stages) == {"host_to_device", "compute", "device_to_host"} and stages["compute"] > 0
        assert record["best_point"]["device_memory_mb"] > 0


@pytest.mark.skipif(HAS_TRT, reason="tensorrt is installed: nothing to explain")
def test_the_plugins_table_shows_the_install_command_intact():
    env = {**__import__("os").environ, "COLUMNS": "400"}
    result = subprocess.run(
        [sys.executable, "-c", "from sextant.cli import main; main(['plugins'])"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert "pip install 'sextant-tensorrt[runtime]'" in result.stdout, result.stdout[-2000:]
