"""The onnxruntime-kv generator (sextant-onnx) on causal LMs of transformers (sextant-torch's
source): the export with past key values, judged by teacher forcing against the reference loop,
and end to end through the CLI. Tiny random models from plugins/torch/tests/causal_lms.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("transformers")
TORCH_TESTS = Path(__file__).resolve().parents[1] / "plugins" / "torch" / "tests"
sys.path.insert(0, str(TORCH_TESTS))
import causal_lms  # noqa: E402
from sextant.api import GeneratorRequest, StepError, StepRequest  # noqa: E402
from sextant.generation.loop import greedy, teacher_forced  # noqa: E402
from sextant.generation.run import SIGNATURE  # noqa: E402
from sextant_onnx.kv_export import export  # noqa: E402
from sextant_onnx.kv_generator import load  # noqa: E402
from sextant_torch.generation import load_dynamic  # noqa: E402

INT8 = "onnxruntime-kv-build-int8:onnxruntime-kv/int8@cpu"


def _export(make, tmp_path: Path) -> tuple[Path, Path]:
    make().save_pretrained(tmp_path / "model")
    (tmp_path / "onnx").mkdir()
    built = export(StepRequest(tmp_path / "model", tmp_path / "onnx", SIGNATURE, tmp_path / "samples"))
    return tmp_path / "model", built


@pytest.mark.parametrize("make", [causal_lms.llama, causal_lms.gpt2])
@pytest.mark.parametrize("io_binding", [True, False])
def test_the_exported_graph_with_past_key_values_matches_the_reference(make, io_binding, tmp_path):
    source, built = _export(make, tmp_path)
    manifest = json.loads((built / "kv.json").read_text())
    described = (manifest["layers"], manifest["vocab_size"], manifest["max_positions"])
    assert described == (2, causal_lms.VOCAB, causal_lms.POSITIONS)
    prompt = np.random.default_rng(1).integers(0, causal_lms.VOCAB, 10)
    ids, logits = greedy(load_dynamic(GeneratorRequest(source, max_length=32)), prompt, 8)
    onnx = load(GeneratorRequest(built, options={"io_binding": io_binding}, max_length=32))
    assert (onnx.vocab_size, onnx.max_positions) == (causal_lms.VOCAB, causal_lms.POSITIONS)
    np.testing.assert_allclose(teacher_forced(onnx, prompt, ids), logits, atol=1e-5, rtol=1e-4)
    assert greedy(onnx, prompt, 8)[0].tolist() == ids.tolist()


def test_a_batch_decodes_each_sequence_as_alone(tmp_path):
    source, built = _export(causal_lms.llama, tmp_path)
    onnx = load(GeneratorRequest(built, max_length=32))
    prompts = np.random.default_rng(2).integers(0, causal_lms.VOCAB, (3, 7))
    logits, state = onnx.prefill(prompts, np.ones_like(prompts))
    logits, state = onnx.decode(state, logits.argmax(-1))
    for row in range(3):
        alone, alone_state = onnx.prefill(prompts[row : row + 1], np.ones((1, 7), np.int64))
        alone, _ = onnx.decode(alone_state, alone.argmax(-1))
        np.testing.assert_allclose(logits[row], alone[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("precision, bits", [("int8", 8), ("int4", 4)])
def test_weight_only_int8_and_int4_are_matmulnbits_judged_within_their_tolerance(precision, bits, tmp_path):
    import onnx
    from sextant.compare import Tolerance
    from sextant.generation.config import GenerationConfig
    from sextant.generation.judge import judge_prompt

    causal_lms.llama().save_pretrained(tmp_path / "model")
    (tmp_path / "onnx").mkdir()
    options = {"precision": precision}
    built = export(StepRequest(tmp_path / "model", tmp_path / "onnx", SIGNATURE, tmp_path / "s", options=options))
    manifest = json.loads((built / "kv.json").read_text())
    assert (manifest["precision"], manifest["quantized_matmuls"], manifest["float_matmuls"]) == (precision, 15, 0)
    graph = onnx.load(str(built / "model.onnx")).graph
    nbits = [n for n in graph.node if n.op_type == "MatMulNBits"]
    assert len(nbits) == 2 * 7 + 1  # q, k, v, o, gate, up, down per layer, and the LM head
    assert {a.i for n in nbits for a in n.attribute if a.name == "bits"} == {bits}
    weights = {t.name: t for t in graph.initializer}
    assert {weights[n.input[1]].data_type for n in nbits} == {onnx.TensorProto.UINT8}  # packed integers
    scales = {n.input[2] for n in nbits}
    matrices = [t for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 2]
    assert [tuple(t.dims) for t in matrices if t.name not in scales] == [(causal_lms.VOCAB, 32)]  # the embedding
    prompt = np.random.default_rng(1).integers(0, causal_lms.VOCAB, 10)
    ids, logits = greedy(load_dynamic(GeneratorRequest(tmp_path / "model", max_length=32)), prompt, 8)
    forced = teacher_forced(load(GeneratorRequest(built, precision=precision, max_length=32)), prompt, ids)
    assert np.abs(forced - logits).max() > 1e-6  # not the fp32 weights
    tolerance = Tolerance.for_precision(precision)
    report = judge_prompt("prompt", ids, logits, forced, tolerance, precision, GenerationConfig().min_agreement)
    if precision == "int8":
        assert report.passed, report
    else:  # a random model's logits are nearly flat: int4 flips a near-tie (step 6), under 90% agreement at 8 steps
        assert report.out_of_tolerance == 0 and set(np.flatnonzero(forced.argmax(-1) != ids)) <= set(report.near_ties)


def test_a_folder_that_is_no_export_is_a_clear_error(tmp_path):
    from sextant.api import ModelLoadError

    with pytest.raises(ModelLoadError, match="no readable kv.json"):
        load(GeneratorRequest(tmp_path))
    (tmp_path / "empty").mkdir()
    (tmp_path / "out").mkdir()
    with pytest.raises(StepError, match="transformers cannot load the causal LM"):
        export(StepRequest(tmp_path / "empty", tmp_path / "out", SIGNATURE, tmp_path / "samples"))


def test_optimize_text_generation_with_onnxruntime_kv(tmp_path):
    ws = tmp_path / "ws"
    args = ["optimize", f"{TORCH_TESTS / 'causal_lms.py'}:llama", "-w", str(ws), "--json"]
    args += ["--prompt-lengths", "6,12", "--new-tokens", "5", "--generation-batches", "1,2"]
    args += ["--runners", "torch-generate,onnxruntime-kv", "--precision", "fp32,int8"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TORCH_TESTS), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-m", "sextant.cli", *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)["candidates"]
    onnx = records["onnxruntime-kv-build:onnxruntime-kv@cpu"]
    assert onnx["status"] == "ok", onnx.get("reason")
    assert onnx["correctness"]["passed"]
    assert [p["batch"] for p in onnx["profile"]["points"]] == [1, 2]
    int8 = records[INT8]  # allowed by --precision: a candidate of its own, named so
    assert int8["precision"] == "int8"
    assert int8["status"] in ("ok", "screened"), int8.get("reason")
    assert int8["correctness"]["passed"]
    assert set(records) == {"source:torch-generate@cpu", "onnxruntime-kv-build:onnxruntime-kv@cpu", INT8}  # no int4
    # the candidate, loaded in a fresh process from the package, generates what eager generate does
    prompt = [5, 7, 11, 13, 17, 19]
    code = (
        "import sextant, json; g = sextant.load(%r).candidate(%r).load(); "
        "print(json.dumps(g.generate(%r, max_new_tokens=6)[0].tolist()))"
        % (str(ws), "onnxruntime-kv-build:onnxruntime-kv@cpu", prompt)
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    import torch

    model = causal_lms.llama()
    ids = torch.tensor([prompt])
    mask = torch.ones_like(ids)
    eager = model.generate(ids, attention_mask=mask, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    assert json.loads(loaded.stdout.strip().splitlines()[-1]) == eager[0].tolist()
