"""Moving named numpy arrays in and out of Keras models and TensorFlow functions.

Inputs: ``call_style == "keyword"`` calls a Keras model with a dict of its inputs; ``"positional"``
with the single tensor, or a list in signature order. A SavedModel signature always takes keyword
arguments named like the signature's inputs.

Outputs are flattened to named arrays the same way as the torch plugin does, so every runner of a
model (and the SavedModel's serving signature) names them alike:

- a single tensor → ``output_0``;
- a list or tuple → ``output_0``, ``output_1``, ... (nested: ``output_1.0``);
- a dict → its keys (nested: ``key.sub``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from sextant.api import Signature


def tensor_specs(signature: Signature) -> list[tf.TensorSpec]:
    """One ``tf.TensorSpec`` per input, ``None`` on the batch axis and on the axes that vary."""
    specs = []
    for spec in signature.inputs:
        dynamic = set(spec.dynamic_axes)
        shape = [None if axis in dynamic else size for axis, size in enumerate(spec.shape)]
        specs.append(tf.TensorSpec(shape, tf.dtypes.as_dtype(spec.dtype), name=spec.name))
    return specs


def model_inputs(tensors: Sequence[Any], signature: Signature) -> Any:
    """Arrange tensors (in signature order) the way a Keras model takes them."""
    if signature.call_style == "keyword":
        return dict(zip(signature.input_names, tensors))
    return tensors[0] if len(tensors) == 1 else list(tensors)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten a model's output (see module doc)."""
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (tuple, list)):
        items = [(f"output_{i}" if not prefix else str(i), v) for i, v in enumerate(value)]
    elif value is None:
        return {}
    else:
        return {prefix or "output_0": value}
    out: dict[str, Any] = {}
    for key, item in items:
        out.update(flatten(item, f"{prefix}.{key}" if prefix else key))
    return out


def named(value: Any, signature: Signature) -> dict[str, Any]:
    """Flattened outputs, named like the reference's by position when only the structure's names
    differ (a SavedModel signature's own keys)."""
    flat = flatten(value)
    names = list(flat)
    if signature.outputs and set(names) != set(signature.output_names) and len(names) == len(signature.outputs):
        names = list(signature.output_names)
    return dict(zip(names, flat.values()))


def to_numpy(value: Any, signature: Signature) -> dict[str, np.ndarray]:
    out = {}
    for name, tensor in named(value, signature).items():
        array = tensor.numpy() if hasattr(tensor, "numpy") else np.asarray(tensor)
        if array.dtype.name in ("bfloat16", "float16"):
            array = array.astype(np.float32)
        out[name] = array
    return out
