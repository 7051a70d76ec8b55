"""A ``transformers`` causal LM converted to a stateful OpenVINO IR (the build step of the
``openvino-stateful`` generator).

``openvino.convert_model`` traces a wrapper of the model that takes ``input_ids`` ``[batch, new]``,
``attention_mask`` ``[batch, past + new]`` and, per layer, ``past.<i>.key`` / ``past.<i>.value``
``[batch, kv_heads, past, head_dim]``, and returns the logits of the last position ``[batch,
vocab]`` and the ``present.<i>.*`` caches (what ``sextant_onnx.kv_export`` exports to ONNX; the
wrapper puts the flat tensors into a ``DynamicCache`` layer by layer, since its lazily started
empty layers trace to a concatenation OpenVINO's frontend refuses). OpenVINO's make-stateful
transformation then turns each past/present pair into a variable of the infer request (a
``ReadValue`` / ``Assign`` pair, as optimum-intel's stateful IRs have): the cache never leaves
OpenVINO, and the IR takes only ``input_ids``, ``attention_mask`` and ``beam_idx``. Each variable
starts as an empty cache of the batch's size (zeros of ``[batch, kv_heads, 0, head_dim]``, built
from the shape of ``input_ids``), which ``reset_state`` restores for a new sequence; it is read
through a ``Gather`` by ``beam_idx`` (which sequence each row continues: ``arange(batch)`` for
sextant's loop). That ``Gather`` is optimum-intel's layout too: with it OpenVINO's CPU plugin fuses
each layer's cache and attention into one stateful ``ScaledDotProductAttention`` (without it the
cache is concatenated anew every step), and openvino-genai's ``LLMPipeline`` takes the IR (it also
wants the logits as ``[batch, 1, vocab]``, the last position's, which the IR returns).

Positions come from the cache's length, as ``transformers`` computes them for unpadded prompts.
The weights are saved as fp32; with ``request.options["precision"] == "int8"`` they are compressed
to int8 (weight-only, per output channel) by ``nncf.compress_weights`` first. ``stateful.json``
beside the IR says what the generator needs without reading it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from sextant.api import StepError, StepRequest

from sextant_openvino.errors import reason

GRAPH = "model.xml"
MANIFEST = "stateful.json"
#: which sequence of the state each row continues (``arange(batch)`` here; a beam search reorders)
BEAM_IDX = "beam_idx"
HINT = "Leave openvino-stateful out (--runners) for this architecture; the torch generators run it."


def _attribute(config: Any, *names: str) -> int | None:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in names:
        value = getattr(text, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _load(folder: Path) -> Any:
    """The model with ``torch``'s fused attention (which OpenVINO converts to its own), else eager."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="sdpa")
    except ValueError:  # the architecture has no sdpa attention
        pass
    except Exception as exc:
        raise StepError(f"transformers cannot load the causal LM: {type(exc).__name__}: {exc}") from exc
    try:
        return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    except Exception as exc:
        raise StepError(f"transformers cannot load the causal LM: {type(exc).__name__}: {exc}") from exc


def _flat(cache: Any) -> list[Any]:
    return [t for layer in cache.layers for t in (layer.keys, layer.values)]


