"""A whole text-generation run on the numpy causal LM: reference, teacher forcing, measures, cache."""

from __future__ import annotations

import numpy as np
import pytest

import sextant
from sextant.errors import ModelLoadError, SampleError, UsageError
from sextant.generation.loop import TextGenerator, greedy
from sextant.optimizer.run import optimize
from sextant.plugins import load_catalog
from sextant.records import Status
from sextant.testing.fakelm import NoGenerate, NumpyLM, NumpyLMGenerator
from sextant.testing.fake import NumpyMLP

FAST = {"prompt_lengths": (4, 8), "new_tokens": 5, "batch_sizes": (1, 2), "repeats": 1, "warmup": 0}
#: one correct candidate (the reference) and two wrong ones: the pick does not depend on timings
GENERATORS = ("numpy-lm", "numpy-lm-noisy")


@pytest.fixture
def lm_catalog():
    return load_catalog(extra_modules=["sextant.testing.fakelm", "sextant.testing.fake"], entry_points=False)


def _run(catalog, workspace, model=None, **options):
    from sextant.generation.config import GenerationConfig

    generation = GenerationConfig(**{**FAST, **options.pop("generation", {})})
    options.setdefault("runners", GENERATORS)
    return optimize(model or NumpyLM(), catalog=catalog, workspace=workspace, generation=generation, **options)


def test_a_causal_lm_is_judged_by_teacher_forcing_and_measured(lm_catalog, tmp_path):
    package = _run(lm_catalog, tmp_path / "ws")
    status = package.status
    assert status["task"] == "text-generation"
    records = status["candidates"]
    assert set(records) == {
        "source:numpy-lm@cpu",
        "source:numpy-lm-noisy@cpu",
        "source:numpy-lm-noisy[noise=10.0]@cpu",
    }
    assert records["source:numpy-lm@cpu"]["status"] == "ok"
    # noise of 1e-3 is within no fp32 tolerance of the logits: incorrect, with where it diverged
    small = records["source:numpy-lm-noisy@cpu"]
    assert small["status"] == "incorrect"
    assert "steps out of tolerance" in small["reason"]
    large = records["source:numpy-lm-noisy[noise=10.0]@cpu"]
    assert large["status"] == "incorrect" and "first divergence" in large["reason"]
    reference = records["source:numpy-lm@cpu"]
    assert [p["batch"] for p in reference["profile"]["points"]] == [1, 2]
    assert all(p["new_tokens"] == 5 and p["prompt_length"] == 8 for p in reference["profile"]["points"])
    assert set(reference["ttft_ms"]) == {"4", "8"}
    assert status["selection"]["best"] == "source:numpy-lm@cpu"
    assert status["selection"]["objective"] == "tokens-per-second"
    assert status["prompts"] == {"count": 2, "lengths": [4, 8], "given": False}

    # the pick, loaded from the package, generates what the model generates
    generator = sextant.load(package.path).best().load(catalog=lm_catalog)
    assert isinstance(generator, TextGenerator)
    prompt = np.array([1, 2, 3])
    lm = NumpyLM()
    ids = generator.generate(prompt, max_new_tokens=4)
    expected, _ = greedy(NumpyLMGenerator(lm.table, lm.bias), prompt, 4)
    assert ids[0, 3:].tolist() == expected.tolist()

    # a re-run measures nothing
    again = _run(lm_catalog, tmp_path / "ws")
    assert all(r["cached"] for r in again.status["candidates"].values())
    assert again.status["run"]["ran"] == 0
    # a constraint no candidate meets: nothing is selected, and the error says why
    with pytest.raises(sextant.errors.NothingRunnableError, match="time to first token of at most 1e-09 ms"):
        _run(lm_catalog, tmp_path / "ws", generation={"max_ttft_ms": 1e-9})


def test_bad_generation_input_is_refused_before_anything_runs(lm_catalog, tmp_path):
    with pytest.raises(SampleError, match="outside the model's vocabulary of 32"):
        _run(lm_catalog, tmp_path / "a", samples={"input_ids": np.array([[1, 40]])})
    with pytest.raises(SampleError, match="more than the model's 64 positions"):
        _run(lm_catalog, tmp_path / "b", samples={"input_ids": np.ones((1, 62), np.int64)})
    with pytest.raises(ModelLoadError, match="has no generate"):
        _run(lm_catalog, tmp_path / "c", model=NoGenerate(), task="text-generation")
    with pytest.raises(UsageError, match="--objective ttft measures text generation"):
        optimize(NumpyMLP(), catalog=lm_catalog, workspace=tmp_path / "d", objective="ttft")
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_given_prompts_are_the_ones_judged(lm_catalog, tmp_path):
    prompts = {"input_ids": np.array([[0, 5, 6, 7], [1, 2, 3, 4]]), "attention_mask": np.array([[0, 1, 1, 1], [1, 1, 1, 1]])}
    package = _run(lm_catalog, tmp_path / "ws", samples=prompts, runners=("numpy-lm",))
    assert package.status["prompts"] == {"count": 2, "lengths": [3, 4], "given": True}
    assert package.status["candidates"]["source:numpy-lm@cpu"]["status"] == Status.OK.value
