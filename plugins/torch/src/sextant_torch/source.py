"""Writing torch source models so that child processes can load them.

An ``nn.Module`` is saved whole with ``torch.save`` and cloudpickle, so classes defined in a
script (``__main__``) or in a ``file.py:factory`` file travel by value; classes from installed
packages travel by reference and must be importable in the child (they are: same environment).
Parametrized modules (``weight_norm``, ...), which torch refuses to pickle, are written by
``sextant_torch.pickling`` and rebuilt as they were in each process; the run's notes say so.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import pickle
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cloudpickle
import torch
from sextant.api import (
    TORCH_EXPORTED,
    TORCH_MODULE,
    TORCHSCRIPT,
    ModelLoadError,
    Rejection,
    Signature,
    SourceModel,
    is_user_module,
)

from sextant_torch import pickling
from sextant_torch.tensors import call, to_torch

MODEL_FILE = "model.pt"


def _by_value(model: torch.nn.Module) -> None:
    """Register the modules of classes that a fresh process could not import for pickling by value."""
    for module in model.modules():
        name = pickling.original_class(module).__module__
        if is_user_module(name):
            cloudpickle.register_pickle_by_value(sys.modules[name])


def _imports(model: torch.nn.Module) -> tuple[str, ...]:
    """The modules of the model's classes that loading its pickle imports
    (``transformers.models.bert.modeling_bert``): the module itself, not only its package, as
    ``transformers`` imports its models lazily (its top level takes a fraction of a second, BERT's
    module some four seconds more). torch itself, and the user's own modules (pickled by value), aside."""
    names = {pickling.original_class(module).__module__ for module in model.modules()}
    return tuple(sorted(n for n in names if not is_user_module(n) and n.split(".", 1)[0] not in ("torch", "builtins")))


def module_source(model: torch.nn.Module, name: str | None) -> SourceModel:
    model = model.eval()
    notes = _parametrized_notes(model)

    def write(folder: Path) -> Path:
        _by_value(model)
        path = folder / MODEL_FILE
        try:
            torch.save(model, path, pickle_module=pickling)
        except Exception as exc:
            raise ModelLoadError(
                f"cannot save the {type(model).__name__} for the isolated steps: {type(exc).__name__}: {exc}",
                hint="The model must be picklable (no open files, locks or lambdas bound to C objects).",
            ) from exc
        return path

    return SourceModel(
        TORCH_MODULE,
        name or type(model).__name__.lower(),
        write,
        # a module may declare its inputs (sextant.Module's flat adapters do: names, positional calls)
        signature=getattr(model, "sextant_signature", None),
        description="PyTorch nn.Module",
        fingerprint=lambda: fingerprint(model),
        notes=notes,
        probe=lambda batch, signature: _probe(model, batch, signature),
        imports=_imports(model),
    )


def _probe(model: torch.nn.Module, batch: Mapping[str, Any], signature: Signature) -> None:
    """Call the user's own model object on ``batch`` (see ``SourceModel.probe``)."""
    try:
        with torch.no_grad():
            call(model, to_torch(batch, "cpu"), signature)
    except TypeError as exc:  # most often inputs named otherwise than forward()'s parameters: say which it takes
        try:
            takes = ", ".join(inspect.signature(model.forward).parameters)
        except (TypeError, ValueError):
            raise exc from None
        raise TypeError(f"{exc} ({type(model).__name__}.forward takes {takes})") from exc


