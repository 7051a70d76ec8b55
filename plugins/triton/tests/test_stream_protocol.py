"""The streaming model's request handling without a server: reading and checking a request,
grouping tokens into responses, stopping at a cancellation (asked by count, not by time), and
the text each response adds."""

from __future__ import annotations

import numpy as np
import pytest
from sextant_triton.stream_protocol import Prompt, RequestError, TextDeltas, prompt, responses

LIMITS = dict(vocab_size=100, max_positions=16, default_tokens=4)


def test_a_request_is_read_with_its_defaults():
    asked = prompt({"input_ids": np.array([3, 4, 5])}, **LIMITS)
    assert asked.ids.tolist() == [3, 4, 5] and asked.max_tokens == 4 and asked.stream
    given = prompt(
        {"input_ids": np.array([3]), "max_tokens": np.array([2], np.int32), "stream": np.array([False])}, **LIMITS
    )
    assert (given.max_tokens, given.stream) == (2, False)
    text = prompt({"text_input": np.array([b"ab"], object)}, **LIMITS, encode=lambda s: [ord(c) - 90 for c in s])
    assert text.ids.tolist() == [7, 8]


@pytest.mark.parametrize(
    ("inputs", "encode", "message"),
    [
        ({"input_ids": np.arange(14), "max_tokens": np.array([3])}, None, "a prompt of 14 tokens and max_tokens 3 need 17 positions, more than the model's 16"),
        ({"input_ids": np.array([1, 100, -1])}, None, "token id(s) [-1, 100] outside the model's vocabulary of 100"),
        ({"input_ids": np.array([], np.int64)}, None, "the prompt is empty"),
        ({}, None, "the request has no prompt"),
        ({"text_input": np.array([b"x"], object)}, None, "this model has no tokenizer"),
        ({"input_ids": np.array([1]), "text_input": np.array([b"x"], object)}, str.encode, "both input_ids and text_input"),
        ({"input_ids": np.array([1]), "max_tokens": np.array([0])}, None, "max_tokens 0"),
        ({"input_ids": np.array([1]), "max_tokens": np.array([1, 2])}, None, "max_tokens must hold one value"),
        (
            {"input_ids": np.array([1]), "exclude_input_in_output": np.array([False])},
            None,
            "exclude_input_in_output false with stream true",
        ),
    ],
)
def test_what_cannot_run_is_a_request_error_with_a_hint(inputs, encode, message):
    with pytest.raises(RequestError) as raised:
        prompt(inputs, **LIMITS, encode=encode)
    assert message in raised.value.message
    assert raised.value.hint


def _steps(n):
    return iter(np.array([10 + i]) for i in range(n))


def test_streamed_one_token_a_response_or_all_in_one():
    streamed = list(responses(_steps(3), Prompt(np.array([1]), 3, True), lambda: False))
    assert streamed == [([10], False), ([11], False), ([12], True)]
    whole = list(responses(_steps(3), Prompt(np.array([1]), 3, False), lambda: False))
    assert whole == [([10, 11, 12], True)]


def test_exclude_input_in_output_false_answers_the_prompt_then_the_new_tokens_as_vllm_does():
    ids, off = np.array([5, 6]), np.array([False])
    echo = prompt({"input_ids": ids, "stream": off, "exclude_input_in_output": np.array([False])}, **LIMITS)
    assert echo.echo and list(responses(_steps(3), echo, lambda: False)) == [([5, 6, 10, 11, 12], True)]
    short = list(responses(_steps(2), Prompt(ids, 3, False, echo=True), lambda: False))  # the generator ended early
    assert short == [([5, 6, 10, 11], True)]
    excluded = prompt({"input_ids": ids, "stream": off, "exclude_input_in_output": np.array([True])}, **LIMITS)
    assert not excluded.echo and not prompt({"input_ids": ids, "stream": off}, **LIMITS).echo


def test_a_cancellation_stops_before_the_next_token_is_generated():
    asked = []
    made = []

    def tokens():
        for i in range(8):
            made.append(i)
            yield np.array([i])

    def cancelled():
        asked.append(1)
        return len(asked) > 2  # cancelled after two responses went out

    got = list(responses(tokens(), Prompt(np.array([1]), 8, True), cancelled))
    assert got == [([0], False), ([1], False)]
    assert made == [0, 1]  # the third token was never generated


def test_text_deltas_hold_back_a_partial_character():
    pieces = {1: b"a", 2: b"\xc3", 3: b"\xa9", 4: b"z"}  # '\xc3\xa9' is one character, e-acute

    def decode(ids):
        return b"".join(pieces[i] for i in ids).decode(errors="replace")

    deltas = TextDeltas(decode)
    assert [deltas.push([1]), deltas.push([2]), deltas.push([3]), deltas.push([4], last=True)] == ["a", "", "\u00e9", "z"]
