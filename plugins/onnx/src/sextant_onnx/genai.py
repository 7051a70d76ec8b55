"""The ``onnxruntime-genai`` generator: onnxruntime-genai's own generation loop (``og.Generator``)
on the graph its model builder wrote (``sextant_onnx.genai_build``).

onnxruntime-genai keeps the KV cache in one buffer of the generation's whole length (past and
present share it) and computes positions and the attention mask itself; the caller appends tokens
and reads the logits of the last position. :meth:`prefill` starts a generator for the batch and
appends the prompts; :meth:`decode` appends one token per sequence:

- at batch 1 by ``append_tokens`` (what onnxruntime-genai offers to continue from chosen tokens);
- at a larger batch, where ``append_tokens`` may be called only once per generation, through its
  search: the logits are set to select exactly ``next_ids`` (``set_logits``), then
  ``generate_next_token`` appends them.

onnxruntime-genai reads token ids as text generation uses them, where sextant's loop generates a
fixed number of tokens whatever they are: its search ends a sequence that selects an
end-of-sequence id (later steps would be padding), and a prompt that ends in the padding id (often
the same id) is taken as right-padded (the logits would be those of the last other token). So a
batch-1 prompt's trailing padding ids are appended one at a time, and a larger batch whose prompts
end in one, or whose step appends an end-of-sequence id, goes on with one generator of batch 1 per
sequence (started again from the whole sequences: exact, slower; rare with a real vocabulary).

Only the logits come back to Python; the cache never leaves onnxruntime-genai.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import onnxruntime_genai as og
from sextant.api import GeneratorRequest, ModelLoadError, StepError

CONFIG = "genai_config.json"


@dataclass(frozen=True)
class _State:
    """One generation: every token so far (``[batch, length]``), and onnxruntime-genai's generator
    of the whole batch, or (``rows``) one generator of batch 1 per sequence."""

    ids: np.ndarray
    generator: Any = None
    rows: tuple[Any, ...] = ()


def _ids(value: Any) -> frozenset[int]:
    if isinstance(value, list):
        return frozenset(int(v) for v in value)
    return frozenset() if value is None else frozenset({int(value)})


class GenAiGenerator:
    def __init__(self, request: GeneratorRequest) -> None:
        folder = request.artifact
        try:
            config = json.loads((folder / CONFIG).read_text())["model"]
        except (OSError, ValueError, KeyError) as exc:
            raise ModelLoadError(
                f"{folder} has no readable {CONFIG}: it is not what onnxruntime-genai's model builder writes ({exc})"
            ) from exc
        self.vocab_size = int(config["vocab_size"])
        self.max_positions = int(config.get("context_length") or 2**31)
        self.max_length = min(request.max_length, self.max_positions)
        self.ends = _ids(config.get("eos_token_id"))
        self.pads = _ids(config.get("pad_token_id"))
        threads = {"intra_op_num_threads": request.threads, "inter_op_num_threads": 1}
        try:
            og_config = og.Config(str(folder))
            og_config.overlay(json.dumps({"model": {"decoder": {"session_options": threads}}}))
            self.model = og.Model(og_config)
        except Exception as exc:  # onnxruntime-genai raises RuntimeError for every load failure
            raise ModelLoadError(f"onnxruntime-genai cannot load {folder}: {exc}") from exc

    def _start(self, ids: np.ndarray) -> Any:
        """A generator that has appended ``ids``. At batch 1, trailing padding ids are appended one at
        a time: onnxruntime-genai takes them as right padding of a prompt (its logits would be the
        last other token's) but not as a token appended alone."""
        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=self.max_length, batch_size=len(ids))
        generator = og.Generator(self.model, params)
        n = ids.shape[1]
        if len(ids) == 1:
            while n > 1 and int(ids[0, n - 1]) in self.pads:
                n -= 1
        generator.append_tokens(np.ascontiguousarray(ids[:, :n], dtype=np.int32))
        for token in ids[0, n:]:
            generator.append_tokens(np.array([[token]], np.int32))
        return generator

    def _split(self, ids: np.ndarray) -> _State:
        """One generator of batch 1 per sequence (exact whatever the tokens; slower)."""
        return _State(ids, rows=tuple(self._start(ids[row : row + 1]) for row in range(len(ids))))

    def _logits(self, state: _State) -> tuple[np.ndarray, _State]:
        if state.rows:
            logits = np.concatenate([np.asarray(g.get_logits(), np.float32).reshape(1, -1) for g in state.rows])
        else:
            logits = np.asarray(state.generator.get_logits(), dtype=np.float32).reshape(len(state.ids), -1)
        return logits, state

    def prefill(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, _State]:
        ids = np.asarray(input_ids, dtype=np.int64)
        if not np.all(np.asarray(attention_mask) == 1):
            raise StepError("onnxruntime-genai's generator takes unpadded prompts here (an attention mask of ones)")
        if ids.shape[1] >= self.max_length:
            raise StepError(
                f"a prompt of {ids.shape[1]} tokens leaves no room in the generator's {self.max_length} positions",
                hint="Load the generator with a larger max_length (at most the model's positions).",
            )
        if len(ids) > 1 and self.pads.intersection(ids[:, -1].tolist()):
            return self._logits(self._split(ids))  # a batch's prompt ending in padding ids would be cut
        return self._logits(_State(ids, self._start(ids)))

    def decode(self, state: _State, next_ids: np.ndarray) -> tuple[np.ndarray, _State]:
        tokens = np.asarray(next_ids, dtype=np.int64).reshape(-1)
        ids = np.concatenate([state.ids, tokens[:, None]], axis=1)
        if ids.shape[1] > self.max_length:
            raise StepError(
                f"the generation reached the {self.max_length} tokens the generator was loaded for",
                hint="Load the generator with a larger max_length (at most the model's positions).",
            )
        if state.rows or len(tokens) == 1:
            for generator, token in zip(state.rows or (state.generator,), tokens):
                generator.append_tokens(np.array([[token]], np.int32))
            return self._logits(replace(state, ids=ids))
        if self.ends.intersection(tokens.tolist()):
            return self._logits(self._split(ids))  # its search would end those sequences
        chosen = np.zeros((len(tokens), self.vocab_size), np.float32)
        chosen[np.arange(len(tokens)), tokens] = 1.0
        state.generator.set_logits(chosen)
        state.generator.generate_next_token()
        return self._logits(replace(state, ids=ids))

    def close(self) -> None:
        self.model = None


def load(request: GeneratorRequest) -> GenAiGenerator:
    return GenAiGenerator(request)
