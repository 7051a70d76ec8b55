"""``.onnx`` files as sources: their declared signature, and copying them with their external data."""

from __future__ import annotations

import shutil
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


def declared_signature(model: onnx.ModelProto) -> Signature:
    initializers = {init.name for init in model.graph.initializer}
    inputs = []
    fixed_batches = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        shape = tuple(
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor_type.shape.dim
        )
        if shape and shape[0] is not None:
            fixed_batches.append(shape[0])
        inputs.append(TensorSpec(value.name, str(dtype), shape, batched=len(shape) > 0))
    return Signature(tuple(inputs), call_style="keyword", max_batch=min(fixed_batches) if fixed_batches else None)


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
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise ModelLoadError(f"{path} is not a valid ONNX model: {exc}", hint="Export it again.") from exc

    def write(folder: Path) -> Path:
        shutil.copy2(path, folder / path.name)
        for rel in extra:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path.parent / rel, folder / rel)
        return folder / path.name

    return SourceModel(ONNX, name or path.stem, write, declared_signature(model), description="ONNX file")
