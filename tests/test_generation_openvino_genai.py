"""The openvino-genai generator (sextant-openvino's ``genai`` extra) on a causal LM of transformers
(sextant-torch's source): openvino-genai's pipeline streams the reference's greedy ids, the same IR
gives the reference's logits by teacher forcing, a batch generates each sequence as alone, and a
streaming server's scheduler (sextant-triton's, in-process) runs concurrent requests together in
the pipeline, each getting its ids alone. A tiny random Llama from plugins/torch/tests/causal_lms.py."""

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
from sextant.api import GeneratorRequest, StepRequest, StreamBatcher, StreamingGenerator  # noqa: E402
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


class Sink:
    """One request's answers (a ``stream_scheduler.Sink``); cancelled once ``cancel_after`` ids went out."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.replies: list[tuple[list[int], bool]] = []
        self.error: str | None = None
        self.closed = False
        self.cancel_after = cancel_after

    @property
    def ids(self) -> list[int]:
        return [i for ids, _ in self.replies for i in ids]

    @property
    def done(self) -> bool:
        return bool(self.closed or self.error or self.replies and self.replies[-1][1])

    def send(self, ids, last):
        self.replies.append((list(ids), last))

    def fail(self, message):
        self.error = message

    def cancelled(self):
        return self.cancel_after is not None and len(self.ids) >= self.cancel_after

    def close(self):
        self.closed = True


def test_a_server_runs_concurrent_requests_together_in_the_pipeline_each_as_alone(llama):
    pytest.importorskip("sextant_triton")
    from sextant_triton.stream_protocol import Prompt
    from sextant_triton.stream_scheduler import Scheduler

    genai = load(GeneratorRequest(llama[1], max_length=32, max_batch=4))
    assert isinstance(genai, StreamBatcher)
    rng = np.random.default_rng(3)
    kept = [Prompt(rng.integers(2, causal_lms.VOCAB, n), tokens, True) for n, tokens in ((5, 6), (9, 4), (3, 7))]
    cancelled = Prompt(rng.integers(2, causal_lms.VOCAB, 7), 20, True)
    too_long = Prompt(rng.integers(2, causal_lms.VOCAB, causal_lms.POSITIONS - 2), 8, True)
    alone = [[int(step[0]) for step in genai.stream(p.ids[None], p.max_tokens)] for p in kept + [cancelled]]
    logged: list[str] = []
    scheduler = Scheduler(genai, max_sequences=8, log=logged.append)
    sinks = [Sink(), Sink(), Sink(), Sink(cancel_after=2), Sink()]
    for prompt, sink in zip(kept + [too_long], sinks[:3] + sinks[4:]):
        scheduler.submit(prompt, sink)
    scheduler.step()  # the pipeline prefills the three it can take: each has its first token at once
    assert [len(sink.ids) for sink in sinks] == [1, 1, 1, 0, 0] and "positions" in sinks[4].error
    scheduler.submit(cancelled, sinks[3])
    scheduler.step()  # joining the running ones: its first token at once too
    assert len(sinks[3].ids) == 1
    for _ in range(40):  # a bound, never reached when the scheduler works
        if all(sink.done for sink in sinks):
            break
        scheduler.step()
    for sink, ids in zip(sinks[:3], alone):
        assert sink.ids == ids and sink.error is None and sink.replies[-1][1]
    assert sinks[3].closed and sinks[3].ids == alone[3][:2]  # cancelled after its second token
    assert "sextant: request cancelled after 2 of 20 tokens" in logged
    # counts, not timings: a pipeline step gave tokens to several requests, and openvino-genai
    # scheduled several requests in one step
    assert max(scheduler.steps) > 1 and max(genai.together) > 1, (scheduler.steps, genai.together)
    assert scheduler.rows == [] and genai.held == {}
    genai.close()
