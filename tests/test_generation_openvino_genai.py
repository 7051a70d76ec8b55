"""The openvino-genai generator (sextant-openvino's ``genai`` extra) on a causal LM of transformers
(sextant-torch's source): openvino-genai's pipeline streams the reference's greedy ids, the same IR
gives the reference's logits by teacher forcing, a batch generates each sequence as alone. A tiny
random Llama from plugins/torch/tests/causal_lms.py."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from sextant.testing.requires import importorskip

importorskip("openvino_genai", "the openvino-genai generator: pip install 'sextant-openvino[generation,genai]'")
importorskip("transformers")
TORCH_TESTS = Path(__file__).resolve().parents[1] / "plugins" / "torch" / "tests"
sys.path.insert(0, str(TORCH_TESTS))
import causal_lms  # noqa: E402
from sextant.api import GeneratorRequest, StepRequest, StreamingGenerator  # noqa: E402
from sextant.compare import Tolerance  # noqa: E402
from sextant.generation.judge import judge_prompt  # noqa: E402
from sextant.generation.loop import TextGenerator, greedy, teacher_forced  # noqa: E402
from sextant.generation.run import SIGNATURE  # noqa: E402
from sextant_openvino.genai_generator import build, load  # noqa: E402
from sextant_torch.generation import load_dynamic  # noqa: E402


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("llama")
    causal_lms.llama().save_pretrained(folder / "model")
    (folder / "ir").mkdir()
    return folder / "model", build(StepRequest(folder / "model", folder / "ir", SIGNATURE, folder / "samples"))


def test_the_pipeline_streams_the_reference_ids_and_the_ir_gives_its_logits(llama):
    source, built = llama
    assert (built / "openvino_model.xml").read_bytes() == (built / "model.xml").read_bytes()
    reference = load_dynamic(GeneratorRequest(source, max_length=32))
    prompt = np.random.default_rng(1).integers(0, causal_lms.VOCAB, 10)
    ids, logits = greedy(reference, prompt, 8)
    genai = load(GeneratorRequest(built, max_length=32, max_batch=2))
    assert isinstance(genai, StreamingGenerator)
    streamed = np.array([int(step[0]) for step in genai.stream(prompt[None], 8)])
    forced = teacher_forced(genai, prompt, ids)
    np.testing.assert_allclose(forced, logits, atol=1e-5, rtol=1e-4)
    report = judge_prompt("p", ids, logits, forced, Tolerance.for_precision("fp32"), "fp32", 0.9, streamed)
    assert report.passed and report.agreement == 1.0, report
    # a batch: streamed step by step, each sequence as the reference generates it alone
    prompts = np.random.default_rng(2).integers(0, causal_lms.VOCAB, (2, 7))
    batch = np.stack(list(genai.stream(prompts, 6)), axis=1)
    for row in range(2):
        assert batch[row].tolist() == greedy(reference, prompts[row], 6)[0].tolist()
    # loaded as a package's generator: generate and stream through the pipeline
    assert TextGenerator(genai).generate(prompt, max_new_tokens=8)[0, 10:].tolist() == ids.tolist()
    genai.close()
