"""torch.export program → OpenVINO IR (``model.xml`` + ``model.bin``).

``openvino.convert_model`` takes the saved program (the torch plugin's ``torch-export`` step, whose
program returns its outputs as a flat dict in sextant's naming, or a user's ``.pt2``). The model's
inputs and outputs are renamed to the signature's names (:mod:`sextant_openvino.naming`); the axes
the samples hold fixed are made static (a program's are all dynamic after conversion), the others
stay dynamic. The IR keeps fp32 weights: ``openvino.save_model`` would compress them to fp16 by
default, and the precision of a candidate is the runner's to choose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sextant.api import Signature, StepError, StepRequest

from sextant_openvino.errors import reason
from sextant_openvino.naming import rename


def from_exported_program(request: StepRequest) -> Path:
    import openvino as ov
    import torch

    torch.set_num_threads(1)  # conversions are not timed; leave the cores alone
    try:
        program = torch.export.load(str(request.input))
    except Exception as exc:  # torch raises whatever its unpickler or zip reader met
        raise StepError(f"torch.export.load cannot read {request.input.name}: {exc}") from exc
    try:
        model = ov.convert_model(program)
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
        raise StepError(f"openvino.convert_model failed on the torch.export program: {reason(exc)}") from exc
    rename(model.inputs, request.signature.input_names)
    rename(model.outputs, output_names(program, request.signature))
    shapes = static_shapes(model, request.signature)
    if shapes:
        model.reshape(shapes)
    path = request.output_dir / "model.xml"
    ov.save_model(model, str(path), compress_to_fp16=False)
    return path


def output_names(program: Any, signature: Signature) -> list[str]:
    """The names of a program's outputs, in order: the keys of the flat dict that the torch plugin's
    programs return; else the reference's (the signature's), by position; else ``output_0``..."""
    spec = program.call_spec.out_spec
    keys = [str(key) for key in spec.context] if spec is not None and spec.type is dict else []
    if keys and (not signature.outputs or set(keys) == set(signature.output_names)):
        return keys
    if signature.outputs:
        return list(signature.output_names)
    return [f"output_{i}" for i in range(spec.num_leaves if spec is not None else 0)]


def static_shapes(model: Any, signature: Signature) -> dict[str, Any]:
    """Each input's partial shape with the signature's fixed sizes and -1 where sizes vary
    (inputs whose rank differs from the signature's are left as they are)."""
    import openvino as ov

    specs = {spec.name: spec for spec in signature.inputs}
    shapes = {}
    for port in model.inputs:
        spec = specs.get(port.get_any_name())
        rank = port.get_partial_shape().rank
        if spec is None or rank.is_dynamic or rank.get_length() != len(spec.shape):
            continue
        shapes[port.get_any_name()] = ov.PartialShape([-1 if size is None else size for size in spec.shape])
    return shapes