def convert(folder: Path) -> tuple[Any, dict[str, Any]]:
    """The stateless OpenVINO model of the ``save_pretrained`` folder (pasts in, presents out) and
    its manifest."""
    import openvino as ov
    import torch
    from transformers import DynamicCache

    torch.set_num_threads(1)  # conversions are not timed; leave the cores alone
    model = _load(folder).eval()
    vocab = _attribute(model.config, "vocab_size") or 2
    batch, past, new = 2, 3, 2
    prompt = torch.randint(0, vocab, (batch, past))
    try:
        with torch.inference_mode():
            cache = DynamicCache(config=model.config)
            model(input_ids=prompt, attention_mask=torch.ones_like(prompt), use_cache=True, past_key_values=cache)
        pasts = [t.clone() for t in _flat(cache)]
    except Exception as exc:
        raise StepError(
            f"the causal LM does not run with a DynamicCache: {type(exc).__name__}: {exc}", hint=HINT
        ) from exc
    layers = len(pasts) // 2
    if not layers or any(t.dim() != 4 or t.shape[2] != past for t in pasts):
        raise StepError(
            f"the {type(model).__name__}'s cache is not one [batch, heads, length, head_dim] key and value per "
            "layer: openvino-stateful converts only such caches",
            hint=HINT,
        )

    class WithPast(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, *flat: Any) -> tuple[Any, ...]:
            cache = DynamicCache(config=self.model.config)
            for i, layer in enumerate(cache.layers[:layers]):
                layer.lazy_initialization(flat[2 * i], flat[2 * i + 1])
                layer.keys, layer.values = flat[2 * i], flat[2 * i + 1]
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=True, past_key_values=cache)
            return (out.logits[:, -1:], *_flat(cache))  # [batch, 1, vocab]: openvino-genai's shape

    ids = torch.randint(0, vocab, (batch, new))
    mask = torch.ones(batch, past + new, dtype=torch.int64)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's warnings about Python values it records
            converted = ov.convert_model(WithPast(), example_input=(ids, mask, *pasts))
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
        raise StepError(
            f"openvino.convert_model cannot convert the {type(model).__name__} with past key values: {reason(exc)}",
            hint=HINT,
        ) from exc
    pairs = [(f"past.{i}.{kv}", f"present.{i}.{kv}") for i in range(layers) for kv in ("key", "value")]
    for port, name in zip(converted.inputs, ["input_ids", "attention_mask", *(p for p, _ in pairs)]):
        port.get_tensor().set_names({name})
    for port, name in zip(converted.outputs, ["logits", *(p for _, p in pairs)]):
        port.get_tensor().set_names({name})
    kv_heads, head_dim = int(pasts[0].shape[1]), int(pasts[0].shape[3])
    shapes = {"input_ids": ov.PartialShape([-1, -1]), "attention_mask": ov.PartialShape([-1, -1])}
    shapes.update({name: ov.PartialShape([-1, kv_heads, -1, head_dim]) for name, _ in pairs})
    converted.reshape(shapes)
    manifest = {
        "architecture": type(model).__name__,
        "layers": layers,
        "kv_heads": kv_heads,
        "head_dim": head_dim,
        "vocab_size": vocab,
        "max_positions": _attribute(model.config, "max_position_embeddings", "n_positions", "max_sequence_length"),
        "states": dict(pairs),
    }
    return converted, manifest


def make_stateful(model: Any, pairs: dict[str, str]) -> None:
    """Each past input / present output pair of ``model`` made a variable, whose initial value is an
    empty cache of the batch's size."""
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops
    from openvino._offline_transformations import apply_make_stateful_transformation

    apply_make_stateful_transformation(model, pairs)
    ids = model.input("input_ids")
    batch = ops.gather(ops.shape_of(ids, output_type="i64"), ops.constant([0]), ops.constant(0))
    for op in model.get_ops():
        if op.get_type_name() != "ReadValue":
            continue
        dims = [dim.get_min_length() for dim in op.get_output_partial_shape(0)]
        parts = [batch, *(ops.constant(np.array([d], np.int64)) for d in dims[1:])]  # the length's min is 0
        zero = ops.constant(0.0, dtype=op.get_output_element_type(0))
        op.set_arguments([ops.broadcast(zero, ops.concat(parts, 0))])
    beam_idx = ops.parameter(ov.PartialShape([-1]), ov.Type.i32, name=BEAM_IDX)
    beam_idx.output(0).get_tensor().set_names({BEAM_IDX})
    model.add_parameters([beam_idx])
    for op in model.get_ops():
        if op.get_type_name() != "ReadValue":
            continue
        consumers = op.output(0).get_target_inputs()
        reordered = ops.gather(op, beam_idx, ops.constant(0))
        for consumer in consumers:
            consumer.replace_source_output(reordered.output(0))
    model.validate_nodes_and_infer_types()


def compress_int8(model: Any) -> Any:
    """``model`` with its weights compressed to int8 by nncf (weight-only: activations stay float)."""
    try:
        import nncf
    except ImportError as exc:
        raise StepError(
            f"int8 weights need nncf, which is not importable ({exc})",
            hint="pip install nncf, or leave int8 out of --precision.",
        ) from exc
    try:
        return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    except Exception as exc:  # nncf raises whatever its graph passes meet
        raise StepError(f"nncf.compress_weights failed on the OpenVINO model: {type(exc).__name__}: {exc}") from exc


def build(request: StepRequest) -> Path:
    """Convert the ``save_pretrained`` folder ``request.input`` into a stateful IR in
    ``request.output_dir``."""
    import openvino as ov

    precision = request.options.get("precision", "fp32")
    if precision not in ("fp32", "int8"):
        raise StepError(f"openvino-stateful builds fp32 or int8 weights, not {precision}")
    model, manifest = convert(request.input)
    try:
        make_stateful(model, manifest["states"])
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
        raise StepError(f"OpenVINO's make-stateful transformation failed: {reason(exc)}", hint=HINT) from exc
    if precision == "int8":
        model = compress_int8(model)
    ov.save_model(model, str(request.output_dir / GRAPH), compress_to_fp16=False)
    manifest["precision"] = precision
    (request.output_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return request.output_dir
