"""``.onnx`` files as sources: their declared signature (weights listed as inputs left out, the batch
axis read from the first dimensions), and copying them with their external data."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import onnx
from onnx.external_data_helper import _get_all_tensors, uses_external_data
from sextant.api import ONNX, ModelLoadError, Signature, SourceModel, TensorSpec


def read_model(path: Path, *, load_external_data: bool = False) -> onnx.ModelProto:
    """Load an ONNX file; a missing, truncated or corrupt one raises :class:`ModelLoadError`."""
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such ONNX file")
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:
        raise ModelLoadError(
            f"{path} is not a readable ONNX model: {type(exc).__name__}: {exc}",
            hint="The file may be truncated or corrupt; export it again.",
        ) from exc


def external_files(model: onnx.ModelProto) -> list[str]:
    """Relative paths of the external data files a model refers to."""
    files = []
    for tensor in _get_all_tensors(model):
        if uses_external_data(tensor):
            location = next(e.value for e in tensor.external_data if e.key == "location")
            if location not in files:
                files.append(location)
    return files


def weight_inputs(model: onnx.ModelProto) -> list[str]:
    """Graph inputs that an initializer of the same name backs: weights, in the style of IR < 4
    files (old model-zoo models, exporters asked to keep initializers as inputs), not data."""
    initializers = {init.name for init in model.graph.initializer}
    return [value.name for value in model.graph.input if value.name in initializers]


def declared_signature(model: onnx.ModelProto) -> tuple[Signature, tuple[str, ...]]:
    """The inputs the model takes (weights left out) and what was assumed about their batch axis.

    An input whose first axis is symbolic (or absent) has a batch axis. When every input has a
    fixed first axis of one size, the model fixes its batch size (``max_batch``); when some inputs
    have a batch axis, one with a fixed first axis has none (it is fed whole at every batch size).
    """
    weights = set(weight_inputs(model))
    shapes: dict[str, tuple[str, tuple[int | None, ...]]] = {}
    unranked = set()  # inputs with no shape at all, not even a number of axes: the samples say
    for value in model.graph.input:
        if value.name in weights:
            continue
        tensor_type = value.type.tensor_type
        dtype = str(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
        if not tensor_type.HasField("shape"):
            unranked.add(value.name)
        shapes[value.name] = (
            dtype,
            tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor_type.shape.dim),
        )
    dynamic = [name for name, (_, shape) in shapes.items() if (shape and shape[0] is None) or name in unranked]
    fixed = {name: shape[0] for name, (_, shape) in shapes.items() if shape and shape[0] is not None}
    notes = []
    if dynamic and fixed:
        notes.append(
            f"input{'s' if len(fixed) > 1 else ''} {_listed(fixed)} of fixed first dimension "
            f"({', '.join(map(str, fixed.values()))}) taken as having no batch axis (fed whole at every batch "
            f"size), as {_listed(dynamic)} has a dynamic one"
        )
    max_batch = None
    if fixed and not dynamic:
        sizes = set(fixed.values())
        if len(sizes) == 1:
            max_batch = sizes.pop()
        else:
            notes.append(
                f"inputs {_listed(fixed)} have fixed first dimensions of different sizes "
                f"({', '.join(map(str, fixed.values()))}): taken as having no batch axis; each call runs the "
                "declared shapes, profiled one call at a time"
            )
    batched = {
        name: name in unranked or (bool(shape) and (name in dynamic or max_batch is not None))
        for name, (_, shape) in shapes.items()
    }
    inputs = tuple(
        TensorSpec(name, dtype, shape, batched[name], ranked=name not in unranked)
        for name, (dtype, shape) in shapes.items()
    )
    if unranked:
        notes.append(
            f"the model does not declare the number of axes of {_listed(sorted(unranked))}: the samples "
            "(or --shape) give it, axis 0 the batch"
        )
    if weights:
        notes.append(
            f"{len(weights)} graph input{'s are' if len(weights) > 1 else ' is'} backed by initializers (weights): "
            "not fed, the stored values are used; the workspace copy of the model lists them as initializers "
            "only (IR version 4 and later), which ONNX Runtime's converters need"
        )
    return Signature(inputs, call_style="keyword", max_batch=max_batch), tuple(notes)


def _listed(names: Sequence[str] | Mapping[str, object]) -> str:
    shown = [f"'{name}'" for name in list(names)[:3]]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


def without_weight_inputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose graph inputs are only the data it takes: inputs backed by an
    initializer are dropped (the initializer stays), and the IR version raised to 4, the first in
    which an initializer need not be an input. External data references are kept as they are."""
    weights = set(weight_inputs(model))
    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = [value for value in out.graph.input if value.name not in weights]
    del out.graph.input[:]
    out.graph.input.extend(kept)
    out.ir_version = max(out.ir_version, 4)
    return out


def _unranked(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs and outputs of tensor type that declare no shape at all (unknown rank)."""
    return [
        value
        for value in (*model.graph.input, *model.graph.output)
        if value.type.HasField("tensor_type") and not value.type.tensor_type.HasField("shape")
    ]


def _ranked_for_the_checker(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose graph inputs and outputs of unknown rank have an (empty) shape: the checker
    requires the field, ONNX Runtime does not. Only checked, never written (loaded without external
    data, so it stays small)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for value in _unranked(out):
        value.type.tensor_type.shape.SetInParent()
    return out


def onnx_source(path: Path, name: str | None) -> SourceModel:
    model = read_model(path)
    extra = external_files(model)
    missing = [f for f in extra if not (path.parent / f).exists()]
    if missing:
        raise ModelLoadError(
            f"{path} refers to external data files that are missing: {', '.join(missing)}",
            hint="Keep the external data files next to the .onnx file.",
        )
    try:
        if _unranked(model):  # valid for ONNX Runtime, not for the checker: check the rest
            onnx.checker.check_model(_ranked_for_the_checker(model))
        else:
            onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise ModelLoadError(f"{path} is not a valid ONNX model: {exc}", hint="Export it again.") from exc

    signature, notes = declared_signature(model)
    rewrite = bool(weight_inputs(model))

    def write(folder: Path) -> Path:
        if rewrite:  # once, here: onnx-fp16 and the int8 pre-processing trip on weights listed as inputs
            onnx.save_model(without_weight_inputs(model), str(folder / path.name))
        else:
            shutil.copy2(path, folder / path.name)
        for rel in extra:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path.parent / rel, folder / rel)
        return folder / path.name

    return SourceModel(ONNX, name or path.stem, write, signature, description="ONNX file", notes=notes)
