"""Causal LMs of ``transformers`` as generation loops (``--task text-generation``).

The source is written with ``save_pretrained`` (format ``transformers-causal-lm``) and loaded in
each process with ``AutoModelForCausalLM.from_pretrained``: no pickle, and no user code, so only
``transformers``' own architectures are taken. Generators:

- ``torch-generate`` (the reference): what ``generate`` does greedily, with its default dynamic KV
  cache (``DynamicCache``), fp32 eager; where the model's cache allows (one plain layer of keys
  and values per layer), also a :class:`sextant.api.SequenceBatcher`, so a server decodes the
  sequences of concurrent requests together (continuous batching);
- ``torch-static-cache``: a ``StaticCache`` (preallocated to the longest sequence, one per batch
  size), eager;
- ``torch-static-compile``: the same with the decode step compiled by ``torch.compile``, the
  path ``transformers`` documents for fast generation (the prefill stays eager: its shape changes
  with every prompt length).

The static-cache generators also run weight-only int8 (precision ``int8``: every linear layer's
weights int8 per output channel, activations fp32; :mod:`sextant_torch.weight_int8`).
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sextant.api import TRANSFORMERS_CAUSAL_LM, GeneratorRequest, ModelLoadError, Rejection, SourceModel, StepError, cache_dir

MODEL_DIR = "model"
#: fp32, and weight-only int8 (:mod:`sextant_torch.weight_int8`) where ``--precision`` allows it
PRECISIONS = ("fp32", "int8")
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def causal_architectures(folder: Path) -> list[str] | None:
    """The causal-LM architectures a ``save_pretrained`` folder's ``config.json`` names, or ``None``
    when the folder holds no such config (cheap: one small JSON file)."""
    config = folder / "config.json"
    if not config.is_file():
        return None
    try:
        names = json.loads(config.read_text()).get("architectures") or []
    except (OSError, ValueError):
        return None
    return [n for n in names if n.endswith(_CAUSAL_SUFFIXES)]


def _positions(config: Any) -> int | None:
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _vocab(config: Any) -> int | None:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return getattr(text, "vocab_size", None)


def generates(model: object) -> bool:
    """Whether ``model`` is a ``transformers`` model that generates (its class says so)."""
    import sys

    transformers = sys.modules.get("transformers")
    if transformers is None or not isinstance(model, transformers.PreTrainedModel):
        return False
    return bool(model.can_generate())


def module_generation_source(model: Any, name: str | None, task: str) -> SourceModel | Rejection | None:
    """A ``transformers`` causal LM object as a generation source; ``None`` for ``auto`` when it
    is no such model (it is then optimized as one forward pass)."""
    if not generates(model):
        if task != "text-generation":
            return None
        return Rejection(
            f"a {type(model).__name__}, which has no generate: it is not a transformers causal LM",
            hint="--task text-generation takes a transformers model that generates (a ...ForCausalLM, "
            "or a factory returning one, or its save_pretrained folder); leave --task out to optimize "
            "its forward pass.",
        )
    module = type(model).__module__
    if not module.startswith("transformers."):
        return Rejection(
            f"a {type(model).__name__} defined in {module}, not one of transformers' own architectures: "
            "sextant loads a causal LM in each process with AutoModelForCausalLM.from_pretrained, "
            "which does not know this class",
            hint="Use a transformers architecture (LlamaForCausalLM, GPT2LMHeadModel, ...), or leave --task "
            "out to optimize its forward pass.",
        )
    model = model.eval()

    def write(folder: Path) -> Path:
        target = folder / MODEL_DIR
        try:
            model.save_pretrained(target)
        except Exception as exc:
            raise ModelLoadError(
                f"cannot save the {type(model).__name__} with save_pretrained: {type(exc).__name__}: {exc}"
            ) from exc
        return target

    return SourceModel(
        TRANSFORMERS_CAUSAL_LM,
        name or getattr(model.config, "model_type", None) or type(model).__name__.lower(),
        write,
        description=f"transformers {type(model).__name__}",
        vocab_size=_vocab(model.config),
        max_positions=_positions(model.config),
        imports=(module,),  # transformers imports its models lazily: every child would, seconds each
    )


def folder_generation_source(folder: Path, name: str | None) -> SourceModel | Rejection:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(folder)
    except Exception as exc:
        return Rejection(f"a folder whose config.json transformers cannot read ({type(exc).__name__}: {exc})")

    def write(target: Path) -> Path:
        import shutil

        shutil.copytree(folder, target / MODEL_DIR)
        return target / MODEL_DIR

    return SourceModel(
        TRANSFORMERS_CAUSAL_LM,
        name or folder.name,
        write,
        description=f"transformers {', '.join(config.architectures or [])} (save_pretrained folder)",
        vocab_size=_vocab(config),
        max_positions=_positions(config),
        imports=_modeling_module(config),
    )


def _modeling_module(config: Any) -> tuple[str, ...]:
    """The transformers module that defines ``config``'s models, where it can be named (what
    ``AutoModelForCausalLM`` will import); none for a type transformers does not list."""
    from transformers.models.auto.configuration_auto import model_type_to_module_name

    model_type = getattr(config, "model_type", None)
    if not model_type:
        return ()
    name = model_type_to_module_name(model_type)  # "llama"; a retired one: "deprecated.open_llama"
    return (f"transformers.models.{name}.modeling_{name.rsplit('.', 1)[-1]}",)


# -- generators -----------------------------------------------------------------------------------


def _load_model(request: GeneratorRequest) -> Any:
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(request.threads)
    if request.device == "cuda" and not torch.cuda.is_available():
        raise StepError("torch sees no CUDA device", hint="Install a CUDA build of torch, or use --device cpu.")
    if request.precision not in PRECISIONS:
        raise StepError(f"the torch generators run fp32 or int8 weights, not {request.precision}")
    model = AutoModelForCausalLM.from_pretrained(request.artifact, dtype=torch.float32)
    model = model.to(request.device).eval()
    if request.precision == "int8":
        from sextant_torch.weight_int8 import quantize_weights

        if not quantize_weights(model):
            raise StepError(f"the {type(model).__name__} has no linear layer whose weights could be int8")
    return model


def _cache_kwarg(model: Any) -> str:
    """The name the model's forward takes its KV cache by (``cache`` from transformers 5.x on)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class _Base:
    def __init__(self, model: Any, device: str) -> None:
        self.model = model
        self.device = device
        self.vocab_size = int(_vocab(model.config))
        self.max_positions = _positions(model.config) or 2**31
        self._cache = _cache_kwarg(model)

    def _ids(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64)).to(self.device)

    @staticmethod
    def _logits(logits: torch.Tensor) -> np.ndarray:
        return logits[:, -1].float().cpu().numpy()

    def close(self) -> None:
        self.model = None
        if self.device == "cuda":
            torch.cuda.empty_cache()


