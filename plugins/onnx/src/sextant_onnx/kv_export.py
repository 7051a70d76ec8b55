"""A ``transformers`` causal LM exported to one ONNX graph with past key values (the build step of
the ``onnxruntime-kv`` generator).

The graph takes ``input_ids`` ``[batch, new]``, ``attention_mask`` ``[batch, past + new]`` and,
per layer, ``past.<i>.key`` / ``past.<i>.value`` ``[batch, kv_heads, past, head_dim]``; it returns
``logits`` of the last position ``[batch, vocab]`` and ``present.<i>.key`` / ``present.<i>.value``
``[batch, kv_heads, past + new, head_dim]``. One graph serves both phases: the prefill feeds empty
pasts (``past`` = 0), each decode step the presents of the step before.

``transformers`` 5 keeps the cache in a ``Cache`` object, which ``torch.onnx.export`` cannot take
as an input: a wrapper module takes the flat tensors, builds a ``DynamicCache`` from them and
returns the updated layers flat. The export is the TorchScript-based one (``dynamo=False``),
traced at batch 2 with 3 past and 2 new tokens so that no axis is specialised, and with eager
attention (plain matmuls and a softmax, which every ONNX Runtime provider runs). ``kv.json``
beside the graph says what the generator needs without reading it: the layers, vocabulary,
positions and precision.

With ``request.options["precision"]`` ``int8`` or ``int4`` (only when ``--precision`` allows it, a
build step of its own: ``onnxruntime-kv-build-int8``, cached like the fp32 export) the exported
graph's weights are then quantized, weight-only, to ``MatMulNBits`` (:mod:`sextant_onnx.kv_weights`).
"""

from __future__ import annotations

import inspect
import json
import warnings
from pathlib import Path
from typing import Any

from sextant.api import StepError, StepRequest

GRAPH = "model.onnx"
MANIFEST = "kv.json"
OPSET = 17
#: fp32, and weight-only int8 / int4 (:mod:`sextant_onnx.kv_weights`) where ``--precision`` allows them
PRECISIONS = ("fp32", "int8", "int4")


def _cache_kwarg(model: Any) -> str:
    """The name the model's forward takes its KV cache by (``cache`` from transformers 5.x on)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _flat(cache: Any) -> list[Any]:
    """A ``DynamicCache``'s keys and values, layer by layer."""
    if hasattr(cache, "layers"):
        return [t for layer in cache.layers for t in (layer.keys, layer.values)]
    return [t for pair in cache for t in pair[:2]]  # transformers 4: a tuple of (key, value) pairs


def _attribute(config: Any, *names: str) -> int | None:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in names:
        value = getattr(text, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def export(request: StepRequest) -> Path:
    """Export the ``save_pretrained`` folder ``request.input`` into ``request.output_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    precision = str(request.options.get("precision", "fp32"))
    if precision not in PRECISIONS:
        raise StepError(f"onnxruntime-kv builds {', '.join(PRECISIONS)} weights, not {precision}")
    try:
        model = AutoModelForCausalLM.from_pretrained(request.input, dtype=torch.float32, attn_implementation="eager")
    except Exception as exc:
        raise StepError(
            f"transformers cannot load the causal LM with eager attention: {type(exc).__name__}: {exc}"
        ) from exc
    model = model.eval()
    if precision != "fp32":
        from sextant_onnx.kv_weights import linear_layers

        linear_layers(model)  # GPT-2's Conv1D would export as Gemm, which the quantizer does not rewrite
    kwarg = _cache_kwarg(model)
    vocab = _attribute(model.config, "vocab_size")
    batch, past, new = 2, 3, 2
    prompt = torch.randint(0, vocab or 2, (batch, past))
    try:
        with torch.inference_mode():
            dummy = DynamicCache(config=model.config)
            model(input_ids=prompt, attention_mask=torch.ones_like(prompt), use_cache=True, **{kwarg: dummy})
    except Exception as exc:
        raise StepError(f"the causal LM does not run with a DynamicCache: {type(exc).__name__}: {exc}") from exc
    pasts = [t.clone() for t in _flat(dummy)]
    layers = len(pasts) // 2
    if not layers or any(t.dim() != 4 for t in pasts):
        raise StepError(
            f"the {type(model).__name__}'s cache is not one [batch, heads, length, head_dim] key and value per "
            "layer: onnxruntime-kv exports only such caches",
            hint="Leave onnxruntime-kv out (--runners) for this architecture; the torch generators run it.",
        )

    class WithPast(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, *flat: Any) -> tuple[Any, ...]:
            cache = DynamicCache(config=self.model.config)
            for i in range(layers):
                cache.update(flat[2 * i], flat[2 * i + 1], i)
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=True, **{kwarg: cache})
            return (out.logits[:, -1], *_flat(cache))

    past_names = [f"past.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    present_names = [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    axes: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "new"},
        "attention_mask": {0: "batch", 1: "total"},
        "logits": {0: "batch"},
    }
    axes.update({name: {0: "batch", 2: "past"} for name in past_names})
    axes.update({name: {0: "batch", 2: "total"} for name in present_names})
    ids = torch.randint(0, vocab or 2, (batch, new))
    mask = torch.ones(batch, past + new, dtype=torch.int64)
    target = request.output_dir / GRAPH
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's warnings about Python values it records
            torch.onnx.export(
                WithPast(),
                (ids, mask, *pasts),
                str(target),
                input_names=["input_ids", "attention_mask", *past_names],
                output_names=["logits", *present_names],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
    except Exception as exc:
        raise StepError(
            f"torch.onnx.export (TorchScript) cannot export the {type(model).__name__} with past key values: "
            f"{type(exc).__name__}: {exc}",
            hint="Leave onnxruntime-kv out (--runners) for this architecture; the torch generators run it.",
        ) from exc
    manifest = {
        "architecture": type(model).__name__,
        "layers": layers,
        "kv_heads": int(pasts[0].shape[1]),
        "head_dim": int(pasts[0].shape[3]),
        "vocab_size": vocab,
        "max_positions": _attribute(model.config, "max_position_embeddings", "n_positions", "max_sequence_length"),
        "opset": OPSET,
        "precision": precision,
    }
    if precision != "fp32":
        from sextant_onnx.kv_weights import quantize

        manifest.update(quantize(target, precision))
    (request.output_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return request.output_dir
