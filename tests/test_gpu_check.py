"""gpu/check.py (``make test-gpu``) where no CUDA device can be used, and how it judges what it runs."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from _support import ROOT

HIDDEN = "no CUDA device (CUDA_VISIBLE_DEVICES hides them)"
# every example at fp32 first, then each with --precision auto
EXAMPLE_STEPS = [
    f"optimize {e}{p}" for p in ("", " --precision auto") for e in ("mlp", "resnet", "transformer", "keras_cnn")
]


def _module(name: str):
    sys.path.insert(0, str(ROOT / "gpu"))
    try:
        spec = importlib.util.spec_from_file_location(f"gpu_{name}", ROOT / "gpu" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "gpu"))


def test_without_a_cuda_device_it_says_so_skips_every_step_with_the_reason_and_exits_0(tmp_path):
    # the devices hidden, so that this holds on a GPU machine too
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1"}
    result = subprocess.run(
        [sys.executable, "gpu/check.py", "--out", str(tmp_path / "run"), "--wheels", str(tmp_path / "none")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert f"0 passed, 0 failed, {2 + 2 + len(EXAMPLE_STEPS)} skipped" in lines, result.stdout
    rows = json.loads((tmp_path / "run/summary.json").read_text())["rows"]
    by_step = {row["step"]: row for row in rows}
    assert list(by_step) == ["cuda", "wheels", "install", "plugins", "pytest -m gpu", *EXAMPLE_STEPS]
    assert by_step["cuda"]["result"] == "skipped" and by_step["cuda"]["detail"].startswith(HIDDEN)
    assert by_step["wheels"]["result"] == "info"  # what is missing is said, and blocks nothing here
    for step in ("install", "plugins", "pytest -m gpu", *EXAMPLE_STEPS):
        assert (by_step[step]["result"], by_step[step]["detail"]) == ("skipped", HIDDEN), step
        # the table shows the same row: the step, skipped, the reason
        assert any(line.startswith(step + " ") and f"skipped      -  {HIDDEN}" in line for line in lines), step
    assert not (tmp_path / "run/site").exists()  # nothing was installed


def _record(device="cuda", precision="fp32", status="ok", throughput=None, **extra):
    record = {"device": device, "precision": precision, "status": status, **extra}
    if throughput is not None:
        record["best_point"] = {"throughput": throughput}
    return record


def test_an_example_run_passes_only_with_a_cuda_pick_and_no_cuda_candidate_broken_or_wrong_at_fp32():
    check = _module("check")
    ran = check.Ran(0, "", "", 12.0)
    candidates = {
        "source:torch-eager@cpu": _record(device="cpu", throughput=10.0),
        "source:torch-eager@cuda": _record(throughput=100.0),
        "source:torch-eager[x=1]@cuda": _record(throughput=50.0),
        "torch-onnx:onnxruntime@cuda": _record(throughput=250.0),
        "source:torch-eager/fp16@cuda": _record(precision="fp16", status="incorrect"),
        "source:torch-compile@cuda": _record(status="skipped", cause="budget"),
    }
    status = {"candidates": candidates, "selection": {"best": "torch-onnx:onnxruntime@cuda"}}
    result, detail = check.judge_run(ran, status)
    assert result == "passed", detail
    assert detail.startswith("pick torch-onnx:onnxruntime@cuda x2.50 over source:torch-eager@cuda;"), detail
    assert "cuda candidates: 1 incorrect, 1 not started (budget), 3 ok" in detail

    broken = {**candidates, "onnx-fp16:onnxruntime@cuda": _record("cuda", "fp16", "failed", reason="CUDA error")}
    result, detail = check.judge_run(ran, {**status, "candidates": broken})
    assert result == "failed" and "FAILED onnx-fp16:onnxruntime@cuda: CUDA error" in detail

    wrong = {**candidates, "source:torchscript@cuda": _record(status="incorrect")}
    result, detail = check.judge_run(ran, {**status, "candidates": wrong})
    assert result == "failed" and "WRONG at fp32: source:torchscript@cuda" in detail

    killed = check.Ran(None, "", "", 90.0)
    result, detail = check.judge_run(killed, status)
    assert result == "failed" and detail.startswith("timed out after 90 s; pick torch-onnx"), detail

    nothing = check.Ran(4, "", "note: busy\nerror: no candidate could be selected\nSee the logs", 5.0)
    result, detail = check.judge_run(nothing, {"candidates": {}, "selection": {"best": None}})
    no_pick = "exit 4; no pick: error: no candidate could be selected; cuda candidates: none"
    assert (result, detail) == ("failed", no_pick)


def test_carried_wheels_meet_what_the_machine_lacks_and_never_replace_what_it_has(tmp_path):
    needs = _module("needs")
    numpy_version = needs.installed_version("numpy")
    assert numpy_version is not None  # the core's own dependency
    for name in (
        "onnxruntime_gpu-1.20.1-cp311-cp311-manylinux_2_28_x86_64.whl",  # a plugin's need, missing here
        f"numpy-{numpy_version}-cp311-cp311-manylinux_2_28_x86_64.whl",  # the machine has it
        "sextant_gpu_check_dependency-1.0-py3-none-any.whl",  # what a carried wheel depends on
    ):
        (tmp_path / name).write_bytes(b"")
    if needs.installed_version("onnxruntime-gpu") is not None:
        pytest.skip("onnxruntime-gpu is installed here: nothing is missing to carry")
    wanted = needs.needs(ROOT, tmp_path)
    by_name = {n.name: n for n in wanted}
    ort = by_name["onnxruntime-gpu"]
    assert ort.met and ort.have is None and ort.carried.name.startswith("onnxruntime_gpu-1.20.1")
    assert ort.owner == "sextant-onnx[gpu]" and not ort.required
    assert by_name["numpy"].have == numpy_version and by_name["numpy"].required
    chosen = [p.name for p in needs.wheels_to_install(wanted, tmp_path)]
    assert chosen == [
        "onnxruntime_gpu-1.20.1-cp311-cp311-manylinux_2_28_x86_64.whl",
        "sextant_gpu_check_dependency-1.0-py3-none-any.whl",
    ]
    # a core need that is missing blocks the check, and the row says what to carry
    check = _module("check")
    typer = needs.Need("typer>=0.12", "typer", "sextant[report,test]", None, None)
    row, blocked = check.wheels_step([*wanted, typer], tmp_path, None)
    assert row.result == "failed" and "typer>=0.12 (sextant[report,test])" in row.detail
    assert "pip download" in row.detail and f"-d {tmp_path} " in row.detail and "'typer>=0.12'" in row.detail
    assert blocked == f"needs typer>=0.12: carry their wheels in {tmp_path}"
    # where no CUDA device can be used, nothing is needed: the same row is information only
    row, blocked = check.wheels_step([*wanted, typer], tmp_path, "no CUDA device (no NVIDIA driver or GPU found)")
    assert row.result == "info" and blocked is None
