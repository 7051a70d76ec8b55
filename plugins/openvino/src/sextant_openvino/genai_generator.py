"""The ``openvino-genai`` generator: openvino-genai's continuous-batching pipeline (its scheduler,
paged KV cache and sampler, in C++) runs the stateful IR that ``sextant_openvino.stateful_build``
writes, greedily, from token ids (no tokenizer is needed), and streams each step's ids.

The build is openvino-stateful's, plus the names openvino-genai reads (``openvino_model.xml`` /
``.bin``: hard links to the IR, no copy). openvino-genai turns the IR's attention into its
PagedAttention when it loads it. Each sequence is one request of ``ContinuousBatchingPipeline``
(``add``: ``add_request`` with a token-id tensor), each ``step`` one of the pipeline's (its
scheduler prefills the new requests, alone, or decodes every running one together) and the new ids
each request's handle has, ``cancel`` the handle's: a :class:`~sextant.runtime.StreamBatcher`, so
a streaming server runs the requests it holds together (continuous batching). ``stream`` (a
:class:`~sextant.runtime.StreamingGenerator`: sextant measures and loads it through that loop)
adds one request per sequence and yields a step's ids once every sequence has its token.
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
from collections import Counter
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


class _Held:
    """One sequence in the pipeline: its handle, the tokens asked for and those read so far."""

    def __init__(self, handle: Any, asked: int) -> None:
        self.handle = handle
        self.asked = asked
        self.count = 0

    def read(self) -> list[int]:
        ids: list[int] = []
        if self.handle.can_read():
            for output in self.handle.read().values():
                ids.extend(int(t) for t in output.generated_ids)
        self.count += len(ids)
        return ids

    def ended(self) -> bool:
        import openvino_genai as og

        return self.handle.get_status() != og.GenerationStatus.RUNNING


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
        self.requests = 0
        #: the sequences added and not done, by handle
        self.held: dict[int, _Held] = {}
        #: pipeline steps by how many requests each scheduled (openvino-genai's metrics)
        self.together: Counter[int] = Counter()
        self.runtime: OpenVINOStatefulGenerator | None = None

    # -- the backend's own loop ------------------------------------------------------------------

    def stream(self, input_ids: np.ndarray, max_new_tokens: int) -> Iterator[np.ndarray]:
        ids = np.ascontiguousarray(input_ids, dtype=np.int64).reshape(len(input_ids), -1)
        handles: list[int] = []
        try:
            for row in ids:
                handles.append(self.add(row, max_new_tokens))
            tokens: dict[int, list[int]] = {handle: [] for handle in handles}
            done = 0
            while done < max_new_tokens:
                for handle, new in self.step().items():
                    if isinstance(new, Exception):
                        raise new
                    tokens[handle].extend(int(t) for t in new)
                while done < max_new_tokens and all(len(t) > done for t in tokens.values()):
                    yield np.array([tokens[h][done] for h in handles], dtype=np.int64)
                    done += 1
        finally:  # a stream left early (or failed): its requests must not hold the scheduler
            for handle in handles:
                self.cancel(handle)
            self._free()

    # -- several sequences in that loop (a StreamBatcher: a server runs its requests together) -----

    def add(self, input_ids: np.ndarray, max_new_tokens: int) -> int:
        """Queue one sequence (int64 ``[length]``) for ``max_new_tokens`` greedy tokens; its handle
        (the pipeline's request id). Its first token comes from the next :meth:`step`."""
        import openvino as ov
        import openvino_genai as og

        ids = np.ascontiguousarray(input_ids, dtype=np.int64).reshape(1, -1)
        if ids.shape[1] + max_new_tokens > self.max_positions:
            raise StepError(
                f"a sequence of {ids.shape[1] + max_new_tokens} tokens is longer than the model's "
                f"{self.max_positions} positions"
            )
        if self.runtime is not None:  # the pipeline's turn: free the teacher-forcing runtime's model
            self.runtime.close()
            self.runtime = None
        config = og.GenerationConfig()
        config.do_sample = False
        config.ignore_eos = True
        config.eos_token_id = 0  # any valid id: with ignore_eos it stops nothing
        config.stop_token_ids = {0}
        config.max_new_tokens = max_new_tokens
        handle = self.requests
        self.held[handle] = _Held(self.pipeline.add_request(handle, ov.Tensor(ids.copy()), config), max_new_tokens)
        self.requests += 1
        return handle

    def step(self) -> dict[int, np.ndarray | Exception]:
        """One step of the pipeline: each held sequence's new ids, or the error that ended it."""
        if not self.held:
            return {}
        if self.pipeline.has_non_finished_requests():
            self.pipeline.step()
            self.together[self.pipeline.get_metrics().scheduled_requests] += 1
        new: dict[int, np.ndarray | Exception] = {}
        for key, held in list(self.held.items()):
            ids = held.read()
            if ids:
                new[key] = np.array(ids, dtype=np.int64)
            if held.count < held.asked and (held.ended() or not self.pipeline.has_non_finished_requests()):
                new[key] = StepError(
                    f"openvino-genai's pipeline ended a sequence after {held.count} of {held.asked} tokens "
                    f"({held.handle.get_status()})",
                    hint="Leave openvino-genai out (--runners); openvino-stateful runs the same IR.",
                )
            if held.count >= held.asked or isinstance(new.get(key), Exception):
                del self.held[key]
        return new

    def cancel(self, handle: Any) -> None:
        held = self.held.pop(handle, None)
        if held is not None and not held.ended():
            held.handle.cancel()  # the pipeline frees it at its next step
            if not self.held:  # no step of the others will come to free it: one now
                self._free()

    # -- the same IR token by token, for teacher forcing -----------------------------------------

    def _runtime(self) -> OpenVINOStatefulGenerator:
        if self.runtime is None:
            self.runtime = OpenVINOStatefulGenerator(self.request)
        return self.runtime

    def prefill(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, Any]:
        return self._runtime().prefill(input_ids, attention_mask)

    def decode(self, state: Any, next_ids: np.ndarray) -> tuple[np.ndarray, Any]:
        return self._runtime().decode(state, next_ids)

    def _free(self) -> None:
        """Let the pipeline drop the cancelled requests (it frees their KV-cache blocks in a step)."""
        while self.pipeline is not None and self.pipeline.has_non_finished_requests():
            self.pipeline.step()

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.close()
        self.runtime = None
        for handle in list(self.held):  # a server unloading with requests still held
            self.cancel(handle)
        self._free()
        self.pipeline = None


def load(request: GeneratorRequest) -> OpenVINOGenAIGenerator:
    return OpenVINOGenAIGenerator(request)
