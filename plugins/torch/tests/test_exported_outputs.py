"""Exported programs of models that return output classes load anywhere (issue 17)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import sextant
import torch
from sextant.testing.requires import importorskip
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
    transformers = importorskip("transformers")
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


def _setting_flags(forward):
    """As transformers' output-capturing decorators: a flag the caller left out is set by keyword."""

    @functools.wraps(forward)  # inspect.signature then shows forward's own parameters
    def wrapper(self, *args, **kwargs):
        kwargs.setdefault("use_cache", False)
        return forward(self, *args, **kwargs)

    return wrapper


class KeywordOrder(nn.Module):
    """A flag between the inputs, set by a decorator when left out, as BERT's ``forward``: the
    TorchScript-based exporter passed keyword inputs by position with the defaults between them
    filled in, so the decorator's keyword met the positional default ("got multiple values for
    argument 'use_cache'")."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(6, 4)

    @_setting_flags
    def forward(self, features=None, use_cache=None, mask=None):
        return self.lin(features) * mask


def test_the_legacy_onnx_exporter_passes_keyword_inputs_by_name(catalog, options):
    importorskip("sextant_onnx", reason="the exported ONNX runs on ONNX Runtime")
    rng = np.random.default_rng(0)
    samples = [{"features": rng.standard_normal((2, 6)).astype(np.float32), "mask": np.ones((2, 4), np.float32)}]
    package = sextant.optimize(
        KeywordOrder().eval(),
        samples,
        options=replace(options, runners=("onnxruntime",), max_batch_size=2),
        catalog=catalog,
    )
    legacy = package.candidate("torch-onnx-legacy:onnxruntime@cpu").record
    # a duplicate when ONNX Runtime optimises it to the dynamo export's graph: judged on its own outputs all the same
    assert legacy.status.value in ("ok", "duplicate"), legacy.reason
    assert legacy.correctness is not None and legacy.correctness.passed, legacy.reason


def test_the_source_names_the_packages_its_pickle_imports():
    transformers = importorskip("transformers")
    from sextant_torch.source import module_source

    config = transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    wrapped = nn.Sequential(transformers.BertModel(config), PairHead())  # torch's own classes are left out
    imports = module_source(wrapped, None).imports  # the modules themselves: transformers' are lazy
    assert "transformers.models.bert.modeling_bert" in imports and "test_exported_outputs" in imports
    assert not [m for m in imports if m.startswith("torch")]
    assert module_source(PairHead(), None).imports == ("test_exported_outputs",)  # not installed: not preloaded
