"""Causal LMs of transformers optimized as generation loops: tiny random Llama, GPT-2 and Qwen2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sextant
import torch
from sextant.api import GeneratorRequest
from sextant.errors import SextantError
from sextant.generation.loop import greedy, teacher_forced

import causal_lms
from sextant_torch.generation import load_dynamic, load_static, load_static_compiled

HERE = Path(__file__).parent
FACTORIES = HERE / "causal_lms.py"
FAST = ["--prompt-lengths", "6,12", "--new-tokens", "5", "--generation-batches", "1,2"]


def _sextant(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    return subprocess.run(
        [sys.executable, "-m", "sextant.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )


def _eager(make, prompt: np.ndarray, new_tokens: int) -> list[int]:
    model = make()
    ids = torch.tensor(prompt)[None]
    out = model.generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
    )
    return out[0, len(prompt) :].tolist()


@pytest.mark.parametrize("make", [causal_lms.llama, causal_lms.gpt2, causal_lms.qwen2])
def test_the_reference_loop_is_generate_and_the_static_cache_matches_it(make, tmp_path):
    make().save_pretrained(tmp_path / "model")
    prompt = np.random.default_rng(1).integers(0, causal_lms.VOCAB, 10)
    reference = load_dynamic(GeneratorRequest(tmp_path / "model", max_length=32))
    ids, logits = greedy(reference, prompt, 8)
    assert ids.tolist() == _eager(make, prompt, 8)
    static = load_static(GeneratorRequest(tmp_path / "model", max_length=32))
    np.testing.assert_allclose(teacher_forced(static, prompt, ids), logits, atol=1e-5, rtol=1e-4)
    assert (reference.vocab_size, reference.max_positions) == (causal_lms.VOCAB, causal_lms.POSITIONS)


#: one family end to end (two CLI runs and a fresh process, over a minute on a busy 2-core machine);
#: GPT-2's and Qwen2's caches are checked against generate by the test above
@pytest.mark.parametrize("factory", ["llama"])
def test_optimize_text_generation_end_to_end(factory, tmp_path):
    ws = tmp_path / "ws"
    args = ["optimize", f"{FACTORIES}:{factory}", *FAST, "-w", str(ws), "--json"]
    args += ["--runners", "torch-generate,torch-static-cache"]
    first = _sextant(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    status = json.loads(first.stdout)
    assert status["task"] == "text-generation"  # detected: a causal LM with generate
    records = status["candidates"]
    assert {r["status"] for r in records.values()} == {"ok"}, {k: r.get("reason") for k, r in records.items()}
    for record in records.values():
        assert record["correctness"]["passed"]
        assert [p["batch"] for p in record["profile"]["points"]] == [1, 2]
        assert set(record["ttft_ms"]) == {"6", "12"}
    best = status["selection"]["best"]
    assert best in records
    # the pick, loaded in a fresh process from the package, generates what eager generate does
    prompt = [5, 7, 11, 13, 17, 19]
    code = (
        "import sextant, json; g = sextant.load(%r).best().load(); "
        "print(json.dumps(g.generate(%r, max_new_tokens=6)[0].tolist()))" % (str(ws), prompt)
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    generated = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert generated[6:] == _eager(getattr(causal_lms, factory), np.array(prompt), 6)
    # a re-run measures nothing
    again = _sextant(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    rerun = json.loads(again.stdout)
    assert rerun["run"]["ran"] == 0
    assert all(r["cached"] for r in rerun["candidates"].values())
    assert rerun["selection"]["best"] == best


def test_bad_input_is_a_clear_error(tmp_path, monkeypatch):
    """Refused before anything is measured or written: in this process (the CLI's rendering of an
    error is tested in the core), each a few seconds rather than a fresh interpreter importing torch."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SextantError, match="GPT2Model, which has no generate"):
        sextant.optimize(f"{FACTORIES}:gpt2_body", task="text-generation")
    np.savez(tmp_path / "long.npz", input_ids=np.ones((1, 60), np.int64))
    with pytest.raises(SextantError, match="more than the model's 64 positions"):
        sextant.optimize(f"{FACTORIES}:llama", str(tmp_path / "long.npz"))
    np.savez(tmp_path / "vocab.npz", input_ids=np.array([[1, 2, 500]]))
    with pytest.raises(SextantError, match=r"token id\(s\) \[500\] outside the model's vocabulary of 96"):
        sextant.optimize(f"{FACTORIES}:llama", str(tmp_path / "vocab.npz"))
    assert not (tmp_path / "sextant-workspace").exists()  # refused before anything was written


def test_a_save_pretrained_folder_is_a_generation_source(tmp_path, catalog):
    causal_lms.qwen2().save_pretrained(tmp_path / "qwen")
    source = catalog.load_source(tmp_path / "qwen", task="auto")
    assert source.format.name == "transformers-causal-lm"
    assert (source.vocab_size, source.max_positions) == (causal_lms.VOCAB, causal_lms.POSITIONS)
    assert source.imports == ("transformers.models.qwen2.modeling_qwen2",)  # what the fork server imports
    assert catalog.load_source(causal_lms.gpt2(), task="auto").imports == ("transformers.models.gpt2.modeling_gpt2",)


def test_the_compiled_decode_step_matches_the_reference(tmp_path):
    """torch.compile of the decode step: slow to build (a minute or more on a busy CPU), so one
    prompt, at batch 1."""
    causal_lms.llama().save_pretrained(tmp_path / "model")
    prompt = np.arange(2, 10)
    ids, logits = greedy(load_dynamic(GeneratorRequest(tmp_path / "model", max_length=24)), prompt, 4)
    compiled = load_static_compiled(GeneratorRequest(tmp_path / "model", max_length=24))
    np.testing.assert_allclose(teacher_forced(compiled, prompt, ids), logits, atol=1e-4, rtol=1e-3)
