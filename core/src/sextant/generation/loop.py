"""The greedy loop over a :class:`~sextant.runtime.Generator`, teacher forcing, and the object a
package's generation candidate loads as.

Greedy means the arg-max token at every step, and exactly ``max_new_tokens`` of them: an
end-of-sequence token does not stop the loop (what is judged and measured is the same amount of
work for every candidate; ``transformers``' ``generate(..., do_sample=False, min_new_tokens=N,
max_new_tokens=N)`` gives the same ids).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from sextant.runtime import Generator, StreamingGenerator


def _batch(input_ids: Any) -> np.ndarray:
    ids = np.asarray(input_ids, dtype=np.int64)
    return ids[None] if ids.ndim == 1 else ids


def stream(generator: Generator, input_ids: Any, max_new_tokens: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(ids, logits)`` per step: the greedy next id of each sequence (``[batch]``) and the
    logits it was chosen from (``[batch, vocab]``)."""
    ids = _batch(input_ids)
    logits, state = generator.prefill(ids, np.ones_like(ids))
    for step in range(max_new_tokens):
        logits = np.asarray(logits, dtype=np.float32)
        next_ids = logits.argmax(-1).astype(np.int64)
        yield next_ids, logits
        if step + 1 < max_new_tokens:
            logits, state = generator.decode(state, next_ids)


def greedy(generator: Generator, prompt: np.ndarray, max_new_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """The greedy continuation of one prompt: ids ``[n]`` and the logits of each step ``[n, vocab]``."""
    steps = list(stream(generator, prompt, max_new_tokens))
    return np.array([ids[0] for ids, _ in steps]), np.stack([logits[0] for _, logits in steps])


def teacher_forced(generator: Generator, prompt: np.ndarray, continuation: np.ndarray) -> np.ndarray:
    """The candidate's logits ``[n, vocab]`` at each step of the reference's ``continuation``: step
    ``t`` sees the prompt and the reference's first ``t`` tokens, whatever the candidate would
    have chosen."""
    ids = _batch(prompt)
    logits, state = generator.prefill(ids, np.ones_like(ids))
    out = [np.asarray(logits, dtype=np.float32)[0]]
    for token in continuation[:-1]:
        logits, state = generator.decode(state, np.array([token], dtype=np.int64))
        out.append(np.asarray(logits, dtype=np.float32)[0])
    return np.stack(out)


class TextGenerator:
    """A package's generation candidate, loaded: greedy ``generate`` and a token-by-token ``stream``
    over the backend's :class:`~sextant.runtime.Generator` (``generator``)."""

    def __init__(self, generator: Generator, name: str = "") -> None:
        self.generator = generator
        self.name = name

    def __repr__(self) -> str:
        return f"TextGenerator({self.name!r})"

    @property
    def vocab_size(self) -> int:
        return self.generator.vocab_size

    def generate(self, input_ids: Any, max_new_tokens: int = 32) -> np.ndarray:
        """The prompt(s) followed by their greedy continuation: int64 ``[batch, length + max_new_tokens]``
        (a 1-D prompt is a batch of one)."""
        ids = _batch(input_ids)
        new = list(self.stream(ids, max_new_tokens))
        return np.concatenate([ids, np.stack(new, axis=1)], axis=1)

    def stream(self, input_ids: Any, max_new_tokens: int = 32) -> Iterator[np.ndarray]:
        """Each new token as it is generated: int64 ``[batch]`` per step (by the backend's own loop
        where it has one: a :class:`~sextant.runtime.StreamingGenerator`)."""
        if isinstance(self.generator, StreamingGenerator):
            for ids in self.generator.stream(_batch(input_ids), max_new_tokens):
                yield np.asarray(ids, dtype=np.int64)
            return
        for ids, _ in stream(self.generator, input_ids, max_new_tokens):
            yield ids

    def close(self) -> None:
        self.generator.close()

    def __enter__(self) -> TextGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
