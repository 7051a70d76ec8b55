"""What a streaming (decoupled) generation model takes and answers, independent of Triton's API.

The tensor names are those of Triton's LLM backends (the vLLM backend's ``text_input``,
``stream``, ``text_output``), so Triton's generate endpoints and standard LLM clients work
unchanged; a model without a tokenizer takes and answers token ids:

================================  =====  ======  ==================================================================
name                              type   dims    meaning
================================  =====  ======  ==================================================================
``input_ids`` (in)                INT64  [-1]    the prompt's token ids (required unless ``text_input`` is served)
``max_tokens`` (in)               INT32  [1]     tokens to generate (optional; default: the package's --new-tokens)
``stream`` (in)                   BOOL   [1]     one response per token (optional, default true); false: one in all
``text_input`` (in)               BYTES  [1]     the prompt as text (only with a tokenizer; instead of input_ids)
``exclude_input_in_output`` (in)  BOOL   [1]     optional, default true; false (``stream`` false only): the
                                                 response starts with the prompt (as Triton's vLLM backend does)
``output_ids`` (out)              INT64  [-1]    the new token(s) of this response
``text_output`` (out)             BYTES  [-1]    their text (only with a tokenizer): one string, the new text
================================  =====  ======  ==================================================================

:func:`prompt` reads a request's inputs and checks them (ids within the vocabulary, the prompt and
the tokens asked for within the model's positions): a :class:`RequestError` (message and hint) the
model answers as an error, never a crash. :func:`responses` (over :class:`Replies`) groups the
generated tokens into responses and stops as soon as the request is cancelled. :class:`TextDeltas` turns the tokens of a
sequence into the text each response adds (decoding the whole continuation each time, so a
character made of several tokens comes out whole).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sextant.api import UsageError

INPUT_IDS = "input_ids"
MAX_TOKENS = "max_tokens"
STREAM = "stream"
TEXT_INPUT = "text_input"
#: the vLLM backend's optional input (GenAI-Perf's gRPC path sends it with every request)
EXCLUDE_INPUT = "exclude_input_in_output"
OUTPUT_IDS = "output_ids"
TEXT_OUTPUT = "text_output"
#: config parameters the model reads: the default of ``max_tokens``, and whether a tokenizer is served
DEFAULT_TOKENS_PARAMETER = "sextant_max_tokens"
#: config parameters written for clients and ``sextant analyze --model-type llm``: the model's
#: positions (prompt plus generated tokens) and its vocabulary size
CONTEXT_PARAMETER = "context_length"
VOCAB_PARAMETER = "vocab_size"
TOKENIZER_FOLDER = "tokenizer"


class RequestError(UsageError):
    """A request the model cannot answer (its prompt or settings); answered as an error response."""


@dataclass(frozen=True)
class Prompt:
    """One request, read and checked: the prompt's ids, how many tokens to generate, whether to
    stream them (one response each) or answer them all in one response, and whether that one
    response starts with the prompt (``echo``: ``exclude_input_in_output`` false)."""

    ids: np.ndarray  # int64 [n]
    max_tokens: int
    stream: bool
    echo: bool = False


def _scalar(array: np.ndarray | None, name: str) -> Any:
    if array is None:
        return None
    flat = np.asarray(array).reshape(-1)
    if flat.size != 1:
        raise RequestError(f"{name} must hold one value, got {flat.size}", hint=f"Send {name} with shape [1].")
    return flat[0]


def prompt(
    inputs: Mapping[str, np.ndarray | None],
    *,
    vocab_size: int,
    max_positions: int,
    default_tokens: int,
    encode: Callable[[str], list[int]] | None = None,
) -> Prompt:
    """Read a request's inputs (absent ones ``None``); raise :class:`RequestError` for what cannot run."""
    ids_in, text_in = inputs.get(INPUT_IDS), inputs.get(TEXT_INPUT)
    if ids_in is not None and text_in is not None:
        raise RequestError(f"the request has both {INPUT_IDS} and {TEXT_INPUT}", hint="Send one of them.")
    if text_in is not None:
        if encode is None:
            raise RequestError(f"this model has no tokenizer, so it takes no {TEXT_INPUT}", hint=f"Send {INPUT_IDS}.")
        text = _scalar(text_in, TEXT_INPUT)
        ids = np.asarray(encode(text.decode("utf-8") if isinstance(text, bytes) else str(text)), dtype=np.int64)
    elif ids_in is not None:
        ids = np.asarray(ids_in).astype(np.int64, copy=False).reshape(-1)
    else:
        either = f"{INPUT_IDS} or {TEXT_INPUT}" if encode is not None else INPUT_IDS
        raise RequestError("the request has no prompt", hint=f"Send {either}.")
    if ids.size == 0:
        raise RequestError("the prompt is empty", hint="Send at least one token.")
    outside = sorted({int(i) for i in ids if i < 0 or i >= vocab_size})
    if outside:
        raise RequestError(
            f"token id(s) {outside[:8]} outside the model's vocabulary of {vocab_size}",
            hint=f"Token ids run from 0 to {vocab_size - 1}: encode the prompt with this model's tokenizer.",
        )
    tokens = _scalar(inputs.get(MAX_TOKENS), MAX_TOKENS)
    tokens = default_tokens if tokens is None else int(tokens)
    if tokens < 1:
        raise RequestError(
            f"{MAX_TOKENS} {tokens}: at least one token must be asked for",
            hint=f"Send {MAX_TOKENS} of 1 or more, or leave it out for the default ({default_tokens}).",
        )
    if ids.size + tokens > max_positions:
        raise RequestError(
            f"a prompt of {ids.size} tokens and {MAX_TOKENS} {tokens} need {ids.size + tokens} positions, "
            f"more than the model's {max_positions}",
            hint=f"Shorten the prompt or ask for fewer tokens (at most {max(0, max_positions - ids.size)} here).",
        )
    stream = _scalar(inputs.get(STREAM), STREAM)
    stream = True if stream is None else bool(stream)
    # Triton's vLLM backend: exclude_input_in_output false prepends the prompt to the output, and
    # it refuses false with stream true ("When streaming, `exclude_input_in_output` = False is not
    # allowed"); true excludes it. Left out, vLLM excludes it when streaming and includes it
    # otherwise; here it is always excluded, so output_ids stays the new tokens unless asked for.
    # vLLM prepends the prompt's text; here text_output is the decoded prompt ids and new ids.
    exclude = _scalar(inputs.get(EXCLUDE_INPUT), EXCLUDE_INPUT)
    echo = exclude is not None and not bool(exclude)
    if echo and stream:
        raise RequestError(
            f"{EXCLUDE_INPUT} false with {STREAM} true: a streamed response holds the new tokens only",
            hint=f"Send {STREAM} false to get the prompt and the new tokens in one response, "
            f"or {EXCLUDE_INPUT} true (the default).",
        )
    return Prompt(ids, tokens, stream, echo)


