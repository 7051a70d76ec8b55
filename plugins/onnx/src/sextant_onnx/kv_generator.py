"""The ``onnxruntime-kv`` generator: ONNX Runtime runs the graph that ``sextant_onnx.kv_export``
wrote, a prefill over the prompt with empty pasts, then one decode step per token fed the
presents of the step before.

With ``io_binding`` (the default) the presents stay ONNX Runtime's own values (``OrtValue``, on the
device the session runs on) from one step to the next, bound as the next step's pasts: the cache is
never converted to numpy nor copied between host and device; only the logits of the last position
come back to the host. Without it every step goes through ``session.run`` and numpy arrays.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort
from sextant.api import GeneratorRequest, ModelLoadError, StepError

from sextant_onnx.kv_export import GRAPH, MANIFEST


@dataclass(frozen=True)
class _State:
    """The pasts (name -> ``OrtValue`` or array) and the attention mask so far."""

    pasts: dict[str, Any]
    mask: np.ndarray


class OrtKvGenerator:
    def __init__(self, request: GeneratorRequest) -> None:
        folder = request.artifact
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"{folder} has no readable {MANIFEST}: it is not what sextant_onnx.kv_export writes ({exc})"
            ) from exc
        self.kv_heads, self.head_dim = int(manifest["kv_heads"]), int(manifest["head_dim"])
        self.vocab_size = int(manifest["vocab_size"])
        self.max_positions = int(manifest.get("max_positions") or 2**31)
        self.past_names = [f"past.{i}.{kv}" for i in range(manifest["layers"]) for kv in ("key", "value")]
        so = ort.SessionOptions()
        so.intra_op_num_threads = request.threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        cuda = request.device == "cuda"
        providers = ["CUDAExecutionProvider"] if cuda else ["CPUExecutionProvider"]
        try:
            self.session = ort.InferenceSession(str(folder / GRAPH), so, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for bad models and missing ops
            architecture = manifest.get("architecture")
            raise ModelLoadError(f"ONNX Runtime cannot load the exported {architecture}: {exc}") from exc
        if providers[0] not in self.session.get_providers():
            raise ModelLoadError(f"ONNX Runtime did not enable {providers[0]} (got {self.session.get_providers()})")
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.device = "cuda" if cuda else "cpu"
        self.io_binding = bool(request.options.get("io_binding", True))

    def prefill(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, _State]:
        ids = np.ascontiguousarray(input_ids, dtype=np.int64)
        if ids.shape[1] > self.max_positions:
            raise StepError(
                f"a prompt of {ids.shape[1]} tokens is longer than the model's {self.max_positions} positions"
            )
        empty = np.zeros((ids.shape[0], self.kv_heads, 0, self.head_dim), np.float32)
        mask = np.ascontiguousarray(attention_mask, dtype=np.int64)
        return self._step(ids, mask, {n: empty for n in self.past_names})

    def decode(self, state: _State, next_ids: np.ndarray) -> tuple[np.ndarray, _State]:
        ids = np.ascontiguousarray(next_ids, dtype=np.int64)[:, None]
        mask = np.concatenate([state.mask, np.ones((len(ids), 1), np.int64)], axis=1)
        return self._step(ids, mask, state.pasts)

    def _step(self, ids: np.ndarray, mask: np.ndarray, pasts: dict[str, Any]) -> tuple[np.ndarray, _State]:
        if not self.io_binding:
            out = self.session.run(self.outputs, {"input_ids": ids, "attention_mask": mask, **pasts})
            return out[0], _State(dict(zip(self.past_names, out[1:])), mask)
        binding = self.session.io_binding()
        binding.bind_cpu_input("input_ids", ids)
        binding.bind_cpu_input("attention_mask", mask)
        for name, value in pasts.items():
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, value)
        binding.bind_output(self.outputs[0], "cpu")  # the logits: the host chooses the next token
        for name in self.outputs[1:]:
            binding.bind_output(name, self.device)
        self.session.run_with_iobinding(binding)
        values = binding.get_outputs()
        return values[0].numpy(), _State(dict(zip(self.past_names, values[1:])), mask)

    def close(self) -> None:
        self.session = None


def load(request: GeneratorRequest) -> OrtKvGenerator:
    return OrtKvGenerator(request)
