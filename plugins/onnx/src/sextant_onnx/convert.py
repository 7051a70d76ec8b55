"""ONNX → ONNX converters. Each reads ``request.input`` and writes ``model.onnx`` in the output folder."""

from __future__ import annotations

from pathlib import Path

import onnx
from sextant.api import StepRequest

from sextant_onnx.source import read_model

_EXTERNAL_AT = 1_800_000_000  # bytes; protobuf cannot hold a model over 2 GB in one file


def save(model: onnx.ModelProto, folder: Path) -> Path:
    path = folder / "model.onnx"
    external = model.ByteSize() > _EXTERNAL_AT
    onnx.save_model(model, str(path), save_as_external_data=external, location="model.onnx.data" if external else None)
    return path


def slim(request: StepRequest) -> Path:
    import onnxslim

    return save(onnxslim.slim(str(request.input)), request.output_dir)


def to_fp16(request: StepRequest) -> Path:
    from onnxconverter_common import float16

    model = read_model(request.input, load_external_data=True)
    converted = float16.convert_float_to_float16(
        model, keep_io_types=bool(request.options.get("keep_io_types", True)), disable_shape_infer=False
    )
    return save(converted, request.output_dir)


def quantize_int8(request: StepRequest) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = request.output_dir / "prepared.onnx"
    quant_pre_process(str(request.input), str(prepared), skip_symbolic_shape=True)
    path = request.output_dir / "model.onnx"
    quantize_dynamic(str(prepared), str(path), weight_type=QuantType.QInt8)
    prepared.unlink()
    return path
