"""Moving named numpy arrays in and out of PyTorch models.

Inputs: ``call_style == "positional"`` calls ``model(*inputs)`` in signature order, ``"keyword"``
calls ``model(**inputs)``.

Outputs are flattened to named arrays, the same way for every torch runner and for the names given
to ONNX exports:

- a single tensor → ``output_0``;
- a tuple or list → ``output_0``, ``output_1``, ... (nested: ``output_1.0``);
- a dict, a named tuple or a dataclass-like model output (Hugging Face ``ModelOutput``) → its
  keys or field names (nested: ``key.sub``), ``None`` fields left out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from sextant.api import Signature


def to_torch(inputs: Mapping[str, np.ndarray], device: str) -> dict[str, torch.Tensor]:
    out = {}
    for name, array in inputs.items():
        array = np.asarray(array)  # np.ascontiguousarray would make a 0-d input (a timestep) 1-d
        tensor = torch.from_numpy(array if array.flags.c_contiguous else np.ascontiguousarray(array))
        out[name] = tensor.to(device, non_blocking=True) if device != "cpu" else tensor
    return out


def call(model: Any, tensors: Mapping[str, torch.Tensor], signature: Signature) -> Any:
    if signature.call_style == "positional":
        return model(*(tensors[name] for name in signature.input_names))
    return model(**tensors)


def example_inputs(
    inputs: Mapping[str, torch.Tensor], signature: Signature
) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
    """``(args, kwargs)`` for tracing/export in the model's calling style."""
    if signature.call_style == "positional":
        return tuple(inputs[name] for name in signature.input_names), {}
    return (), dict(inputs)


def flatten(value: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a model's output (see module doc)."""
    if isinstance(value, torch.Tensor):
        return {prefix or "output_0": value}
    items: list[tuple[str, Any]]
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    elif hasattr(value, "_fields"):  # named tuple
        items = [(f, getattr(value, f)) for f in value._fields]
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
    elif isinstance(value, (tuple, list)):
        items = [(f"output_{i}" if not prefix else str(i), v) for i, v in enumerate(value)]
    elif value is None:
        return {}
    else:
        raise TypeError(f"cannot flatten a model output of type {type(value).__name__}")
    out: dict[str, torch.Tensor] = {}
    for key, item in items:
        out.update(flatten(item, f"{prefix}.{key}" if prefix else key))
    return out


def to_numpy(value: Any, signature: Signature) -> dict[str, np.ndarray]:
    """Flatten outputs to numpy; names follow the reference's by position when the structure was
    lost on the way (a traced module returns tuples where the eager one returned a dict)."""
    flat = flatten(value)
    names = list(flat)
    if signature.outputs and names != list(signature.output_names) and len(names) == len(signature.outputs):
        names = list(signature.output_names)
    out = {}
    for name, tensor in zip(names, flat.values()):
        tensor = tensor.detach()
        if tensor.dtype in (torch.bfloat16, torch.float16):
            tensor = tensor.float()
        out[name] = tensor.cpu().numpy()
    return out


def output_names(model: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], signature: Signature) -> list[str]:
    if signature.outputs:
        return list(signature.output_names)
    with torch.inference_mode():
        return list(flatten(model(*args, **kwargs)))
