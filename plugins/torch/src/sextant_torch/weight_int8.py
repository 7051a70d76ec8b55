"""Weight-only int8 for the torch generators (precision ``int8``, only when ``--precision`` allows it).

Every linear layer of the causal LM (``nn.Linear``, and ``transformers``' ``Conv1D`` of GPT-2, a
linear layer with its weight transposed) is replaced by :class:`Int8WeightLinear`: its weight
stored as int8, symmetric, one scale per output channel (``absmax / 127``), what torchao's
int8 weight-only and gpt-fast do. The activations stay float: on the CPU each call runs torch's
own weight-only int8 matmul kernel (``aten._weight_int8pack_mm``: int8 weights, float inputs and
outputs, the scales applied to the outputs; ``torch.compile`` lowers it to Inductor's weight-only
int8 template); elsewhere the weight is widened to the input's dtype per call and the scales
applied after the matmul (the pattern Inductor matches to the same kernel).

Not ``torch.ao.quantization.quantize_dynamic``: that quantizes the activations too (dynamic int8,
per batch), which is not weight-only, and torch deprecates ``torch.ao.quantization`` for torchao,
which is not installed here. The embeddings stay fp32 (a lookup reads one row per token).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: the largest magnitude of a symmetric int8 weight
QMAX = 127


class Int8WeightLinear(nn.Module):
    """``y = x @ (weight * scales[:, None]).T + bias`` with ``weight`` int8 ``[out, in]``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        weight = weight.detach().float()
        scales = weight.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / QMAX
        quantized = torch.round(weight / scales[:, None]).clamp(-QMAX, QMAX).to(torch.int8)
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.register_buffer("weight", quantized.contiguous())
        self.register_buffer("scales", scales.contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        if flat.device.type == "cpu":
            out = torch.ops.aten._weight_int8pack_mm(flat.contiguous(), self.weight, self.scales.to(flat.dtype))
        else:
            out = nn.functional.linear(flat, self.weight.to(flat.dtype)) * self.scales.to(flat.dtype)
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, weight=int8 per channel"


def _as_int8(module: nn.Module) -> Int8WeightLinear | None:
    """The int8 replacement of a linear layer, or ``None`` for any other module."""
    if isinstance(module, nn.Linear):
        return Int8WeightLinear(module.weight, module.bias)
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf"):  # transformers' GPT-2 linear: weight [in, out]
        return Int8WeightLinear(module.weight.t(), module.bias)
    return None


def quantize_weights(model: Any) -> int:
    """Replace every linear layer of ``model`` in place by its weight-only int8 version; returns how
    many were replaced (0: the model has no linear layer, and nothing is int8)."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            int8 = _as_int8(child)
            if int8 is not None:
                setattr(parent, name, int8)
                replaced += 1
    return replaced
