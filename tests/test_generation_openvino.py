"""The openvino-stateful generator (sextant-openvino) on causal LMs of transformers (sextant-torch's
source): the stateful IR judged by teacher forcing against the reference loop, a batch, and end to
end through the CLI. Tiny random models from plugins/torch/tests/causal_lms.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sextant.testing.requires import importorskip

importorskip("openvino", "the openvino-stateful generator: pip install 'sextant-openvino[generation]'")
importorskip("transformers")
TORCH_TESTS = Path(__file__).resolve().parents[1] / "plugins" / "torch" / "tests"
sys.path.insert(0, str(TORCH_TESTS))
import causal_lms  # noqa: E402
from sextant.api import GeneratorRequest, ModelLoadError, StepError, StepRequest  # noqa: E402
from sextant.generation.loop import greedy, teacher_forced  # noqa: E402
from sextant.generation.run import SIGNATURE  # noqa: E402
from sextant_openvino.stateful_build import build  # noqa: E402
from sextant_openvino.stateful_generator import load  # noqa: E402
from sextant_torch.generation import load_dynamic  # noqa: E402

RUNNER = "openvino-stateful-build:openvino-stateful@cpu"


def _build(make, folder: Path) -> tuple[Path, Path]:
    make().save_pretrained(folder / "model")
    (folder / "ir").mkdir()
    return folder / "model", build(StepRequest(folder / "model", folder / "ir", SIGNATURE, folder / "samples"))


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> tuple[Path, Path]:
    return _build(causal_lms.llama, tmp_path_factory.mktemp("llama"))


def _judge(source: Path, built: Path) -> None:
    prompt = np.random.default_rng(1).integers(0, causal_lms.VOCAB, 10)
    ids, logits = greedy(load_dynamic(GeneratorRequest(source, max_length=32)), prompt, 8)
    stateful = load(GeneratorRequest(built, max_length=32))
    assert (stateful.vocab_size, stateful.max_positions) == (causal_lms.VOCAB, causal_lms.POSITIONS)
    np.testing.assert_allclose(teacher_forced(stateful, prompt, ids), logits, atol=1e-5, rtol=1e-4)
    assert greedy(stateful, prompt, 8)[0].tolist() == ids.tolist()  # the state was reset in between


def test_the_stateful_llama_matches_the_reference(llama):
    source, built = llama
    manifest = json.loads((built / "stateful.json").read_text())
    assert (manifest["layers"], manifest["kv_heads"], manifest["precision"]) == (2, 2, "fp32")
    import openvino as ov

    model = ov.Core().read_model(str(built / "model.xml"))
    inputs = sorted(p.get_any_name() for p in model.inputs)
    assert inputs == ["attention_mask", "beam_idx", "input_ids"]  # the cache is state
    assert len(model.get_sinks()) == 4
    _judge(source, built)


def test_gpt2_matches_the_reference(tmp_path):
    _judge(*_build(causal_lms.gpt2, tmp_path))  # learned positions, one fused attention projection


def test_a_batch_decodes_each_sequence_as_alone(llama):
    stateful = load(GeneratorRequest(llama[1], max_length=32))
    prompts = np.random.default_rng(2).integers(0, causal_lms.VOCAB, (3, 7))
    logits, state = stateful.prefill(prompts, np.ones_like(prompts))
    logits, state = stateful.decode(state, logits.argmax(-1))
    for row in range(3):
        alone, alone_state = stateful.prefill(prompts[row : row + 1], np.ones((1, 7), np.int64))
        alone, _ = stateful.decode(alone_state, alone.argmax(-1))
        np.testing.assert_allclose(logits[row], alone[0], atol=1e-5, rtol=1e-4)
    with pytest.raises(StepError, match="not its latest"):
        stateful.decode(state, logits.argmax(-1))  # the batch's cache was replaced by the last prefill
    with pytest.raises(StepError, match="longer than the model's 64 positions"):
        stateful.prefill(np.zeros((1, 65), np.int64), np.ones((1, 65), np.int64))


def test_int8_weights_are_offered_only_where_nncf_is_installed():
    import importlib.util

    from sextant_openvino import sextant_register_generators

    (spec,) = [s for s in sextant_register_generators() if s.name == "openvino-stateful"]
    if importlib.util.find_spec("nncf") is None:
        assert spec.precisions == ("fp32",)
        assert "nncf is not installed" in spec.description
    else:
        assert spec.precisions == ("fp32", "int8")


def test_int8_weights_by_nncf_agree_with_the_reference(llama, tmp_path):
    importorskip("nncf", "int8 weights for openvino-stateful: pip install 'sextant-openvino[int8]'")
    source = llama[0]
    (tmp_path / "ir").mkdir()
    built = build(StepRequest(source, tmp_path / "ir", SIGNATURE, tmp_path / "s", options={"precision": "int8"}))
    assert json.loads((built / "stateful.json").read_text())["precision"] == "int8"
    prompt = np.random.default_rng(1).integers(0, causal_lms.VOCAB, 10)
    ids, logits = greedy(load_dynamic(GeneratorRequest(source, max_length=32)), prompt, 8)
    forced = teacher_forced(load(GeneratorRequest(built, precision="int8", max_length=32)), prompt, ids)
    assert 0 < np.abs(forced - logits).max() < 0.05  # compressed: not exact, but close
    assert (forced.argmax(-1) == ids).mean() >= 0.9


def test_a_folder_that_is_no_build_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="no readable stateful.json"):
        load(GeneratorRequest(tmp_path))
    (tmp_path / "empty").mkdir()
    (tmp_path / "out").mkdir()
    with pytest.raises(StepError, match="transformers cannot load the causal LM"):
        build(StepRequest(tmp_path / "empty", tmp_path / "out", SIGNATURE, tmp_path / "samples"))


def test_optimize_text_generation_with_openvino_stateful(tmp_path):
    ws = tmp_path / "ws"
    args = ["optimize", f"{TORCH_TESTS / 'causal_lms.py'}:llama", "-w", str(ws), "--json"]
    args += ["--prompt-lengths", "6,12", "--new-tokens", "5", "--generation-batches", "1,2"]
    args += ["--runners", "torch-generate,openvino-stateful"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TORCH_TESTS), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-m", "sextant.cli", *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)["candidates"]
    stateful = records[RUNNER]
    assert stateful["status"] == "ok", stateful.get("reason")
    assert stateful["correctness"]["passed"]
    assert [p["batch"] for p in stateful["profile"]["points"]] == [1, 2]
    # the candidate, loaded from the package (here: test_generation_onnx.py loads one in a fresh
    # process), generates what eager generate does
    import sextant
    import torch

    prompt = [5, 7, 11, 13, 17, 19]
    with sextant.load(ws).candidate(RUNNER).load() as generator:
        generated = generator.generate(prompt, max_new_tokens=6)[0].tolist()
    ids = torch.tensor([prompt])
    eager = causal_lms.llama().generate(
        ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, min_new_tokens=6, do_sample=False
    )
    assert generated == eager[0].tolist()
