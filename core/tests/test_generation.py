"""The generation run's parts: prompts, the greedy loop, teacher forcing, TTFT/ITL on a fake clock."""

from __future__ import annotations

import numpy as np
import pytest

from sextant.compare import Tolerance
from sextant.errors import SampleError, UsageError
from sextant.generation.config import GenerationConfig
from sextant.generation.judge import judge, judge_prompt
from sextant.generation.loop import TextGenerator, greedy, teacher_forced
from sextant.generation.measure import measure_batch, measure_ttft
from sextant.generation.prompts import Prompts, make_prompts
from sextant.testing.fakelm import ClockedGenerator, FakeClock, NumpyLM, NumpyLMGenerator

REF_LOGITS = np.array([[0, 1, 5, 2], [3, 0, 0, 0], [1, 1.00005, 0, 0]], dtype=np.float32)
REF_IDS = np.array([2, 0, 1])
TOL = Tolerance(1e-3, 0.0)


def test_a_token_that_differs_at_a_near_tie_passes_and_is_reported():
    candidate = REF_LOGITS.copy()
    candidate[0, 2] += 5e-4
    candidate[2] = [1.00005, 1, 0, 0]  # the other side of the tie
    report = judge_prompt("p", REF_IDS, REF_LOGITS, candidate, TOL, "fp32", 0.9)
    assert report.passed
    assert report.out_of_tolerance == 0
    assert report.agreement == pytest.approx(2 / 3)
    assert report.first_divergence == 2
    assert report.near_ties == (2,)
    assert report.max_abs_error == pytest.approx(5e-4, rel=1e-3)


def test_a_token_that_differs_without_a_tie_fails_fp32():
    candidate = REF_LOGITS.copy()
    candidate[1] = [0, 3, 0, 0]
    report = judge_prompt("p", REF_IDS, REF_LOGITS, candidate, TOL, "fp32", 0.9)
    assert not report.passed
    assert (report.out_of_tolerance, report.first_divergence, report.near_ties) == (1, 1, ())
    assert report.max_abs_error == 3.0
    # a reduced precision's looser tolerance: judged by the share of tokens that agree
    loose = Tolerance(10.0, 0.0)
    assert judge_prompt("p", REF_IDS, REF_LOGITS, candidate, loose, "bf16", 0.6).passed
    assert not judge_prompt("p", REF_IDS, REF_LOGITS, candidate, loose, "bf16", 0.7).passed


def test_a_near_tie_is_the_candidates_token_against_the_references_not_any_top_two():
    reference = np.array([[1.0, 1.0002, 0.99, 0.0]], dtype=np.float32)  # top two tie; 0.99 does not
    third = np.array([[0.0, 0.0, 2.0, 0.0]], dtype=np.float32)
    report = judge_prompt("p", np.array([1]), reference, third, Tolerance(10.0, 0.0), "fp32", 0.9)
    assert report.passed  # within a loose tolerance, 0.99 is a near-tie of 1.0002
    # (logits that choose the third token cannot also be within 1e-3: this fails on them too; the
    # tie rule alone is told apart by near_ties and the margin here, and by the streamed ids below)
    report = judge_prompt("p", np.array([1]), reference, reference[:, [0, 2, 1, 3]], Tolerance(1e-3, 0.0), "fp32", 0.9)
    assert not report.passed and report.near_ties == ()
    assert report.margin == pytest.approx(0.0102, abs=1e-6) and report.margin_tolerance == pytest.approx(1e-3)
    # streamed ids: the first that differs is judged by the reference's logit of the streamed token
    streamed = judge_prompt("p", np.array([1]), reference, reference, Tolerance(1e-3, 0.0), "fp32", 0.9, np.array([0]))
    assert streamed.passed and streamed.near_ties == (0,)
    streamed = judge_prompt("p", np.array([1]), reference, reference, Tolerance(1e-3, 0.0), "fp32", 0.9, np.array([2]))
    assert not streamed.passed and streamed.margin == pytest.approx(0.0102, abs=1e-6)


def test_the_verdict_over_prompts_says_where_tokens_diverged():
    reference = {"ids_0": REF_IDS, "logits_0": REF_LOGITS, "ids_1": REF_IDS, "logits_1": REF_LOGITS}
    bad = REF_LOGITS.copy()
    bad[1] = [0, 3, 0, 0]
    verdict = judge(reference, {"logits_0": REF_LOGITS, "logits_1": bad}, [5, 7], TOL, "fp32", 0.9)
    assert not verdict.passed
    assert [o["passed"] for o in verdict.outputs] == [True, False]
    assert verdict.max_abs_error == 3.0
    assert "5 of 6 steps" not in verdict.summary and "1 of 6 steps out of tolerance" in verdict.summary
    assert "agree at 83.3% of steps (first divergence: prompt 1, step 1)" in verdict.summary
    untied = "at prompt 1 (7 tokens) a differing token is not a near-tie: the reference scored its own 3.00e+00 higher"
    assert untied in verdict.summary


