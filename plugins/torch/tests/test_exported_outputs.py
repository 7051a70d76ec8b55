"""Exported programs of models that return output classes load anywhere (issue 17)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import pytest
import sextant
import torch
from torch import nn

LOAD_BEST = """
import json, sys, numpy as np, sextant
runner = sextant.load(sys.argv[1]).best().load()
inputs = {k: np.asarray(v, dtype=np.float32 if k == "input_0" else np.int64) for k, v in json.loads(sys.argv[2]).items()}
print(json.dumps({k: v.tolist() for k, v in runner.infer(inputs).items()}))
"""


def _load_best_in_a_fresh_process(workspace, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``sextant.load(ws).best().load()`` in a process that never imported the model's classes."""
    result = subprocess.run(
        [sys.executable, "-c", LOAD_BEST, str(workspace), json.dumps({k: v.tolist() for k, v in inputs.items()})],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return {k: np.asarray(v) for k, v in json.loads(result.stdout).items()}


class Pair(NamedTuple):
    scores: torch.Tensor
    embedding: torch.Tensor


class PairHead(nn.Module):
    """Returns a named tuple of a class defined here, which no runner process imports."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 4)

    def forward(self, x):
        hidden = torch.tanh(self.lin(x))
        return Pair(hidden.softmax(-1), hidden)


def test_an_exported_program_returning_a_named_tuple_loads_in_a_fresh_process(catalog, options):
    torch.manual_seed(0)
    model = PairHead().eval()
    x = np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)
    package = sextant.optimize(
        model, x, options=replace(options, runners=("torch-exported",), max_batch_size=2), catalog=catalog
    )
    assert package.status["selection"]["best"] == "torch-export:torch-exported@cpu", package.status["candidates"]
    outputs = _load_best_in_a_fresh_process(package.path, {"input_0": x[:1]})
    assert list(outputs) == ["scores", "embedding"]
    with torch.inference_mode():
        expected = model(torch.from_numpy(x[:1]))
    np.testing.assert_allclose(outputs["scores"], expected.scores.numpy(), rtol=1e-5, atol=1e-6)


def test_a_transformers_model_output_exports_and_loads_in_a_fresh_process(catalog, options):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, vocab_size=100
    )
    model = transformers.BertModel(config).eval()
    rng = np.random.default_rng(0)
    mask = np.ones((2, 8), np.int64)
    mask[1, 5:] = 0
    samples = {"input_ids": rng.integers(0, 100, (2, 8)).astype(np.int64), "attention_mask": mask}
    package = sextant.optimize(
        model, samples, options=replace(options, runners=("torch-exported",), max_batch_size=2), catalog=catalog
    )
    record = package.status["candidates"]["torch-export:torch-exported@cpu"]
    assert record["status"] == "ok", (record.get("reason"), record.get("log_tail"))
    assert package.status["selection"]["best"] == "torch-export:torch-exported@cpu"

    inputs = {"input_ids": rng.integers(0, 100, (1, 8)).astype(np.int64), "attention_mask": np.ones((1, 8), np.int64)}
    outputs = _load_best_in_a_fresh_process(package.path, inputs)
    assert list(outputs) == ["last_hidden_state", "pooler_output"]
    with torch.inference_mode():
        expected = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    np.testing.assert_allclose(outputs["pooler_output"], expected.pooler_output.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(outputs["last_hidden_state"], expected.last_hidden_state.numpy(), rtol=1e-4, atol=1e-5)
