"""Plugin discovery across distributions, the README's plugin guide, and light start-up."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import sextant.hookspecs as hookspecs
from _support import ROOT, sextant
from sextant.devices import cuda_unavailable_reason
from sextant.testing.contracts import check_light_start_up


def test_every_hook_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    hooks = [name for name in dir(hookspecs) if name.startswith("sextant_")]
    assert len(hooks) >= 7
    missing = [h for h in hooks if h not in readme]
    assert not missing, f"hooks missing from README.md: {missing}"
    assert "make demo" in readme and "make test" in readme


def test_installed_plugins_are_listed_with_their_contributions():
    document = json.loads(sextant("plugins", "--json").stdout)
    by_name = {p["name"]: p for p in document["plugins"]}
    assert {"builtin", "torch", "onnx"} <= set(by_name)
    torch_runners = {c["name"]: c for c in by_name["torch"]["contributions"] if c["kind"] == "runner"}
    assert torch_runners["torch-eager"]["devices"]["cpu"] is None
    # on CUDA, torch-eager has no check of its own: available exactly where a GPU is visible
    no_gpu = cuda_unavailable_reason()
    if no_gpu is None:
        assert torch_runners["torch-eager"]["devices"]["cuda"] is None
    else:
        assert no_gpu.startswith("no CUDA device")
        assert torch_runners["torch-eager"]["devices"]["cuda"] == no_gpu


def test_cli_start_up_imports_no_framework():
    check_light_start_up(["torch", "onnx", "onnxruntime", "tensorflow", "keras", "tf2onnx", "onnxslim"])


def test_a_third_party_plugin_installed_from_a_folder_is_listed_and_used(tmp_path):
    source = tmp_path / "my-plugin"
    shutil.copytree(ROOT / "plugins" / "_template", source)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(source)],
        check=True,
        timeout=300,
    )
    env = {"PYTHONPATH": str(target)}
    document = json.loads(sextant("plugins", "--json", env=env).stdout)
    cosine = next(p for p in document["plugins"] if p["name"] == "cosine")
    assert cosine["distribution"] == "sextant-cosine"
    assert [c["name"] for c in cosine["contributions"]] == ["cosine"]
    # and the pipeline can use what it contributes
    model = tmp_path / "tiny.npmlp"
    from sextant.testing.fake import NumpyMLP

    NumpyMLP().save(model)
    env["SEXTANT_PLUGIN_MODULES"] = "sextant.testing.fake"
    result = sextant(
        "optimize",
        str(model),
        "--comparator",
        "cosine",
        "-w",
        str(tmp_path / "ws"),
        "--json",
        "--max-batch-size",
        "2",
        "--batch-budget-s",
        "0.1",
        "--window-ms",
        "2",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["options"]["comparator"] == "cosine"


def test_readme_example_output_is_current():
    readme = (ROOT / "README.md").read_text()
    # the README shows real output of the demo command: the table header and the best line
    assert re.search(r"best: .+ — [\d,]+/s at batch \d+", readme)
