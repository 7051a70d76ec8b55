"""``config.pbtxt`` through Triton's own schema: ``model_config_pb2.ModelConfig`` (shipped by
tritonclient), written and read with protobuf's text format, never by string templates.

:func:`build` assembles the message from the signature, the serving settings and the backend's
tuning; :func:`write` and :func:`read` are exact inverses (a written file parses back to an equal
message, and re-serialises to the same bytes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from google.protobuf import json_format, text_format
from sextant.api import UsageError
from tritonclient.grpc import model_config_pb2 as mc

if TYPE_CHECKING:
    from sextant.api import ServingSettings, Signature, TensorSpec

    from sextant_triton.backends import Backend, Tuning

#: the parameter that lets a Python-backend model load with ``trust_source`` (``--trust-source``)
TRUST_PARAMETER = "sextant_trust_source"
#: numpy dtype name → Triton data type
DATA_TYPES = {
    "bool": mc.TYPE_BOOL,
    "uint8": mc.TYPE_UINT8,
    "uint16": mc.TYPE_UINT16,
    "uint32": mc.TYPE_UINT32,
    "uint64": mc.TYPE_UINT64,
    "int8": mc.TYPE_INT8,
    "int16": mc.TYPE_INT16,
    "int32": mc.TYPE_INT32,
    "int64": mc.TYPE_INT64,
    "float16": mc.TYPE_FP16,
    "float32": mc.TYPE_FP32,
    "float64": mc.TYPE_FP64,
    "bfloat16": mc.TYPE_BF16,
    "object": mc.TYPE_STRING,
    "bytes": mc.TYPE_STRING,
    "str": mc.TYPE_STRING,
}


def data_type(dtype: str) -> int:
    key = "bytes" if dtype.startswith(("<U", "|S", "bytes", "str")) else dtype
    try:
        return DATA_TYPES[key]
    except KeyError:
        raise UsageError(f"dtype {dtype} has no Triton data type") from None


def tensor_names(signature: Signature, backend: Backend) -> tuple[dict[str, str], dict[str, str]]:
    """Signature name → served name, for inputs and outputs (``<name>__<index>`` where the backend
    binds tensors by position)."""

    def names(tensors: Sequence[TensorSpec]) -> dict[str, str]:
        if backend.positional_names:
            return {t.name: f"{t.name}__{i}" for i, t in enumerate(tensors)}
        return {t.name: t.name for t in tensors}

    return names(signature.inputs), names(signature.outputs)


def dims(spec: TensorSpec, batching: bool) -> list[int]:
    """Triton dims: dynamic axes as -1, the batch axis left out when Triton batches."""
    shape = spec.shape[1:] if batching and spec.batched else spec.shape
    return [-1 if size is None else int(size) for size in shape]


def _tensor(entry: Any, spec: TensorSpec, batching: bool) -> None:
    """Set an input's or output's dims; a batched tensor with no other axis is ``dims: [1]`` with an
    empty reshape, as Triton requires (its dims may not be empty)."""
    shape = dims(spec, batching)
    if shape:
        entry.dims.extend(shape)
    else:
        entry.dims.append(1)
        entry.reshape.SetInParent()


@dataclass(frozen=True)
class Warmup:
    """One warmup request: its batch size and, per served input name, the data file (under the
    model's ``warmup/`` folder) and the dims of one sample."""

    batch_size: int
    inputs: Mapping[str, tuple[str, tuple[int, ...], str]]  # name → (file, dims, numpy dtype)


def warmups(
    sample: Mapping[str, np.ndarray], signature: Signature, input_names: Mapping[str, str], settings: ServingSettings
) -> tuple[list[Warmup], dict[str, bytes]]:
    """Warmup requests from one sample batch, and the files they read: one row of each input at
    batch 1 and at ``max_batch_size`` (Triton repeats the row), or the whole sample unbatched."""
    files: dict[str, bytes] = {}
    inputs: dict[str, tuple[str, tuple[int, ...], str]] = {}
    batching = settings.max_batch_size > 0
    for spec in signature.inputs:
        array = np.asarray(sample[spec.name])
        if array.dtype.kind in "OUS" or spec.dtype == "bfloat16":
            return [], {}  # Triton's raw warmup files hold fixed-size numbers only
        if batching and spec.batched:
            array = array[:1].reshape(array.shape[1:])
        served = input_names[spec.name]
        files[served] = np.ascontiguousarray(array.astype(spec.dtype, copy=False)).tobytes()
        inputs[served] = (served, tuple(array.shape), spec.dtype)
    sizes = sorted({1, settings.max_batch_size}) if batching else [1]
    return [Warmup(size, inputs) for size in sizes], files


def build(
    name: str,
    backend: Backend,
    signature: Signature,
    settings: ServingSettings,
    tuning: Tuning,
    warmup: Sequence[Warmup] = (),
    parameters: Mapping[str, str] | None = None,
) -> mc.ModelConfig:
    """The model's configuration as Triton's protobuf message."""
    config = mc.ModelConfig(name=name, backend=backend.backend, max_batch_size=settings.max_batch_size)
    if backend.platform:
        config.platform = backend.platform
    if backend.filename and backend.filename != "model.py":
        config.default_model_filename = backend.filename
    batching = settings.max_batch_size > 0
    input_names, output_names = tensor_names(signature, backend)
    for spec in signature.inputs:
        _tensor(config.input.add(name=input_names[spec.name], data_type=data_type(spec.dtype)), spec, batching)
    for spec in signature.outputs:
        _tensor(config.output.add(name=output_names[spec.name], data_type=data_type(spec.dtype)), spec, batching)
    kind = "KIND_GPU" if settings.device == "cuda" else "KIND_CPU"
    config.instance_group.add(kind=mc.ModelInstanceGroup.Kind.Value(kind), count=settings.instances)
    if settings.dynamic_batching:
        batcher = config.dynamic_batching
        batcher.SetInParent()
        batcher.preferred_batch_size.extend(settings.preferred_batch_sizes)
        batcher.max_queue_delay_microseconds = settings.queue_delay_us
    if tuning.graph_level is not None:
        config.optimization.graph.level = tuning.graph_level
    for field_name, accelerators in (
        ("cpu_execution_accelerator", tuning.cpu_accelerators),
        ("gpu_execution_accelerator", tuning.gpu_accelerators),
    ):
        for accelerator in accelerators:
            entry = getattr(config.optimization.execution_accelerators, field_name).add(name=accelerator.name)
            entry.parameters.update(accelerator.parameters)
    if tuning.cuda_graphs:
        config.optimization.cuda.graphs = True
    for key, value in {**tuning.parameters, **(parameters or {})}.items():
        config.parameters[key].string_value = value
    for request in warmup:
        entry = config.model_warmup.add(
            name=f"sample_batch_{request.batch_size}", batch_size=request.batch_size, count=1
        )
        for served, (file, shape, dtype) in request.inputs.items():
            entry.inputs[served].CopyFrom(
                mc.ModelWarmup.Input(data_type=data_type(dtype), dims=list(shape), input_data_file=file)
            )
    return config


def to_text(config: mc.ModelConfig) -> str:
    return text_format.MessageToString(config)


def write(path: Path, config: mc.ModelConfig) -> Path:
    path.write_text(to_text(config))
    return path


def read(path: Path) -> mc.ModelConfig:
    """Parse a ``config.pbtxt`` with Triton's schema (an unknown field is an error)."""
    return text_format.Parse(path.read_text(), mc.ModelConfig())


def to_dict(config: mc.ModelConfig) -> dict[str, Any]:
    return json_format.MessageToDict(config, preserving_proto_field_name=True)
