"""A tiny streaming (decoupled) causal LM for ``sextant analyze --model-type llm``: a Python-backend
model with the tensor names agreed with ``sextant deploy triton``'s generation models, so the real
deployer's model can replace it.

- inputs ``input_ids`` INT64 ``[-1]`` (``max_batch_size: 0``), ``max_tokens`` INT32 ``[1]`` and
  ``stream`` BOOL ``[1]`` (both optional);
- output ``output_ids`` INT64 ``[-1]``: one response per generated token, the last one flagged final;
- ``parameters { key: "context_length" }``: prompt plus generated tokens must fit; a longer request
  is answered with an error.

The network is a one-layer decoder (attention with a KV cache, an MLP, tied embeddings) in numpy
with random weights from a fixed seed, decoding greedily: it loads in well under a second (a torch
model would import torch in every instance's stub, each time a configuration is loaded). It is a
test stand-in, not what users deploy.
"""

from __future__ import annotations

from pathlib import Path

VOCAB, HIDDEN, CONTEXT = 128, 32, 96

MODEL_PY = """
import json

import numpy as np
import triton_python_backend_utils as pb_utils

VOCAB, HIDDEN = {vocab}, {hidden}


class TinyDecoder:
    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        scale = HIDDEN ** -0.5
        self.embed = rng.standard_normal((VOCAB, HIDDEN)).astype(np.float32)
        self.pos = rng.standard_normal((1024, HIDDEN)).astype(np.float32) * 0.1
        self.wq, self.wk, self.wv, self.wo = (
            (rng.standard_normal((HIDDEN, HIDDEN)) * scale).astype(np.float32) for _ in range(4)
        )
        self.w1 = (rng.standard_normal((HIDDEN, 2 * HIDDEN)) * scale).astype(np.float32)
        self.w2 = (rng.standard_normal((2 * HIDDEN, HIDDEN)) * scale).astype(np.float32)

    def step(self, ids, start, cache):
        # ids: the new tokens at positions start.., cache: (keys, values) of the earlier ones
        x = self.embed[ids] + self.pos[start : start + len(ids)]
        q, k, v = x @ self.wq, x @ self.wk, x @ self.wv
        keys = np.concatenate([cache[0], k]) if cache else k
        values = np.concatenate([cache[1], v]) if cache else v
        scores = q @ keys.T / np.sqrt(HIDDEN)
        mask = np.arange(len(keys))[None, :] > (start + np.arange(len(ids)))[:, None]
        scores = np.where(mask, -1e9, scores)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        h = x + (weights @ values) @ self.wo
        h = h + np.maximum(h @ self.w1, 0) @ self.w2
        return h[-1] @ self.embed.T, (keys, values)

    def generate(self, prompt, max_tokens):
        logits, cache = self.step(prompt, 0, None)
        position = len(prompt)
        for _ in range(max_tokens):
            token = int(np.argmax(logits))
            yield token
            logits, cache = self.step(np.array([token]), position, cache)
            position += 1


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.context = int(config["parameters"]["context_length"]["string_value"])
        self.model = TinyDecoder()

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            prompt = pb_utils.get_input_tensor_by_name(request, "input_ids").as_numpy().reshape(-1)
            given = pb_utils.get_input_tensor_by_name(request, "max_tokens")
            max_tokens = int(given.as_numpy().reshape(-1)[0]) if given is not None else 16
            if len(prompt) + max_tokens > self.context:
                error = pb_utils.TritonError(
                    f"the prompt ({{len(prompt)}} tokens) plus max_tokens ({{max_tokens}}) exceeds the "
                    f"context of {{self.context}} tokens"
                )
                final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
                sender.send(pb_utils.InferenceResponse(error=error), flags=final)
                continue
            for i, token in enumerate(self.model.generate(prompt.astype(np.int64) % VOCAB, max_tokens)):
                out = pb_utils.Tensor("output_ids", np.array([token], dtype=np.int64))
                final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if i == max_tokens - 1 else 0
                sender.send(pb_utils.InferenceResponse([out]), flags=final)
            if max_tokens == 0:
                sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None
"""

CONFIG = """name: "{name}"
backend: "python"
max_batch_size: 0
{policy}input [
  {{ name: "input_ids" data_type: TYPE_INT64 dims: [ -1 ] }},
  {{ name: "max_tokens" data_type: TYPE_INT32 dims: [ 1 ] optional: true }},
  {{ name: "stream" data_type: TYPE_BOOL dims: [ 1 ] optional: true }}
]
output [{{ name: "output_ids" data_type: TYPE_INT64 dims: [ -1 ] }}]
instance_group [{{ kind: KIND_CPU count: 1 }}]
parameters {{ key: "context_length" value {{ string_value: "{context}" }} }}
"""


def write_llm(repository: Path, name: str = "tiny_lm", *, decoupled: bool = True, context: int = CONTEXT) -> Path:
    """``repository/name``: the tiny streaming LM (``decoupled=False``: the same model, not streaming)."""
    (repository / name / "1").mkdir(parents=True, exist_ok=True)
    (repository / name / "1" / "model.py").write_text(MODEL_PY.format(vocab=VOCAB, hidden=HIDDEN))
    policy = "model_transaction_policy { decoupled: true }\n" if decoupled else ""
    (repository / name / "config.pbtxt").write_text(CONFIG.format(name=name, policy=policy, context=context))
    return repository