def test_teacher_forcing_feeds_the_reference_tokens_not_the_candidates():
    lm = NumpyLM(vocab=16, positions=32)
    reference = NumpyLMGenerator(lm.table, lm.bias)
    prompt = np.array([3, 1, 4])
    ids, logits = greedy(reference, prompt, 6)
    assert ids.tolist() == logits.argmax(-1).tolist()
    assert np.array_equal(teacher_forced(reference, prompt, ids), logits)
    # a continuation other than its own: step t sees the given tokens
    other = (ids + 1) % 16
    forced = teacher_forced(reference, prompt, other)
    assert np.array_equal(forced[1], lm.table[other[0]] + lm.bias[3])
    generated = TextGenerator(reference).generate(prompt, max_new_tokens=6)
    assert generated.tolist() == [[3, 1, 4, *ids.tolist()]]
    assert [int(t[0]) for t in TextGenerator(reference).stream(prompt, 6)] == ids.tolist()


def test_ttft_itl_and_tokens_per_second_on_a_fake_clock():
    clock = FakeClock()
    lm = NumpyLM()
    generator = ClockedGenerator(NumpyLMGenerator(lm.table, lm.bias), clock, lambda b, n: 0.1, [0.01, 0.02, 0.03, 0.04])
    point = measure_batch(generator, np.array([1, 2, 3, 4]), 1, 3, repeats=2, warmup=1, clock=clock)
    # warm-up: decodes of 10 and 20 ms, not counted; then 30, 40 and 10, 20 ms
    assert generator.calls == ["prefill", "decode", "decode"] * 3
    assert point.ttft_ms == pytest.approx(100.0)
    assert (point.p50_ms, point.p90_ms, point.p99_ms) == pytest.approx((25.0, 37.0, 39.7))
    assert point.throughput == pytest.approx((3 / 0.17 + 3 / 0.13) / 2)
    assert (point.batch, point.prompt_length, point.new_tokens, point.repeats) == (1, 4, 3, 2)


def test_a_batch_counts_every_sequences_tokens():
    clock = FakeClock()
    lm = NumpyLM()
    generator = ClockedGenerator(NumpyLMGenerator(lm.table, lm.bias), clock, lambda b, n: 0.01 * b * n, [0.05])
    point = measure_batch(generator, np.arange(5), 4, 2, repeats=1, warmup=0, clock=clock)
    assert point.ttft_ms == pytest.approx(200.0)  # 0.01 s x 4 sequences x 5 tokens
    assert point.throughput == pytest.approx(4 * 2 / 0.25)
    assert measure_ttft(generator, np.arange(10), repeats=3, warmup=2, clock=clock) == pytest.approx(100.0)
    assert generator.calls.count("prefill") == 1 + 5


def test_generated_prompts_are_seeded_and_checked():
    config = GenerationConfig(prompt_lengths=(4, 8), new_tokens=4, prompts_per_length=2)
    prompts = make_prompts(None, config, vocab_size=10, max_positions=16)
    assert [len(p) for p in prompts.ids] == [4, 4, 8, 8]
    assert all(p.max() < 10 for p in prompts.ids)
    again = make_prompts(None, config, vocab_size=10, max_positions=16)
    assert all(np.array_equal(a, b) for a, b in zip(prompts.ids, again.ids))
    assert prompts.lengths == [4, 8]


def test_given_prompts_are_unpadded_by_their_mask(tmp_path):
    path = tmp_path / "prompts.npz"
    np.savez(path, input_ids=np.array([[0, 0, 5, 6], [1, 2, 3, 4]]), attention_mask=np.array([[0, 0, 1, 1], [1, 1, 1, 1]]))
    prompts = make_prompts(path, GenerationConfig(new_tokens=2), vocab_size=10, max_positions=16)
    assert [p.tolist() for p in prompts.ids] == [[5, 6], [1, 2, 3, 4]]
    prompts.save(tmp_path / "saved.npz")
    assert [p.tolist() for p in Prompts.load(tmp_path / "saved.npz").ids] == [[5, 6], [1, 2, 3, 4]]


def test_bad_prompts_say_what_is_wrong():
    config = GenerationConfig(new_tokens=8)
    with pytest.raises(SampleError, match=r"token id\(s\) \[12\] outside the model's vocabulary of 10") as info:
        make_prompts({"input_ids": np.array([[1, 12]])}, config, vocab_size=10, max_positions=64)
    assert "tokenizer" in info.value.hint
    with pytest.raises(SampleError, match="prompt 0 has 60 tokens; with --new-tokens 8 the sequence would have 68"):
        make_prompts({"input_ids": np.zeros((1, 60), np.int64)}, config, vocab_size=10, max_positions=64)
    with pytest.raises(SampleError, match="not input_ids"):
        make_prompts({"x": np.zeros((1, 3))}, config, vocab_size=10, max_positions=64)
    with pytest.raises(UsageError, match="--new-tokens 1 must be at least 2"):
        GenerationConfig(new_tokens=1)


