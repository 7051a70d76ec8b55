"""The ``openvino-stateful`` generator: OpenVINO's CPU plugin runs the stateful IR that
``sextant_openvino.stateful_build`` wrote. The KV cache is the infer request's state: a prefill
resets it (each variable back to an empty cache of the batch's size) and runs the prompts, each
decode step runs one token per sequence; only the logits of the last position come back.

One infer request holds one generation at a time: a state is the current generation's step, and
continuing an older one (a state used twice, or one from before the latest prefill) is a
:class:`~sextant.errors.StepError`, never a silent continuation from the wrong cache.

Compiled with f32 inference precision and an f32 KV cache: OpenVINO's CPU plugin would otherwise
keep the cache in u8 (and compute in bf16 on CPUs with AMX), outside fp32's tolerance. An int8
IR's activations stay f32 too (weight-only), so the dynamic quantization of activations OpenVINO
applies to compressed weights is off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import openvino as ov
from sextant.api import GeneratorRequest, ModelLoadError, StepError

from sextant_openvino.errors import reason
from sextant_openvino.stateful_build import BEAM_IDX, GRAPH, MANIFEST


@dataclass(frozen=True)
class _State:
    """Which generation (``generation``) at which step, and the attention mask so far."""

    generation: int
    step: int
    mask: np.ndarray


def properties(request: GeneratorRequest) -> dict[str, str]:
    """The compile properties (plain strings, which OpenVINO parses)."""
    threads = int(request.options.get("inference_num_threads") or request.threads)
    return {
        "INFERENCE_PRECISION_HINT": "f32",
        "KV_CACHE_PRECISION": "f32",
        "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0",
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": str(threads),
        "ENABLE_CPU_PINNING": "YES" if request.options.get("cpu_pinning", False) else "NO",
    }


class OpenVINOStatefulGenerator:
    def __init__(self, request: GeneratorRequest) -> None:
        if request.device != "cpu":
            raise StepError(f"the openvino-stateful generator runs on the CPU, not {request.device}")
        folder = request.artifact
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"{folder} has no readable {MANIFEST}: it is not what sextant_openvino.stateful_build writes ({exc})"
            ) from exc
        self.vocab_size = int(manifest["vocab_size"])
        self.max_positions = int(manifest.get("max_positions") or 2**31)
        try:
            self.compiled = ov.Core().compile_model(str(folder / GRAPH), "CPU", properties(request))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise ModelLoadError(
                f"OpenVINO cannot compile the stateful {manifest.get('architecture')} for the CPU: {reason(exc)}"
            ) from exc
        self.request = self.compiled.create_infer_request()
        self.generation = 0
        self.step = 0

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if mask.shape[1] > self.max_positions:
            raise StepError(
                f"a sequence of {mask.shape[1]} tokens is longer than the model's {self.max_positions} positions"
            )
        rows = np.arange(len(ids), dtype=np.int32)
        self.request.infer({"input_ids": ids, "attention_mask": mask, BEAM_IDX: rows})
        return self.request.get_tensor("logits").data[:, -1].copy()

    def prefill(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, _State]:
        ids = np.ascontiguousarray(input_ids, dtype=np.int64)
        mask = np.ascontiguousarray(attention_mask, dtype=np.int64)
        self.request.reset_state()
        self.generation += 1
        self.step = 0
        return self._run(ids, mask), _State(self.generation, 0, mask)

    def decode(self, state: _State, next_ids: np.ndarray) -> tuple[np.ndarray, _State]:
        if (state.generation, state.step) != (self.generation, self.step):
            raise StepError(
                "the openvino-stateful generator keeps one generation's cache in its infer request: this state "
                "is not its latest (used twice, or from before the latest prefill)",
                hint="Continue only from the state the latest prefill or decode returned.",
            )
        ids = np.ascontiguousarray(next_ids, dtype=np.int64).reshape(-1, 1)
        mask = np.concatenate([state.mask, np.ones((len(ids), 1), np.int64)], axis=1)
        logits = self._run(ids, mask)
        self.step += 1
        return logits, _State(self.generation, self.step, mask)

    def close(self) -> None:
        self.request = None
        self.compiled = None


def load(request: GeneratorRequest) -> OpenVINOStatefulGenerator:
    return OpenVINOStatefulGenerator(request)
