"""The pickle module sextant writes ``nn.Module`` sources with: cloudpickle, plus parametrized modules.

``torch.nn.utils.parametrize`` (``weight_norm``, ``spectral_norm``, ``orthogonal``, as in many
speech models) swaps a module's class for one generated on the fly and makes that class refuse
pickling ("Serialization of parametrized modules is only supported through state_dict()"). Here
such a module is pickled as its original class plus its attributes, which hold the parametrization
modules and their original tensors (``original0``, ``original1`` for a weight norm: its magnitude
and direction, not the weight they make); loading puts the generated class and the parametrized
properties back, as torch's own ``deepcopy`` of a parametrized module does. The model that loads
computes exactly what the user's did.

``transformers`` 5 records outputs a model is asked for (``output_hidden_states=True``) through
state that lives in the process, not in the model: a registry filled by ``PreTrainedModel.__init__``
and forward hooks, installed on first use, that read a ``ContextVar``. A pickled model is not
constructed again, so in a fresh process the registry does not know its classes and a task head
that reads its inner model's ``hidden_states`` gets ``None``; and a model called once before saving
carries hooks that cannot be pickled. Here those hooks (and the flag saying they are installed)
are left out when writing, and :func:`restore_process_state` puts the registry back after loading,
so the hooks are installed again on first use, as in the user's process.

Pass this module as ``torch.save(..., pickle_module=sextant_torch.pickling)`` and load with
:func:`load`; the pickle names :func:`new_module`, :func:`restore_parametrized` and
:func:`restore_module`, importable anywhere this plugin is installed.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from pathlib import Path
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


#: the module of transformers' output-capturing hooks and registry (see the module doc)
_CAPTURING = "transformers.utils.output_capturing"
_CAPTURING_FLAG = "_output_capturing_hooks_installed"


def _process_local(hook: Any) -> bool:
    return getattr(hook, "__module__", None) == _CAPTURING


def _has_process_state(module: torch.nn.Module) -> bool:
    return _CAPTURING_FLAG in module.__dict__ or any(map(_process_local, module._forward_hooks.values()))


def portable_state(module: torch.nn.Module) -> dict[str, Any]:
    """``module``'s attributes without transformers' process-local hooks and their flag."""
    state = dict(module.__dict__)
    state.pop(_CAPTURING_FLAG, None)
    dropped = {key for key, hook in module._forward_hooks.items() if _process_local(hook)}
    if dropped:
        for name in ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called"):
            if name in state:
                state[name] = OrderedDict((k, v) for k, v in state[name].items() if k not in dropped)
    return state


def restore_module(module: torch.nn.Module, state: dict[str, Any]) -> torch.nn.Module:
    """Give ``module`` its attributes back (written by :class:`Pickler` without process-local hooks)."""
    module.__dict__.update(state)
    return module


def restore_process_state(model: torch.nn.Module) -> torch.nn.Module:
    """Register ``model``'s transformers classes as their constructors would have (see the module doc)."""
    capturing, modeling = sys.modules.get(_CAPTURING), sys.modules.get("transformers.modeling_utils")
    registry = getattr(capturing, "_CAN_RECORD_REGISTRY", None)
    base = getattr(modeling, "PreTrainedModel", None)
    if registry is None or base is None:  # no transformers class was unpickled, or a transformers without it
        return model
    for module in model.modules():
        if isinstance(module, base) and not registry.get(module):
            registry[module] = module._can_record_outputs
    return model


def load(path: Path) -> torch.nn.Module:
    """The module saved at ``path``, on the CPU, in eval mode, as it behaved where it was saved."""
    return restore_process_state(torch.load(path, weights_only=False, map_location="cpu").eval())


class Pickler(cloudpickle.Pickler):
    """cloudpickle's pickler, which also writes parametrized modules and leaves out transformers'
    process-local hooks (see the module doc)."""

    def reducer_override(self, obj: Any) -> Any:
        # the state is applied after creation (the memo holds the module before its attributes are written)
        if isinstance(obj, torch.nn.Module) and parametrize.is_parametrized(obj):
            return new_module, (original_class(obj),), portable_state(obj), None, None, restore_parametrized
        if isinstance(obj, torch.nn.Module) and _has_process_state(obj):
            return new_module, (type(obj),), portable_state(obj), None, None, restore_module
        return super().reducer_override(obj)


def dump(obj: Any, file: Any, protocol: int | None = None) -> None:
    Pickler(file, protocol=protocol).dump(obj)


def check_torch() -> str | None:
    """Why this torch cannot rebuild parametrized modules (its private helpers moved), or ``None``."""
    missing = [f for f in ("_inject_new_class", "_inject_property") if not hasattr(parametrize, f)]
    if missing:
        return f"torch {torch.__version__} has no torch.nn.utils.parametrize.{missing[0]}"
    return None
