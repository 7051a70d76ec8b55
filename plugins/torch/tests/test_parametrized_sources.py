"""Models torch.save refuses to pickle (parametrized modules: weight_norm) still get a run (issue 17)."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import sextant
import torch
from sextant_torch import pickling
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

FAST = ["--max-batch-size", "4", "--batch-budget-s", "0.2", "--window-ms", "5"]


class SpeechBlock(nn.Module):
    """A weight-normed conv, as in vocoders and wav2vec-style feature encoders, and a spectral norm."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = weight_norm(nn.Conv1d(4, 8, 3, padding=1), dim=2)
        self.head = spectral_norm(nn.Linear(8, 3))

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(-1))


def _model() -> SpeechBlock:
    torch.manual_seed(0)
    model = SpeechBlock()
    with torch.no_grad():  # the magnitude no longer equals the direction's norm, as after training
        model.conv.parametrizations.weight.original0.mul_(1.5)
    return model.eval()


def test_a_parametrized_module_is_written_and_rebuilt_parametrized():
    model = _model()
    buffer = io.BytesIO()
    try:
        torch.save(model, io.BytesIO())
    except RuntimeError as exc:  # what the plain path meets
        assert "parametrized" in str(exc)
    torch.save(model, buffer, pickle_module=pickling)
    loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    assert parametrize.is_parametrized(loaded.conv, "weight") and parametrize.is_parametrized(loaded.head, "weight")
    assert pickling.parametrized(loaded) == ["conv.weight", "head.weight"]
    for key, tensor in model.state_dict().items():  # original0 (magnitude) and original1 (direction) kept
        torch.testing.assert_close(loaded.state_dict()[key], tensor, rtol=0, atol=0)
    x = torch.randn(2, 4, 16)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_a_weight_norm_model_object_gets_a_run(catalog, options):
    x = np.random.default_rng(0).standard_normal((2, 4, 16)).astype(np.float32)
    package = sextant.optimize(
        _model(),
        x,
        options=replace(options, runners=("torch-eager", "torchscript", "torch-exported")),
        catalog=catalog,
    )
    status = package.status
    assert any("parametrized tensor(s) (conv.weight, head.weight" in n for n in status["notes"]), status["notes"]
    for candidate in ("source:torch-eager@cpu", "torchscript-trace:torchscript@cpu", "torch-export:torch-exported@cpu"):
        record = status["candidates"][candidate]
        assert record["status"] == "ok", (candidate, record.get("reason"))
    # TorchScript cannot script a parametrization: the failure is said in one line, the innermost cause
    scripted = status["steps"]["torchscript-script"]
    assert scripted["status"] == "failed"
    assert "\n" not in scripted["reason"] and scripted["reason"].split(":")[0].endswith("Error"), scripted["reason"]


FACTORY = """
import numpy as np
import torch
from torch.nn.utils.parametrizations import weight_norm


class Vocoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.pre = weight_norm(torch.nn.Conv1d(4, 8, 5, padding=2))
        self.post = weight_norm(torch.nn.Conv1d(8, 1, 3, padding=1))

    def forward(self, x):
        return torch.tanh(self.post(torch.nn.functional.leaky_relu(self.pre(x), 0.1)))


def build():
    torch.manual_seed(0)
    return Vocoder()


def samples():
    return np.random.default_rng(0).standard_normal((2, 4, 32)).astype(np.float32)
"""

LOAD_SOURCE = """
import sys, numpy as np, sextant
runner = sextant.load(sys.argv[1]).candidate("source:torch-eager@cpu").load(trust_source=True)
x = np.random.default_rng(0).standard_normal((2, 4, 32)).astype(np.float32)
np.save(sys.argv[2], runner.infer({"input_0": x})["output_0"])
"""


def test_a_weight_norm_model_from_a_factory_file_gets_a_run_and_loads_in_a_fresh_process(tmp_path):
    (tmp_path / "vocoder.py").write_text(textwrap.dedent(FACTORY))
    ws = tmp_path / "ws"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-m", "sextant.cli", "optimize", "vocoder.py:build", "--samples", "vocoder.py:samples"]
        + ["-w", str(ws), "--runners", "torch-eager,torch-exported", "--json", *FAST],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert any("2 parametrized tensor(s) (pre.weight, post.weight" in n for n in document["notes"])
    assert document["candidates"]["torch-export:torch-exported@cpu"]["status"] == "ok"
    # the source, whose class lived in vocoder.py, rebuilt in a process that never imported that file
    out = tmp_path / "out.npy"
    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_SOURCE, str(ws), str(out)], capture_output=True, text=True, env=env, timeout=120
    )
    assert loaded.returncode == 0, loaded.stderr
    # ... gives the model's own outputs: its weights (magnitude and direction) came back, not fresh ones
    spec = importlib.util.spec_from_file_location("vocoder_here", tmp_path / "vocoder.py")
    vocoder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vocoder)
    with torch.inference_mode():
        expected = vocoder.build().eval()(torch.from_numpy(vocoder.samples())).numpy()
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-5, atol=1e-6)