class Replies:
    """One request's tokens grouped into responses as they come: ``push(token)`` returns the
    response to send now, ``(ids, last)`` (every token when streaming, else all of them with the
    last, after the prompt's ids when the request asked for them: ``Prompt.echo``), or ``None``;
    ``done`` once ``max_tokens`` were pushed."""

    def __init__(self, request: Prompt) -> None:
        self.request = request
        self.count = 0
        self.held: list[int] = []

    @property
    def done(self) -> bool:
        return self.count >= self.request.max_tokens

    def push(self, token: int) -> tuple[list[int], bool] | None:
        self.held.append(int(token))
        self.count += 1
        if self.request.stream or self.done:
            return self.flush()
        return None

    def flush(self) -> tuple[list[int], bool]:
        """The tokens held, as a response (``last`` once done); the prompt's ids first when the
        request asked for them (its one response: echo is refused when streaming)."""
        ids, self.held = self.held, []
        if self.request.echo:
            ids = [*(int(i) for i in self.request.ids), *ids]
        return ids, self.done


def responses(
    tokens: Iterable[np.ndarray], request: Prompt, cancelled: Callable[[], bool]
) -> Iterator[tuple[list[int], bool]]:
    """``(ids, last)`` per response: one token each when streaming, else all of them at once;
    ``last`` on the final one. Stops, yielding nothing more, once ``cancelled()`` says so (asked
    before each token is generated)."""
    replies = Replies(request)
    iterator = iter(tokens)
    while not replies.done:
        if cancelled():
            return
        token = next(iterator, None)
        if token is None:
            break
        if reply := replies.push(int(np.asarray(token).reshape(-1)[0])):
            yield reply
    if replies.held:
        yield replies.flush()[0], True


class TextDeltas:
    """The text each response adds to the continuation: ``push(ids)`` decodes every token so far
    and returns what was not returned yet (a partial UTF-8 character waits for its next token)."""

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._sent = ""

    def push(self, ids: list[int], last: bool = False) -> str:
        self._ids += ids
        text = self._decode(self._ids)
        if text.endswith("\ufffd") and not last:
            return ""
        delta = text[len(self._sent) :] if text.startswith(self._sent) else text
        self._sent = text
        return delta
