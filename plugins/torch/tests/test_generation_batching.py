"""Continuous batching with the reference generator (``sextant.api.SequenceBatcher``): sequences of
different lengths join a running batch and leave it between decode steps, and each one's greedy
tokens (and logits) are those it gets alone. Tiny random Llama (rotary positions) and GPT-2
(learned positions): a row's position ids must be its own, not the padded batch's."""

from __future__ import annotations

import numpy as np
import pytest
from sextant.api import Generator, GeneratorRequest, SequenceBatcher
from sextant.generation.loop import greedy

import causal_lms
from sextant_torch.generation import load_dynamic, load_static

NEW_TOKENS = 7
#: prompt lengths and the decode step each sequence joins at: a short one first, a longer one that
#: pads the running batch, a shorter one padded to the batch, one joining as another leaves
PROMPTS = ((5, 0), (14, 2), (3, 3), (8, NEW_TOKENS - 1))


def _batched(generator: Generator, prompts: list[np.ndarray], joins: list[int]) -> tuple[list, list, list[int]]:
    """Run a scripted schedule: at decode step ``s`` the prompts whose join step is ``s`` are
    prefilled alone and join; every row leaves after ``NEW_TOKENS`` tokens. Each sequence's ids and
    logits, and the batch size of every decode call."""
    ids: list[list[int]] = [[] for _ in prompts]
    logits: list[list[np.ndarray]] = [[] for _ in prompts]
    rows: list[int] = []  # which sequence each batch row is
    batch, sizes, step = None, [], 0
    while step == 0 or rows or any(j >= step for j in joins):
        for seq, join in enumerate(joins):
            if join == step:
                first, state = generator.prefill(prompts[seq][None], np.ones((1, len(prompts[seq])), np.int64))
                ids[seq].append(int(first[0].argmax()))
                logits[seq].append(first[0])
                batch = generator.join(batch, state)
                rows.append(seq)
        done = [row for row, seq in enumerate(rows) if len(ids[seq]) == NEW_TOKENS]
        if done:
            batch = generator.leave(batch, done)
            rows = [seq for row, seq in enumerate(rows) if row not in done]
        if rows:
            out, batch = generator.decode(batch, np.array([ids[seq][-1] for seq in rows], np.int64))
            sizes.append(len(rows))
            for row, seq in enumerate(rows):
                ids[seq].append(int(out[row].argmax()))
                logits[seq].append(out[row])
        step += 1
    return ids, logits, sizes


@pytest.mark.parametrize("make", [causal_lms.llama, causal_lms.gpt2])
def test_sequences_joining_and_leaving_a_batch_get_their_solo_tokens(make, tmp_path):
    make().save_pretrained(tmp_path / "model")
    generator = load_dynamic(GeneratorRequest(tmp_path / "model", max_length=32))
    assert isinstance(generator, SequenceBatcher)
    rng = np.random.default_rng(3)
    prompts = [rng.integers(2, causal_lms.VOCAB, n).astype(np.int64) for n, _ in PROMPTS]
    ids, logits, sizes = _batched(generator, prompts, [join for _, join in PROMPTS])
    assert max(sizes) == 3 and sizes[0] == 1  # it really decoded several sequences at once
    for seq, prompt in enumerate(prompts):
        alone_ids, alone_logits = greedy(generator, prompt, NEW_TOKENS)
        assert ids[seq] == alone_ids.tolist(), f"sequence {seq} (prompt of {len(prompt)})"
        np.testing.assert_allclose(np.stack(logits[seq]), alone_logits, atol=1e-5, rtol=1e-4)


def test_the_static_cache_generator_is_served_one_sequence_at_a_time(tmp_path):
    causal_lms.llama().save_pretrained(tmp_path / "model")
    assert not isinstance(load_static(GeneratorRequest(tmp_path / "model", max_length=32)), SequenceBatcher)
