"""Weight-only int8 / int4 of the ``onnxruntime-kv`` export (its build at a reduced precision, only
when ``--precision`` allows it).

ONNX Runtime's own quantizer (``onnxruntime.quantization.matmul_nbits_quantizer``) replaces each
``MatMul`` whose weight is a constant by a ``MatMulNBits`` (``com.microsoft``): the weight stored as
8- or 4-bit integers, symmetric, one scale per block of 32 along the input axis; the activations
stay float (no accuracy level is set, so ONNX Runtime's CPU kernel computes in fp32). That is the
operator onnxruntime-genai's model builder writes for its int8 / int4 graphs. The embedding lookup
(a ``Gather``) stays fp32.

The quantizer rewrites only ``MatMul`` nodes: a model whose linear layers export as ``Gemm``
(``transformers``' ``Conv1D`` of GPT-2, an ``addmm`` on 2-D inputs) has them made ``nn.Linear``
before the export (:func:`linear_layers`), which on 3-D inputs export as ``MatMul``. A graph with
no ``MatMul`` weight left to quantize is a :class:`~sextant.errors.StepError`, never an fp32 graph
named int8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sextant.api import StepError

#: sextant's precision → MatMulNBits' bits
BITS = {"int8": 8, "int4": 4}
#: weights quantized in blocks of this many input channels (onnxruntime-genai's builder's default)
BLOCK_SIZE = 32
#: protobuf's limit on one file; larger graphs keep their weights in an external data file
_PROTOBUF_LIMIT = 2**31 - 2**26


def linear_layers(model: Any) -> int:
    """Replace ``transformers``' ``Conv1D`` layers (weight ``[in, out]``, exported as ``Gemm``) of the
    torch ``model`` in place by the equivalent ``nn.Linear``; returns how many."""
    from torch import nn

    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child).__name__ != "Conv1D" or not hasattr(child, "nf"):
                continue
            linear = nn.Linear(child.weight.shape[0], child.nf, bias=child.bias is not None)
            linear.weight = nn.Parameter(child.weight.detach().t().contiguous())
            if child.bias is not None:
                linear.bias = nn.Parameter(child.bias.detach().clone())
            setattr(parent, name, linear)
            replaced += 1
    return replaced


def _float_matmuls(model: Any) -> list[str]:
    """The ``MatMul`` nodes whose second input is a float initializer (a weight left unquantized)."""
    import onnx

    floats = {
        t.name for t in model.graph.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    }
    return [n.name or n.output[0] for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in floats]


def quantize(graph: Path, precision: str) -> dict[str, Any]:
    """Quantize the weights of the ONNX file ``graph`` in place to ``precision`` (``int8`` or ``int4``);
    returns what was done, for the export's manifest."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    if precision not in BITS:
        raise StepError(f"onnxruntime-kv quantizes weights to {' or '.join(BITS)}, not {precision}")
    model = onnx.load(str(graph))
    before = len(_float_matmuls(model))
    try:
        quantizer = MatMulNBitsQuantizer(model, bits=BITS[precision], block_size=BLOCK_SIZE, is_symmetric=True)
        quantizer.process()
    except Exception as exc:  # the quantizer raises what its graph passes meet
        raise StepError(
            f"ONNX Runtime's MatMulNBits quantizer failed on the exported graph: {type(exc).__name__}: {exc}",
            hint=f"Leave {precision} out of --precision for onnxruntime-kv; its fp32 graph and the others run.",
        ) from exc
    quantized = quantizer.model.model
    nodes = [n for n in quantized.graph.node if n.op_type == "MatMulNBits"]
    left = _float_matmuls(quantized)
    if not nodes:
        raise StepError(
            f"the exported graph has no MatMul with a constant weight ({before} found): "
            f"nothing to quantize to {precision}",
            hint=f"Leave {precision} out of --precision for onnxruntime-kv; its fp32 graph runs.",
        )
    size = sum(t.ByteSize() for t in quantized.graph.initializer)
    external = size > _PROTOBUF_LIMIT
    onnx.save_model(quantized, str(graph), save_as_external_data=external, location=f"{graph.name}.data")
    return {
        "weights": f"{precision} (MatMulNBits, {BITS[precision]} bits, symmetric, blocks of {BLOCK_SIZE})",
        "quantized_matmuls": len(nodes),
        "float_matmuls": len(left),
    }
