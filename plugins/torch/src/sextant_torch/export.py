"""Exporters: TorchScript (trace, script), torch.export, ONNX (dynamo and TorchScript-based).

Each traces with the first sample resized to batch 2 (batch 1 would let tracers specialise the
batch axis to a constant), marks the batch axis and the axes that vary between samples as dynamic,
and names ONNX inputs and outputs as sextant does (``sextant_torch.tensors``).

A ``torch.export`` program returns its outputs flattened into a dict in sextant's naming: a saved
program records its output's Python type by name, and loading one whose type was a class (a
Hugging Face ``ModelOutput``, a named tuple, a dataclass) fails in any process that has not
imported and registered that class, as sextant's runners and ``Package.best().load()`` have not.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import torch
from sextant.api import Signature, StepError, StepRequest, load_batches, resize_batch

from sextant_torch.source import load_module
from sextant_torch.tensors import example_inputs, flatten, output_names, to_torch

LEGACY_OPSET = 17


def _prepare(request: StepRequest) -> tuple[torch.nn.Module, tuple[Any, ...], dict[str, Any]]:
    torch.set_num_threads(1)  # exports are not timed; leave the cores alone
    model = load_module(request.input)
    first = load_batches(request.samples)[0]
    batch = resize_batch(first, 2 if request.max_batch >= 2 else 1, request.signature)
    args, kwargs = example_inputs(to_torch(batch, "cpu"), request.signature)
    return model, args, kwargs


def _dynamic_axes(signature: Signature) -> dict[str, list[int]]:
    return {t.name: list(t.dynamic_axes) for t in signature.inputs}


def _dynamic_shapes(signature: Signature, model: torch.nn.Module) -> Any:
    auto = torch.export.Dim.AUTO
    specs = {name: ({axis: auto for axis in axes} or None) for name, axes in _dynamic_axes(signature).items()}
    if signature.call_style == "positional":
        return _bound(model, tuple(specs[name] for name in signature.input_names))
    return specs


def _bound(model: torch.nn.Module, shapes: tuple[Any, ...]) -> Any:
    """Positional dynamic shapes as torch.export matches them, by ``forward``'s parameters: a
    variadic ``forward(*tensors)`` (``sextant.Module``'s flat adapters) takes them as one tuple."""
    try:
        forward = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return shapes
    if not any(p.kind is p.VAR_POSITIONAL for p in forward.parameters.values()):
        return shapes
    return dict(forward.bind(*shapes).arguments)


def trace(request: StepRequest) -> Path:
    model, args, kwargs = _prepare(request)
    with torch.inference_mode(False), torch.no_grad():
        if kwargs:
            traced = torch.jit.trace(model, example_kwarg_inputs=kwargs, strict=False)
        else:
            traced = torch.jit.trace(model, args, strict=False)
    path = request.output_dir / "model.pt"
    traced.save(str(path))
    return path


def script(request: StepRequest) -> Path:
    model = load_module(request.input)
    try:
        scripted = torch.jit.script(model)
    except OSError as exc:  # the outermost names what has no source; the innermost only says "no source"
        found = re.search(r"<(?:function|class|method|bound method) ([^ >]+)", str(exc))
        what = found.group(1) if found else "a function it calls"
        raise StepError(
            f"torch.jit.script needs the Python source of everything the model uses and {what} has none "
            "(generated code, such as a transformers config's __init__, cannot be scripted; "
            "the traced and exported formats cover the model)"
        ) from exc
    path = request.output_dir / "model.pt"
    scripted.save(str(path))
    return path


class _FlatOutputs(torch.nn.Module):
    """``model`` with its outputs flattened (``sextant_torch.tensors.flatten``): a dict of tensors."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        return flatten(self.model(*args, **kwargs))


def flat_outputs(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` returning a flat dict of named tensors, with ``model.forward``'s signature (which
    torch.export matches the inputs and their dynamic shapes against)."""
    signature = inspect.signature(model.forward)
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)

    def forward(self: _FlatOutputs, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        return _FlatOutputs.forward(self, *args, **kwargs)

    forward.__signature__ = signature.replace(parameters=[this, *signature.parameters.values()])  # type: ignore[attr-defined]
    cls = type(f"FlatOutputs{type(model).__name__}", (_FlatOutputs,), {"forward": forward})
    return cls(model).eval()


def export_program(request: StepRequest) -> Path:
    model, args, kwargs = _prepare(request)
    flat = flat_outputs(model)
    program = torch.export.export(flat, args, kwargs=kwargs, dynamic_shapes=_dynamic_shapes(request.signature, flat))
    path = request.output_dir / "model.pt2"
    torch.export.save(program, str(path))
    return path


def onnx_dynamo(request: StepRequest) -> Path:
    model, args, kwargs = _prepare(request)
    path = request.output_dir / "model.onnx"
    program = torch.onnx.export(
        model,
        args,
        kwargs=kwargs,
        dynamo=True,
        dynamic_shapes=_dynamic_shapes(request.signature, model),
        input_names=list(request.signature.input_names),
        output_names=output_names(model, args, kwargs, request.signature),
    )
    program.save(str(path))
    return path


class _ByName(torch.nn.Module):
    """``model`` called with keyword inputs given positionally, in ``names`` order. The
    TorchScript-based exporter passes keyword inputs to ``forward`` by position, so a model whose
    parameters come in another order (BERT's ``use_cache`` before ``attention_mask``...) got
    them in the wrong places."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> Any:
        return self.model(**dict(zip(self.names, tensors)))


def onnx_legacy(request: StepRequest) -> Path:
    model, args, kwargs = _prepare(request)
    path = request.output_dir / "model.onnx"
    outputs = output_names(model, args, kwargs, request.signature)
    if kwargs and not args:
        names = tuple(n for n in request.signature.input_names if n in kwargs)
        model, args, kwargs = _ByName(model, names), tuple(kwargs[n] for n in names), {}
    dynamic = {name: axes for name, axes in _dynamic_axes(request.signature).items() if axes}
    for spec in request.signature.outputs:
        if spec.dynamic_axes:
            dynamic[spec.name] = list(spec.dynamic_axes)
    torch.onnx.export(
        model,
        args,
        str(path),
        kwargs=kwargs or None,
        dynamo=False,
        opset_version=LEGACY_OPSET,
        input_names=list(request.signature.input_names),
        output_names=outputs,
        dynamic_axes=dynamic,
    )
    return path
