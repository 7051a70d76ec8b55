"""The ``openvino-genai`` generator: openvino-genai's continuous-batching pipeline (its scheduler,
paged KV cache and sampler, in C++) runs the stateful IR that ``sextant_openvino.stateful_build``
writes, greedily, from token ids (no tokenizer is needed), and streams each step's ids.

The build is openvino-stateful's, plus the names openvino-genai reads (``openvino_model.xml`` /
``.bin``: hard links to the IR, no copy). openvino-genai turns the IR's attention into its
PagedAttention when it loads it. Each generation adds one request per sequence to
``ContinuousBatchingPipeline`` and calls its ``step`` until they finish; a step's ids are yielded
once every sequence has its token (:meth:`OpenVINOGenAIGenerator.stream`, a
:class:`~sextant.runtime.StreamingGenerator`: sextant measures and loads it through that loop).
Greedy here is sextant's: exactly ``max_new_tokens`` tokens (``ignore_eos``; no ``min_new_tokens``,
whose processor would forbid the end-of-sequence id). openvino-genai returns no logits, so
``prefill`` / ``decode`` (what teacher forcing feeds token by token) run the same IR through
OpenVINO's runtime (:class:`~sextant_openvino.stateful_generator.OpenVINOStatefulGenerator`, made
when first needed and released when the pipeline streams). Both compile with f32 inference
precision and an f32 KV cache. An int8 build (nncf's weights, as openvino-stateful's) runs the same
way: weight-only, the activations f32.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sextant.api import GeneratorRequest, ModelLoadError, StepError, StepRequest

from sextant_openvino.errors import reason
from sextant_openvino.stateful_build import GRAPH, MANIFEST
from sextant_openvino.stateful_build import build as build_stateful
from sextant_openvino.stateful_generator import OpenVINOStatefulGenerator, properties

#: the IR's files → the names openvino-genai reads
NAMES = {GRAPH: "openvino_model.xml", GRAPH.replace(".xml", ".bin"): "openvino_model.bin"}


def build(request: StepRequest) -> Path:
    """openvino-stateful's IR of the ``save_pretrained`` folder, under openvino-genai's names too."""
    folder = build_stateful(request)
    for name, alias in NAMES.items():
        try:
            os.link(folder / name, folder / alias)
        except OSError:  # a file system without hard links
            shutil.copyfile(folder / name, folder / alias)
    return folder


class OpenVINOGenAIGenerator:
    def __init__(self, request: GeneratorRequest) -> None:
        import openvino_genai as og

        if request.device != "cpu":
            raise StepError(f"the openvino-genai generator runs on the CPU, not {request.device}")
        self.request = request
        folder = request.artifact
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"{folder} has no readable {MANIFEST}: it is not what sextant_openvino.genai_generator builds ({exc})"
            ) from exc
        self.vocab_size = int(manifest["vocab_size"])
        self.max_positions = int(manifest.get("max_positions") or 2**31)
        cache_bytes = 2 * manifest["layers"] * manifest["kv_heads"] * manifest["head_dim"] * 4
        cache_bytes *= request.max_batch * request.max_length
        scheduler = og.SchedulerConfig()
        scheduler.cache_size = max(1, math.ceil(cache_bytes / 2**30))  # GB
        scheduler.max_num_batched_tokens = max(256, request.max_batch * request.max_length)  # a prefill in one step
        scheduler.dynamic_split_fuse = False
        try:
            self.pipeline = og.ContinuousBatchingPipeline(str(folder), scheduler, "CPU", properties(request))
        except Exception as exc:  # openvino-genai raises RuntimeError for every load failure
            raise ModelLoadError(
                f"openvino-genai cannot load the stateful {manifest.get('architecture')}: {reason(exc)}"
            ) from exc
        self.config = og.GenerationConfig()
        self.config.do_sample = False
        self.config.ignore_eos = True
        self.config.eos_token_id = 0  # any valid id: with ignore_eos it stops nothing
        self.config.stop_token_ids = {0}
        self.requests = 0
        self.runtime: OpenVINOStatefulGenerator | None = None

    # -- the backend's own loop ------------------------------------------------------------------

    def stream(self, input_ids: np.ndarray, max_new_tokens: int) -> Iterator[np.ndarray]:
        import openvino as ov

        ids = np.ascontiguousarray(input_ids, dtype=np.int64).reshape(len(input_ids), -1)
        if ids.shape[1] + max_new_tokens > self.max_positions:
            raise StepError(
                f"a sequence of {ids.shape[1] + max_new_tokens} tokens is longer than the model's "
                f"{self.max_positions} positions"
            )
        if self.runtime is not None:  # the pipeline's turn: free the teacher-forcing runtime's model
            self.runtime.close()
            self.runtime = None
        self.config.max_new_tokens = max_new_tokens
        handles = []
        for row in ids:
            handles.append(self.pipeline.add_request(self.requests, ov.Tensor(row[None].copy()), self.config))
            self.requests += 1
        tokens: list[list[int]] = [[] for _ in handles]
        done = 0
        try:
            while done < max_new_tokens:
                if not self.pipeline.has_non_finished_requests() and not any(h.can_read() for h in handles):
                    raise StepError(
                        f"openvino-genai's pipeline finished after {done} of {max_new_tokens} tokens",
                        hint="Leave openvino-genai out (--runners); openvino-stateful runs the same IR.",
                    )
                self.pipeline.step()
                for row, handle in enumerate(handles):
                    if handle.can_read():
                        for output in handle.read().values():
                            tokens[row].extend(int(t) for t in output.generated_ids)
                while done < max_new_tokens and all(len(t) > done for t in tokens):
                    yield np.array([t[done] for t in tokens], dtype=np.int64)
                    done += 1
        finally:  # a stream left early (or failed): its requests must not hold the scheduler
            if self.pipeline is not None and self.pipeline.has_non_finished_requests():
                for handle in handles:
                    handle.drop()
                while self.pipeline.has_non_finished_requests():
                    self.pipeline.step()

    # -- the same IR token by token, for teacher forcing -----------------------------------------

    def _runtime(self) -> OpenVINOStatefulGenerator:
        if self.runtime is None:
            self.runtime = OpenVINOStatefulGenerator(self.request)
        return self.runtime

    def prefill(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, Any]:
        return self._runtime().prefill(input_ids, attention_mask)

    def decode(self, state: Any, next_ids: np.ndarray) -> tuple[np.ndarray, Any]:
        return self._runtime().decode(state, next_ids)

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.close()
        self.runtime = None
        self.pipeline = None


def load(request: GeneratorRequest) -> OpenVINOGenAIGenerator:
    return OpenVINOGenAIGenerator(request)
