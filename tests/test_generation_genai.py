"""The onnxruntime-genai generator (sextant-onnx) on causal LMs of transformers (sextant-torch's
source): its model builder's graph judged by teacher forcing against the reference loop, its
generation loop at batch 1 and larger, what the builder cannot build, and end to end through the
CLI. Tiny random models from plugins/torch/tests/causal_lms.py, with 16-wide heads (the narrowest
ONNX Runtime's GroupQueryAttention takes on the CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sextant.testing.requires import importorskip

importorskip("onnxruntime_genai", "the onnxruntime-genai generator: pip install 'sextant-onnx[cpu,genai]'")
importorskip("transformers")
TORCH_TESTS = Path(__file__).resolve().parents[1] / "plugins" / "torch" / "tests"
sys.path.insert(0, str(TORCH_TESTS))
import causal_lms  # noqa: E402
import torch  # noqa: E402
from sextant.api import GeneratorRequest, ModelLoadError, StepError, StepRequest  # noqa: E402
from sextant.generation.loop import greedy, teacher_forced  # noqa: E402
from sextant.generation.run import SIGNATURE  # noqa: E402
from sextant_onnx.genai import load  # noqa: E402
from sextant_onnx.genai_build import build  # noqa: E402
from sextant_torch.generation import load_dynamic  # noqa: E402

FAST = ["--prompt-lengths", "6,12", "--new-tokens", "5", "--generation-batches", "1,2"]


def _build(make, folder: Path, precision: str = "fp32") -> tuple[Path, Path]:
    if not (folder / "model").exists():
        make().save_pretrained(folder / "model")
    out = folder / f"genai-{precision}"
    out.mkdir()
    return folder / "model", build(StepRequest(folder / "model", out, SIGNATURE, folder / "samples", options={"precision": precision}))


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> tuple[Path, Path]:
    return _build(causal_lms.llama_head16, tmp_path_factory.mktemp("llama"))


def _eager(make, prompt: np.ndarray, new_tokens: int) -> list[int]:
    ids = torch.tensor(prompt)[None]
    out = make().generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
    )
    return out[0, len(prompt) :].tolist()


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_the_builders_graph_matches_the_reference_and_eager_generate(family, llama, tmp_path):
    make = {"llama": causal_lms.llama_head16, "qwen2": causal_lms.qwen2_head16}[family]
    source, built = llama if family == "llama" else _build(make, tmp_path)
    assert json.loads((built / "genai_config.json").read_text())["model"]["vocab_size"] == causal_lms.VOCAB
    prompt = np.random.default_rng(1).integers(0, causal_lms.VOCAB, 10)
    ids, logits = greedy(load_dynamic(GeneratorRequest(source, max_length=32)), prompt, 8)
    assert ids.tolist() == _eager(make, prompt, 8)
    genai = load(GeneratorRequest(built, max_length=32))
    assert (genai.vocab_size, genai.max_positions) == (causal_lms.VOCAB, causal_lms.POSITIONS)
    np.testing.assert_allclose(teacher_forced(genai, prompt, ids), logits, atol=1e-5, rtol=1e-4)
    assert greedy(genai, prompt, 8)[0].tolist() == ids.tolist()


def test_end_of_sequence_and_padding_ids_are_tokens_like_any_other(llama):
    """onnxruntime-genai's loop ends a sequence at its end-of-sequence id and takes a prompt's
    trailing padding ids (the same id here) as right padding; the generator's logits are the
    model's whatever the tokens, at batch 1 and in a batch."""
    source, built = llama
    reference = load_dynamic(GeneratorRequest(source, max_length=32))
    genai = load(GeneratorRequest(built, max_length=32))
    eos = causal_lms.DECODER["eos_token_id"]
    prompt = np.append(np.random.default_rng(3).integers(0, causal_lms.VOCAB, 6), [eos, eos])
    continuation = np.array([eos, 5, eos, eos, 9])
    expected = teacher_forced(reference, prompt, continuation)
    np.testing.assert_allclose(teacher_forced(genai, prompt, continuation), expected, atol=1e-5, rtol=1e-4)
    # a batch: decoded through onnxruntime-genai's search until a step appends the end-of-sequence id
    prompts = np.random.default_rng(2).integers(2, causal_lms.VOCAB, (3, 7))
    steps = np.array([[5, 9, 11], [eos, 3, 4], [7, 8, 9], [10, 12, 14]])
    for ids in (prompts, np.concatenate([prompts[:, :-1], [[4], [eos], [6]]], axis=1)):
        logits, state = genai.prefill(ids, np.ones_like(ids))
        batched = [logits]
        for tokens in steps:
            logits, state = genai.decode(state, tokens)
            batched.append(logits)
        for row in range(3):
            expected = teacher_forced(reference, ids[row], np.append(steps[:, row], 0))
            np.testing.assert_allclose(np.stack([b[row] for b in batched]), expected, atol=1e-5, rtol=1e-4)


