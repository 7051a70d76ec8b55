"""The prompts a generation run judges and measures: token ids, one sequence per prompt.

Given prompts come as an ``.npz`` file (or a samples function returning the same mapping) with
``input_ids`` (int ``[n, length]``) and optionally ``attention_mask``: each row is kept where its
mask is 1, so padded rows become the prompts they pad. Without prompts, ``prompts_per_length``
prompts of each ``--prompt-lengths`` are drawn uniformly from the model's vocabulary (seeded).
Every prompt is checked before anything runs: ids inside the vocabulary, and the prompt plus the
new tokens within the model's positions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sextant.errors import SampleError
from sextant.generation.config import GenerationConfig

_KEY = "prompt_"


@dataclass(frozen=True)
class Prompts:
    """Prompts (1-D int64 arrays), in the order they were given or generated."""

    ids: tuple[np.ndarray, ...]
    given: bool = False

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> list[int]:
        """The distinct prompt lengths, shortest first."""
        return sorted({len(p) for p in self.ids})

    def first_of_length(self, length: int) -> np.ndarray:
        return next(p for p in self.ids if len(p) == length)

    def save(self, path: Path) -> None:
        np.savez(path, **{f"{_KEY}{i}": p for i, p in enumerate(self.ids)})

    @classmethod
    def load(cls, path: Path) -> Prompts:
        with np.load(path) as data:
            count = sum(1 for k in data.files if k.startswith(_KEY))
            return cls(tuple(np.asarray(data[f"{_KEY}{i}"], dtype=np.int64) for i in range(count)))


def make_prompts(
    given: Any, config: GenerationConfig, vocab_size: int | None, max_positions: int | None
) -> Prompts:
    """The run's prompts: ``given`` (a path to an ``.npz``, or a mapping) or generated; checked."""
    if given is None:
        if vocab_size is None:
            raise SampleError(
                "the model does not say its vocabulary size, so prompts cannot be generated",
                hint="Give prompts with --samples prompts.npz (input_ids, attention_mask).",
            )
        rng = np.random.default_rng(config.seed)
        ids = tuple(
            rng.integers(0, vocab_size, size=length, dtype=np.int64)
            for length in config.prompt_lengths
            for _ in range(config.prompts_per_length)
        )
        prompts = Prompts(ids)
    else:
        prompts = Prompts(_read(given), given=True)
    check(prompts, config.new_tokens, vocab_size, max_positions)
    return prompts


def _read(given: Any) -> tuple[np.ndarray, ...]:
    if isinstance(given, (str, Path)):
        path = Path(given)
        try:
            with np.load(path) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise SampleError(f"{path}: cannot read the prompts: {exc}", hint="Give an .npz file with input_ids.") from exc
    elif isinstance(given, Mapping):
        arrays = {k: np.asarray(v) for k, v in given.items()}
    elif isinstance(given, Sequence) and given and all(np.ndim(p) == 1 for p in given):
        return tuple(np.asarray(p, dtype=np.int64) for p in given)
    else:
        raise SampleError(
            f"prompts of type {type(given).__name__} are not token ids",
            hint="Give a mapping (or .npz) with input_ids [n, length] and attention_mask, or a list of 1-D id arrays.",
        )
    if "input_ids" not in arrays:
        raise SampleError(
            f"the prompts hold {', '.join(sorted(arrays)) or 'nothing'}, not input_ids",
            hint="A text-generation run takes token ids: input_ids [n, length] and optionally attention_mask.",
        )
    ids = arrays["input_ids"]
    if ids.ndim == 1:
        ids = ids[None]
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise SampleError(f"input_ids must be integers [n, length], got {ids.dtype} {list(ids.shape)}")
    mask = arrays.get("attention_mask")
    if mask is None:
        mask = np.ones_like(ids)
    mask = mask.reshape(ids.shape) if mask.size == ids.size else None
    if mask is None:
        raise SampleError(f"attention_mask {list(arrays['attention_mask'].shape)} does not match input_ids {list(ids.shape)}")
    prompts = tuple(row[m.astype(bool)].astype(np.int64) for row, m in zip(ids, mask))
    empty = [i for i, p in enumerate(prompts) if len(p) == 0]
    if empty:
        raise SampleError(f"prompt(s) {empty} are empty (their attention_mask is all 0)")
    return prompts


def check(prompts: Prompts, new_tokens: int, vocab_size: int | None, max_positions: int | None) -> None:
    """Ids inside the vocabulary, and prompt plus new tokens within the model's positions."""
    for i, prompt in enumerate(prompts.ids):
        if vocab_size is not None and (prompt.min() < 0 or prompt.max() >= vocab_size):
            bad = prompt[(prompt < 0) | (prompt >= vocab_size)]
            raise SampleError(
                f"prompt {i} holds token id(s) {sorted(set(bad.tolist()))[:5]} outside the model's vocabulary "
                f"of {vocab_size} (ids 0..{vocab_size - 1})",
                hint="The prompts were tokenized for another model: tokenize them with this model's tokenizer.",
            )
        if max_positions is not None and len(prompt) + new_tokens > max_positions:
            raise SampleError(
                f"prompt {i} has {len(prompt)} tokens; with --new-tokens {new_tokens} the sequence would have "
                f"{len(prompt) + new_tokens}, more than the model's {max_positions} positions",
                hint=f"Use prompts of at most {max_positions - new_tokens} tokens, or fewer --new-tokens.",
            )