def _parametrized_notes(model: torch.nn.Module) -> tuple[str, ...]:
    """What the run should say about parametrized tensors; refuses a torch that cannot rebuild them."""
    tensors = pickling.parametrized(model)
    if not tensors:
        return ()
    shown = ", ".join(tensors[:3]) + (f" and {len(tensors) - 3} more" if len(tensors) > 3 else "")
    missing = pickling.check_torch()
    if missing:
        raise ModelLoadError(
            f"the {type(model).__name__} has parametrized tensors ({shown}), which torch.save refuses, "
            f"and sextant cannot rebuild them: {missing}",
            hint="Remove the parametrizations before optimizing (torch.nn.utils.parametrize."
            "remove_parametrizations(module, name), which keeps the weights they compute).",
        )
    return (
        f"the source model has {len(tensors)} parametrized tensor(s) ({shown}; weight_norm and the like), "
        "which torch.save refuses: it was written with each parametrization and its original tensors, "
        "and is rebuilt parametrized in every process",
    )


def fingerprint(model: torch.nn.Module) -> str:
    """A key that changes when the weights, the structure or the classes' source code change.

    The saved pickle cannot serve: torch writes a random serialization id, and cloudpickle gives
    classes it pickles by value a random tracking id."""
    sha = hashlib.sha256(repr(model).encode())
    for cls in sorted({type(m) for m in model.modules()}, key=lambda c: f"{c.__module__}.{c.__qualname__}"):
        sha.update(f"{cls.__module__}.{cls.__qualname__}".encode())
        with contextlib.suppress(OSError, TypeError):  # no source (built-in): its name and the repr stand in
            sha.update(inspect.getsource(cls).encode())
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        sha.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        sha.update(tensor.view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def load_module(path: Path) -> torch.nn.Module:
    return pickling.load(path)


def _copy(path: Path):
    def write(folder: Path) -> Path:
        target = folder / path.name
        shutil.copy2(path, target)
        return target

    return write


def torchscript_source(path: Path, name: str | None) -> SourceModel | Rejection:
    try:
        torch.jit.load(str(path), map_location="cpu")
    except Exception:
        return not_torchscript(path)
    return SourceModel(TORCHSCRIPT, name or path.stem, _copy(path), description="TorchScript file")


FACTORY_HINT = (
    "sextant needs the model with its code: pass a factory that builds it, e.g. `sextant optimize "
    "model.py:make_model` where make_model() returns the nn.Module (with model.load_state_dict("
    "torch.load(...)) for saved weights); or save the model with torch.jit.save or torch.export.save."
)


def not_torchscript(path: Path) -> Rejection:
    """What a ``.pt`` file that is not TorchScript holds, read without unpickling any code."""
    try:
        content = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found:  # classes beyond tensors and containers: a whole pickled model, say
            return Rejection(
                f"a torch.save pickle of Python objects (of class {found.group(1)}), which sextant does not "
                "unpickle: loading it would run code from the file",
                hint=FACTORY_HINT,
            )
        return Rejection(
            "neither TorchScript nor a torch.save file",
            hint="The file may be truncated or of another framework; save the model again with torch.jit.save.",
        )
    except Exception as exc:
        return Rejection(
            f"neither TorchScript nor a torch.save file ({type(exc).__name__}: {str(exc)[:200]})",
            hint="The file may be truncated or of another framework; save the model again with torch.jit.save.",
        )
    if isinstance(content, Mapping):
        keys = list(content)
        shown = ", ".join(map(str, keys[:4])) + (", ..." if len(keys) > 4 else "")
        if keys and all(isinstance(v, torch.Tensor) for v in content.values()):
            what = f"a state dict ({len(keys)} tensors: {shown}): the weights without the model's code"
        else:
            what = f"a dict with keys {shown} (a training checkpoint?), not a model"
        return Rejection(what, hint=FACTORY_HINT)
    return Rejection(f"a torch.save file holding a {type(content).__name__}, not a model", hint=FACTORY_HINT)


def exported_source(path: Path, name: str | None) -> SourceModel:
    try:
        torch.export.load(str(path))
    except Exception as exc:
        raise ModelLoadError(f"{path} is not a loadable torch.export program: {type(exc).__name__}: {exc}") from exc
    return SourceModel(TORCH_EXPORTED, name or path.stem, _copy(path), description="torch.export program")