def test_what_the_builder_cannot_build_is_the_real_cause(tmp_path):
    with pytest.raises(StepError, match="does not support the GPT2LMHeadModel architecture") as gpt2:
        _build(causal_lms.gpt2, tmp_path / "gpt2")
    assert "--runners" in gpt2.value.hint
    with pytest.raises(StepError, match="heads are 8 wide.*multiples of 16"):
        _build(causal_lms.llama, tmp_path / "llama")
    with pytest.raises(ModelLoadError, match="no readable genai_config.json"):
        load(GeneratorRequest(tmp_path))


def test_int4_weights_are_quantized_and_close(llama, tmp_path):
    import onnx

    source, _ = llama
    (tmp_path / "model").symlink_to(source)
    _, built = _build(causal_lms.llama_head16, tmp_path, "int4")
    graph = onnx.load(built / "model.onnx", load_external_data=False).graph
    assert "MatMulNBits" in {node.op_type for node in graph.node}
    prompt = np.random.default_rng(1).integers(0, causal_lms.VOCAB, 10)
    ids, logits = greedy(load_dynamic(GeneratorRequest(source, max_length=32)), prompt, 8)
    error = np.abs(teacher_forced(load(GeneratorRequest(built, max_length=32)), prompt, ids) - logits).max()
    assert 1e-5 < error < 0.25  # quantized (not the fp32 graph), within int4's default tolerance


def test_optimize_text_generation_with_onnxruntime_genai(tmp_path):
    ws = tmp_path / "ws"
    args = ["optimize", f"{TORCH_TESTS / 'causal_lms.py'}:llama_head16", "-w", str(ws), "--json", *FAST]
    args += ["--runners", "torch-generate,onnxruntime-genai"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TORCH_TESTS), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-m", "sextant.cli", *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    records = status["candidates"]
    fp32 = records["onnxruntime-genai-build:onnxruntime-genai@cpu"]
    assert fp32["status"] == "ok", fp32.get("reason")
    assert fp32["correctness"]["passed"]
    assert [p["batch"] for p in fp32["profile"]["points"]] == [1, 2]
    assert set(fp32["ttft_ms"]) == {"6", "12"}
    assert set(records) == {"source:torch-generate@cpu", "onnxruntime-genai-build:onnxruntime-genai@cpu"}
    # the candidate, loaded in a fresh process from the package, generates what eager generate does
    prompt = [5, 7, 11, 13, 17, 19]
    code = (
        "import sextant, json; g = sextant.load(%r).candidate(%r).load(); "
        "print(json.dumps(g.generate(%r, max_new_tokens=6)[0].tolist()))"
        % (str(ws), "onnxruntime-genai-build:onnxruntime-genai@cpu", prompt)
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    assert json.loads(loaded.stdout.strip().splitlines()[-1])[6:] == _eager(causal_lms.llama_head16, np.array(prompt), 6)