class DynamicCacheGenerator(_Base):
    """``generate``'s greedy loop: a ``DynamicCache`` that grows with each token, eager. The state
    is the cache, the attention mask and each row's next position (``generate``'s position ids:
    the count of real tokens before it, so a left-padded row's positions start at its first token)."""

    def __init__(self, model: Any, device: str) -> None:
        super().__init__(model, device)
        self._position_ids = "position_ids" in inspect.signature(model.forward).parameters

    def _position_kwargs(self, positions: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"position_ids": positions} if self._position_ids else {}

    def prefill(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, Any]:
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        mask = self._ids(attention_mask)
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        with torch.inference_mode():
            out = self.model(
                input_ids=self._ids(input_ids),
                attention_mask=mask,
                use_cache=True,
                **self._position_kwargs(positions),
                **{self._cache: cache},
            )
        return self._logits(out.logits), (cache, mask, mask.sum(-1))

    def decode(self, state: Any, next_ids: np.ndarray) -> tuple[np.ndarray, Any]:
        cache, mask, positions = state
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        with torch.inference_mode():
            out = self.model(
                input_ids=self._ids(next_ids)[:, None],
                attention_mask=mask,
                use_cache=True,
                **self._position_kwargs(positions[:, None]),
                **{self._cache: cache},
            )
        return self._logits(out.logits), (cache, mask, positions + 1)


