"""The pickle module sextant writes ``nn.Module`` sources with: cloudpickle, plus parametrized modules.

``torch.nn.utils.parametrize`` (``weight_norm``, ``spectral_norm``, ``orthogonal``, as in many
speech models) swaps a module's class for one generated on the fly and makes that class refuse
pickling ("Serialization of parametrized modules is only supported through state_dict()"). Here
such a module is pickled as its original class plus its attributes, which hold the parametrization
modules and their original tensors (``original0``, ``original1`` for a weight norm: its magnitude
and direction, not the weight they make); loading puts the generated class and the parametrized
properties back, as torch's own ``deepcopy`` of a parametrized module does. The model that loads
computes exactly what the user's did.

Pass this module as ``torch.save(..., pickle_module=sextant_torch.pickling)``; ``torch.load``
needs nothing special (the pickle names :func:`new_module` and :func:`restore_parametrized`, importable anywhere this
plugin is installed).
"""

from __future__ import annotations

from typing import Any

import cloudpickle
import torch
from torch.nn.utils import parametrize


def original_class(module: torch.nn.Module) -> type:
    """The class a module had before parametrizations replaced it with a generated subclass."""
    cls = type(module)
    return cls.__bases__[0] if parametrize.is_parametrized(module) else cls


def parametrized(model: torch.nn.Module) -> list[str]:
    """``"path.tensor"`` for every parametrized tensor in ``model`` (``conv.weight``)."""
    found = []
    for path, module in model.named_modules():
        if parametrize.is_parametrized(module):
            found += [f"{path}.{name}" if path else name for name in module.parametrizations]
    return found


def new_module(cls: type) -> torch.nn.Module:
    """An empty instance of ``cls``; :func:`restore_parametrized` fills it."""
    return cls.__new__(cls)


def restore_parametrized(module: torch.nn.Module, state: dict[str, Any]) -> torch.nn.Module:
    """Give ``module`` its attributes back and make it parametrized again (see the module doc)."""
    module.__dict__.update(state)
    parametrize._inject_new_class(module)
    for name in module.parametrizations:
        parametrize._inject_property(module, name)
    return module


class Pickler(cloudpickle.Pickler):
    """cloudpickle's pickler, which also writes parametrized modules (see the module doc)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, torch.nn.Module) and parametrize.is_parametrized(obj):
            # state after creation (the memo holds the module before its attributes are written)
            return new_module, (original_class(obj),), dict(obj.__dict__), None, None, restore_parametrized
        return super().reducer_override(obj)


def dump(obj: Any, file: Any, protocol: int | None = None) -> None:
    Pickler(file, protocol=protocol).dump(obj)


def check_torch() -> str | None:
    """Why this torch cannot rebuild parametrized modules (its private helpers moved), or ``None``."""
    missing = [f for f in ("_inject_new_class", "_inject_property") if not hasattr(parametrize, f)]
    if missing:
        return f"torch {torch.__version__} has no torch.nn.utils.parametrize.{missing[0]}"
    return None