def test_a_built_generator_gets_one_build_step_per_allowed_precision():
    from sextant.generation.plan import make_generation_plan
    from sextant.plugins import Catalog, Contribution, PluginInfo
    from sextant.specs import GeneratorSpec
    from sextant.testing.fakelm import LM

    plugin = PluginInfo("fake", "fake-dist", "1")
    reference = GeneratorSpec("numpy-lm", LM, load="sextant.testing.fakelm:load", reference=True)
    built = GeneratorSpec(
        "built", LM, load="sextant.testing.fakelm:load", build="sextant.testing.fakelm:load", precisions=("fp32", "int8", "int4")
    )
    contributions = [Contribution("generator", spec, plugin) for spec in (reference, built)]
    plan = make_generation_plan(Catalog(None, [plugin], contributions), LM, devices=["cpu"], precisions=["fp32", "int4"])
    ids = ["source:numpy-lm@cpu", "built-build:built@cpu", "built-build-int4:built/int4@cpu"]
    assert [c.id for c in plan.candidates] == ids
    assert [c.step for c in plan.candidates] == [None, "built-build", "built-build-int4"]
    steps = {s.id: (s.precision, dict(s.spec.options)) for s in plan.steps}
    assert steps == {"built-build": ("fp32", {}), "built-build-int4": ("int4", {"precision": "int4"})}


class _Streaming:
    """A backend that owns its loop: ``stream`` yields fixed ids, each after ``gaps`` seconds on ``clock``."""

    vocab_size, max_positions = 16, 64

    def __init__(self, ids: list[int], clock: FakeClock, gaps: list[float]) -> None:
        self.ids, self.clock, self.gaps, self.streams = ids, clock, gaps, 0

    def prefill(self, input_ids, attention_mask):  # teacher forcing's path: never timed here
        raise AssertionError("a streaming generator is measured through stream")

    def decode(self, state, next_ids):
        raise AssertionError("a streaming generator is measured through stream")

    def stream(self, input_ids, max_new_tokens):
        self.streams += 1
        for step in range(max_new_tokens):
            self.clock.now += self.gaps[step]
            yield np.full(len(input_ids), self.ids[step], np.int64)

    def close(self) -> None:
        pass


def test_a_streaming_generator_is_measured_and_loaded_through_its_own_loop():
    clock = FakeClock()
    generator = _Streaming([5, 6, 7], clock, [0.1, 0.02, 0.04])
    point = measure_batch(generator, np.arange(4), 2, 3, repeats=2, warmup=1, clock=clock)
    assert generator.streams == 3
    assert point.ttft_ms == pytest.approx(100.0)
    assert (point.p50_ms, point.p99_ms) == pytest.approx((30.0, 40.0))  # gaps 20, 40 per repeat
    assert point.throughput == pytest.approx(2 * 3 / 0.16)
    assert measure_ttft(generator, np.arange(4), repeats=2, warmup=0, clock=clock) == pytest.approx(100.0)
    assert TextGenerator(generator).generate([1, 2], max_new_tokens=3).tolist() == [[1, 2, 5, 6, 7]]


def test_a_streaming_generators_own_ids_are_judged():
    # teacher-forced logits equal to the reference's; its own loop diverged at step 1 (no tie) or 2 (a tie)
    judged = judge_prompt("p", REF_IDS, REF_LOGITS, REF_LOGITS, TOL, "fp32", 0.9, np.array([2, 3, 0]))
    assert not judged.passed and (judged.first_divergence, judged.agreement) == (1, pytest.approx(1 / 3))
    tie = judge_prompt("p", REF_IDS, REF_LOGITS, REF_LOGITS, TOL, "fp32", 0.9, np.array([2, 0, 0]))
    assert tie.passed and (tie.first_divergence, tie.near_ties) == (2, (2,))
    assert not judge_prompt("p", REF_IDS, REF_LOGITS, REF_LOGITS, TOL, "int8", 0.9, np.array([2, 0, 0])).passed
    assert not judge_prompt("p", REF_IDS, REF_LOGITS, REF_LOGITS, TOL, "fp32", 0.9, np.array([2, 0])).passed
    candidate = {"logits_0": REF_LOGITS, "streamed_0": np.array([2, 3, 0])}
    verdict = judge({"ids_0": REF_IDS, "logits_0": REF_LOGITS}, candidate, [5], TOL, "fp32", 0.9)
    assert not verdict.passed