def _left_pad(tensor: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    """``tensor`` with zeros before its entries along ``dim`` (-1 or -2), up to ``length``."""
    missing = length - tensor.shape[dim]
    if missing <= 0:
        return tensor
    pad = (missing, 0) if dim == -1 else (0, 0, missing, 0)
    return torch.nn.functional.pad(tensor, pad)


class BatchingDynamicCacheGenerator(DynamicCacheGenerator):
    """The same loop, and a :class:`sextant.api.SequenceBatcher`: sequences join and leave a running
    batch between decode steps. The batch is left-padded: a joining sequence's (or the batch's)
    cache and attention mask get zeros before their first token up to the longer of the two, and
    the rows are concatenated; a row that leaves is dropped, and the columns no row uses any more
    with it. Each row keeps its own positions, so its logits are those it gets alone."""

    def join(self, batch: Any | None, state: Any) -> Any:
        if batch is None:
            return state
        (cache, mask, positions), (one, one_mask, one_positions) = batch, state
        length = max(mask.shape[1], one_mask.shape[1])
        for into, layer in zip(cache.layers, one.layers, strict=True):
            into.keys = torch.cat([_left_pad(into.keys, length, -2), _left_pad(layer.keys, length, -2)])
            into.values = torch.cat([_left_pad(into.values, length, -2), _left_pad(layer.values, length, -2)])
        mask = torch.cat([_left_pad(mask, length, -1), _left_pad(one_mask, length, -1)])
        return cache, mask, torch.cat([positions, one_positions])

    def leave(self, batch: Any, rows: Sequence[int]) -> Any | None:
        cache, mask, positions = batch
        gone = set(rows)
        keep = [row for row in range(mask.shape[0]) if row not in gone]
        if not keep:
            return None
        index = torch.tensor(keep, device=mask.device)
        mask, positions = mask[index], positions[index]
        first = int(mask.any(0).int().argmax())  # the first column a remaining row uses
        for layer in cache.layers:
            layer.keys, layer.values = layer.keys[index, :, first:], layer.values[index, :, first:]
        return cache, mask[:, first:], positions


def batches_sequences(model: Any) -> bool:
    """Whether a model's ``DynamicCache`` can be joined and split along its batch: every layer a
    plain ``DynamicLayer`` (no sliding window, no linear attention state) and position ids taken."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    if "position_ids" not in inspect.signature(model.forward).parameters:
        return False
    layers = getattr(DynamicCache(config=model.config), "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


class StaticCacheGenerator(_Base):
    """A ``StaticCache`` of ``max_length`` per batch size; the decode step optionally compiled."""

    def __init__(self, model: Any, device: str, max_length: int, compile_decode: bool) -> None:
        super().__init__(model, device)
        self.max_length = max_length
        self.caches: dict[int, Any] = {}
        step = self._step
        if compile_decode:
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir() / "inductor"))
            step = torch.compile(step, dynamic=False)
        self.decode_step = step

    def _step(self, ids: torch.Tensor, position: torch.Tensor, cache: Any) -> torch.Tensor:
        out = self.model(input_ids=ids, cache_position=position, use_cache=True, **{self._cache: cache})
        return out.logits

    def _cache_for(self, batch: int) -> Any:
        from transformers import StaticCache

        if batch not in self.caches:
            self.caches[batch] = StaticCache(config=self.model.config, max_cache_len=self.max_length)
        cache = self.caches[batch]
        if hasattr(cache, "reset"):
            cache.reset()
        return cache

    def prefill(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, Any]:
        batch, length = input_ids.shape
        if length >= self.max_length:
            raise StepError(f"a prompt of {length} tokens does not fit the static cache of {self.max_length}")
        with torch.inference_mode():  # the cache's tensors are made and reset under it
            cache = self._cache_for(batch)
            out = self.model(
                input_ids=self._ids(input_ids),
                cache_position=torch.arange(length, device=self.device),
                use_cache=True,
                **{self._cache: cache},
            )
        return self._logits(out.logits), (cache, length)

    def decode(self, state: Any, next_ids: np.ndarray) -> tuple[np.ndarray, Any]:
        cache, position = state
        if position >= self.max_length:
            raise StepError(f"the sequence outgrew the static cache of {self.max_length} tokens")
        with torch.inference_mode():
            logits = self.decode_step(
                self._ids(next_ids)[:, None], torch.tensor([position], device=self.device), cache
            )
        return self._logits(logits), (cache, position + 1)


def load_dynamic(request: GeneratorRequest) -> DynamicCacheGenerator:
    """The reference generator; a :class:`BatchingDynamicCacheGenerator` where the model's cache allows."""
    model = _load_model(request)
    kind = BatchingDynamicCacheGenerator if batches_sequences(model) else DynamicCacheGenerator
    return kind(model, request.device)


def load_static(request: GeneratorRequest) -> StaticCacheGenerator:
    return StaticCacheGenerator(_load_model(request), request.device, request.max_length, compile_decode=False)


def load_static_compiled(request: GeneratorRequest) -> StaticCacheGenerator:
    return StaticCacheGenerator(_load_model(request), request.device, request.max_length, compile_decode=True)
