"""A numpy "causal LM" plugin: enough to drive a whole generation run with no torch.

Source format ``numpy-lm``: a :class:`NumpyLM` object (a bigram table plus a per-position bias, so
the next token depends on the last token and the position), written with ``np.savez``. Generators:
``numpy-lm`` (the reference; its state is the last ids and the position) and ``numpy-lm-noisy``,
whose ``noise`` option adds that much uniform noise to every logit (0: exact), and ``numpy-lm-copy``,
two exact copies of the reference (its ``copy`` option changes nothing: correct rivals to screen).
:class:`ClockedGenerator` advances a fake clock by set amounts per call, for exact timings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sextant.hookspecs import hookimpl
from sextant.runtime import GeneratorRequest
from sextant.specs import Format, GeneratorSpec, Param, Rejection, SourceModel

LM = Format("numpy-lm")


class NumpyLM:
    """``logits = table[last id] + bias[position]``, float32."""

    def __init__(self, vocab: int = 32, positions: int = 64, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.table = rng.standard_normal((vocab, vocab)).astype(np.float32)
        self.bias = rng.standard_normal((positions, vocab)).astype(np.float32) * 0.1

    def save(self, path: Path) -> Path:
        with open(path, "wb") as f:
            np.savez(f, table=self.table, bias=self.bias)
        return path


class NoGenerate:
    """A model of the fake framework that cannot generate (for the error's test)."""


@hookimpl
def sextant_load_source(model: object, name: str | None, task: str) -> SourceModel | Rejection | None:
    if isinstance(model, NoGenerate) and task == "text-generation":
        return Rejection("a NoGenerate, which has no generate: it is not a causal LM", hint="Give a NumpyLM.")
    if not isinstance(model, NumpyLM) or task == "forward":
        return None
    vocab, positions = model.table.shape[0], model.bias.shape[0]
    return SourceModel(
        LM,
        name or "numpy-lm",
        lambda folder: model.save(folder / "lm.npz"),
        description="numpy bigram LM",
        vocab_size=vocab,
        max_positions=positions,
    )


@hookimpl
def sextant_register_generators() -> list[GeneratorSpec]:
    return [
        GeneratorSpec("numpy-lm", LM, load="sextant.testing.fakelm:load", reference=True),
        GeneratorSpec(
            "numpy-lm-noisy",
            LM,
            load="sextant.testing.fakelm:load",
            options=(Param("noise", "categorical", (0.0, 1e-3, 10.0), 1e-3, "uniform noise on the logits"),),
            variants=({"noise": 10.0},),
        ),
        GeneratorSpec(
            "numpy-lm-copy",
            LM,
            load="sextant.testing.fakelm:load",
            options=(Param("copy", "categorical", (0, 1), 0, "which copy (both are exact)"),),
            variants=({"copy": 1},),
        ),
    ]


@dataclass
class _State:
    last: np.ndarray
    position: int


class NumpyLMGenerator:
    def __init__(self, table: np.ndarray, bias: np.ndarray, noise: float = 0.0, seed: int = 0) -> None:
        self.table, self.bias, self.noise = table, bias, noise
        self.vocab_size, self.max_positions = table.shape[0], bias.shape[0]
        self.rng = np.random.default_rng(seed)

    def _logits(self, last: np.ndarray, position: int) -> np.ndarray:
        logits = self.table[last] + self.bias[position]
        if self.noise:
            logits = logits + self.rng.uniform(-self.noise, self.noise, logits.shape).astype(np.float32)
        return logits

    def prefill(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, _State]:
        position = input_ids.shape[1] - 1
        return self._logits(input_ids[:, -1], position), _State(input_ids[:, -1], position)

    def decode(self, state: _State, next_ids: np.ndarray) -> tuple[np.ndarray, _State]:
        position = state.position + 1
        return self._logits(next_ids, position), _State(next_ids, position)

    def close(self) -> None:
        pass


def load(request: GeneratorRequest) -> NumpyLMGenerator:
    with np.load(request.artifact) as data:
        return NumpyLMGenerator(data["table"], data["bias"], float(request.options.get("noise", 0.0)))


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class ClockedGenerator:
    """Wraps a generator; each ``prefill`` advances ``clock`` by ``prefill_s(batch, length)`` and
    each ``decode`` by the next of ``decode_s`` (cycled)."""

    inner: Any
    clock: FakeClock
    prefill_s: Callable[[int, int], float]
    decode_s: Sequence[float]
    calls: list[str] = field(default_factory=list)

    @property
    def vocab_size(self) -> int:
        return self.inner.vocab_size

    @property
    def max_positions(self) -> int:
        return self.inner.max_positions

    def prefill(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, Any]:
        self.clock.now += self.prefill_s(*input_ids.shape)
        self.calls.append("prefill")
        return self.inner.prefill(input_ids, attention_mask)

    def decode(self, state: Any, next_ids: np.ndarray) -> tuple[np.ndarray, Any]:
        decodes = self.calls.count("decode")
        self.clock.now += self.decode_s[decodes % len(self.decode_s)]
        self.calls.append("decode")
        return self.inner.decode(state, next_ids)

    def close(self) -> None:
        self.inner.close()
