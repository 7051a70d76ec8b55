"""The structure of a call or an output: its tensors taken out, everything else kept.

:func:`split` turns ``(args, kwargs)`` (or a module's output) into a :class:`Flat`: a :class:`Tree`,
its tensors and its cache objects; :func:`join` puts tensors back into a tree. A tree is hashable:
nested tuples, lists, dicts (and named tuples, dataclasses, Hugging Face / diffusers
``ModelOutput``), constants (``None``, numbers, strings, enums, ``torch.dtype`` / ``torch.device``),
tensor slots with their dtype and rank, and transformers' key/value caches (see :mod:`.caches`).
Two calls with equal trees are calls of one structure: the same flat-signature model serves both.
An output's tree also says which of its tensors and caches *are* the call's (the same object,
``("input", i)`` and a cache's ``source``): those are not the flat model's outputs, and serving
gives back the caller's own objects. Anything else (a generator, an open file, a static cache)
cannot be recorded, and :class:`Unrecordable` says where it is.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from sextant_torch.pipelines import caches as kv

Tree = tuple[Any, ...]
_CONSTANTS = (type(None), bool, int, float, complex, str, bytes, enum.Enum, torch.dtype, torch.device)


class Unrecordable(TypeError):
    """A value in a call that is neither a tensor, a constant nor a container of those."""

    def __init__(self, path: str, value: Any, kind: str = "") -> None:
        self.path, self.kind = path, kind or type(value).__name__
        super().__init__(f"{path} is a {self.kind}")


@dataclasses.dataclass(frozen=True)
class Flat:
    """A value taken apart: its tree, its tensors with their paths, its cache objects (in order)."""

    tree: Tree
    tensors: list[tuple[str, torch.Tensor]]
    caches: list[Any]


@dataclasses.dataclass
class _Walk:
    output: bool
    tensors: list[tuple[str, torch.Tensor]] = dataclasses.field(default_factory=list)
    caches: list[Any] = dataclasses.field(default_factory=list)
    inputs: dict[int, int] = dataclasses.field(default_factory=dict)  # id(tensor) -> the call's index
    sources: dict[int, int] = dataclasses.field(default_factory=dict)  # id(cache) -> the call's index


def split(value: Any, path: str = "", call: Flat | None = None) -> Flat:
    """``value`` taken apart, its tensors with their paths (``encoder_hidden_states``, ``args.0``).

    With ``call``, ``value`` is that call's output: a tensor or cache of the call found in it is
    referred to, not taken out. An output's paths: ``output`` for a tensor, ``output.0`` for a
    tuple's items (TorchScript, hence the legacy ONNX exporter, rejects a name that is a number), the
    keys of a dict or ``ModelOutput``."""
    walk = _Walk(output=call is not None)
    if call is not None:
        walk.inputs = {id(t): i for i, (_, t) in enumerate(call.tensors)}
        walk.sources = {id(c): i for i, c in enumerate(call.caches)}
    return Flat(_split(value, path, walk), walk.tensors, walk.caches)


def _split(value: Any, path: str, walk: _Walk) -> Tree:
    if isinstance(value, torch.Tensor):
        if id(value) in walk.inputs:
            return ("input", walk.inputs[id(value)])
        walk.tensors.append((path or "output", value))
        return ("tensor", str(value.dtype), value.dim())
    if isinstance(value, _CONSTANTS):
        return ("const", value)
    kind = type(value)
    here = f"{path}." if path else "output." if isinstance(value, (tuple, list)) else ""
    if isinstance(value, Mapping):  # dicts, ModelOutput (an OrderedDict dataclass: rebuilt by keywords)
        keys = tuple(str(k) for k in value)
        return ("map", kind, keys, tuple(_split(v, f"{here}{k}", walk) for k, v in zip(keys, value.values())))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = tuple(f.name for f in dataclasses.fields(value) if f.init)
        return ("map", kind, names, tuple(_split(getattr(value, n), f"{here}{n}", walk) for n in names))
    if isinstance(value, (tuple, list)):
        named = hasattr(value, "_fields")
        return ("seq", kind, named, tuple(_split(v, f"{here}{i}", walk) for i, v in enumerate(value)))
    if kv.is_cache(value):
        return _split_cache(value, path or "output", walk)
    raise Unrecordable(path or "the value", value)


def _split_cache(cache: Any, path: str, walk: _Walk) -> Tree:
    if id(cache) in walk.sources:
        source = walk.sources[id(cache)]
    else:
        source = None
        walk.caches.append(cache)
    try:
        node = kv.split(cache, path, walk.output, lambda tensor, where: _split(tensor, where, walk))
    except kv.UnsupportedCache as exc:
        raise Unrecordable(path, cache, f"{exc} (only DynamicCache and EncoderDecoderCache are recorded)") from exc
    return node[:3] + (source,) + node[4:]


def join(tree: Tree, tensors: Sequence[Any], call: Flat | None = None, made: list[Any] | None = None) -> Any:
    """Rebuild the value of ``tree`` with ``tensors`` in its tensor slots, in order.

    An output's tree is joined with its ``call``: what refers to the call's tensors gets them, and
    a cache that was the call's is the call's cache, filled in place. Other caches are built new
    (and appended to ``made``)."""
    return _join(tree, iter(tensors), call, made if made is not None else [])


def _join(tree: Tree, it: Any, call: Flat | None, made: list[Any]) -> Any:
    tag = tree[0]
    if tag == "tensor":
        return next(it)
    if tag == "const":
        return tree[1]
    if tag == "input":
        if call is None:
            raise ValueError("an output's tree is joined with its call")
        return call.tensors[tree[1]][1]
    if tag == "cache":
        source = tree[3]
        if source is not None and call is not None:
            return kv.fill(call.caches[source], tree, lambda c: _join(c, it, call, made))
        cache = kv.build(tree, lambda c: _join(c, it, call, made))
        made.append(cache)
        return cache
    if tag == "map":
        _, kind, keys, children = tree
        values = {k: _join(c, it, call, made) for k, c in zip(keys, children)}
        return values if kind is dict else kind(**values)
    _, kind, named, children = tree
    items = [_join(c, it, call, made) for c in children]
    if named:
        return kind(*items)
    return items if kind is list else tuple(items) if kind is tuple else kind(items)


def output_names(tree: Tree, path: str = "") -> list[str]:
    """The paths of an output tree's tensor slots, in order (the flat model's output names)."""
    tag = tree[0]
    if tag == "tensor":
        return [path or "output"]
    if tag in ("const", "input"):
        return []
    if tag == "cache":
        return [n for child, where in kv.children(tree, path or "output", True) for n in output_names(child, where)]
    here = f"{path}." if path else "output." if tag == "seq" else ""
    keys = tree[2] if tag == "map" else range(len(tree[3]))
    return [n for k, child in zip(keys, tree[3]) for n in output_names(child, f"{here}{k}")]


def tensor_slots(tree: Tree) -> list[tuple[str, int]]:
    """``(dtype, rank)`` of every tensor slot, in order."""
    if tree[0] == "tensor":
        return [(tree[1], tree[2])]
    if tree[0] in ("const", "input"):
        return []
    return [slot for child in tree[-1] for slot in tensor_slots(child)]


def describe_call(tree: Tree, names: list[str]) -> str:
    """A call's tree in words, its tensors named: ``(sample: float32[4d], timestep: int64[0d], return_dict=False)``."""
    (_, _, _, positional), (_, _, keys, keywords) = tree[3]
    it = iter(names)

    def show(child: Tree) -> str:
        if child[0] == "tensor":
            return f"{next(it)}: {describe(child)}"
        if child[0] == "const":
            return repr(child[1])
        for _ in tensor_slots(child):
            next(it)
        return describe(child)

    parts = [show(c) for c in positional]
    parts += [show(c) if c[0] == "tensor" else f"{k}={show(c)}" for k, c in zip(keys, keywords)]
    return "(" + ", ".join(parts) + ")"


def describe(tree: Tree) -> str:
    """A tree in words: ``{sample: float32[4d]}``."""
    tag = tree[0]
    if tag == "tensor":
        return f"{tree[1].removeprefix('torch.')}[{tree[2]}d]"
    if tag == "const":
        return repr(tree[1])
    if tag == "input":
        return f"<input {tree[1]}>"
    if tag == "cache":
        return kv.describe(tree, describe)
    if tag == "map":
        return "{" + ", ".join(f"{k}: {describe(c)}" for k, c in zip(tree[2], tree[3])) + "}"
    return "(" + ", ".join(describe(c) for c in tree[3]) + ")"


def key(tree: Tree) -> str:
    """A short stable name of a structure (the same in every process and run)."""
    return hashlib.sha256(_stable(tree).encode()).hexdigest()[:10]


def _stable(tree: Tree) -> str:
    tag = tree[0]
    if tag == "tensor":
        return f"T({tree[1]},{tree[2]})"
    if tag == "const":
        value = tree[1]
        return f"C({type(value).__qualname__}:{value!r})"
    if tag == "input":
        return f"I({tree[1]})"
    kind = tree[1]
    name = f"{kind.__module__}.{kind.__qualname__}"
    if tag in ("cache", "layer"):
        return f"K({name};{kv.meta_to_json(tree[2])};{tree[3]};{';'.join(_stable(c) for c in tree[4])})"
    if tag == "map":
        return f"M({name};{','.join(tree[2])};{';'.join(_stable(c) for c in tree[3])})"
    return f"S({name};{';'.join(_stable(c) for c in tree[3])})"


def split_call(target: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Flat:
    """The call ``target(*args, **kwargs)`` taken apart; positional tensors are named after the
    parameters they bind to (``sample``, ``timestep``), else ``arg<i>``. :func:`join` gives back
    ``(args, kwargs)``."""
    names = _positional_names(target, len(args))
    walk = _Walk(output=False)
    positional = ("seq", tuple, False, tuple(_split(a, n, walk) for a, n in zip(args, names)))
    keywords = ("map", dict, tuple(kwargs), tuple(_split(v, k, walk) for k, v in kwargs.items()))
    return Flat(("seq", tuple, False, (positional, keywords)), walk.tensors, walk.caches)


def _positional_names(target: Any, count: int) -> list[str]:
    import inspect

    if isinstance(target, torch.nn.Module):
        target = target.forward
    try:
        parameters = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    names = []
    for index in range(count):
        parameter = parameters[index] if index < len(parameters) else None
        if parameter is not None and parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            names.append(parameter.name)
        else:
            names.append(f"arg{index}")
    return names


def to_json(tree: Tree) -> Any:
    """A tree as JSON (``pipeline.json`` keeps it, so a fresh process can serve the structure):
    containers' classes by import path, constants tagged by type."""
    tag = tree[0]
    if tag == "tensor":
        return {"tensor": [tree[1], tree[2]]}
    if tag == "const":
        value = tree[1]
        if value is None or isinstance(value, (bool, int, float, str)):
            return {"const": value}
        if isinstance(value, torch.dtype):
            return {"dtype": str(value)}
        if isinstance(value, torch.device):
            return {"device": str(value)}
        if isinstance(value, enum.Enum):
            return {"enum": _path(type(value)), "value": value.value}
        return {"repr": repr(value)}  # complex, bytes: served by the original module (see from_json)
    if tag == "input":
        return {"input": tree[1]}
    kind = _path(tree[1])
    if tag in ("cache", "layer"):
        items = [to_json(c) for c in tree[4]]
        return {tag: kind, "meta": kv.meta_to_json(tree[2]), "source": tree[3], "items": items}
    if tag == "map":
        return {"map": kind, "keys": list(tree[2]), "items": [to_json(c) for c in tree[3]]}
    return {"seq": kind, "named": tree[2], "items": [to_json(c) for c in tree[3]]}


def from_json(data: Any) -> Tree:
    """The tree :func:`to_json` wrote; classes are imported by their path (never unpickled)."""
    if "tensor" in data:
        return ("tensor", data["tensor"][0], int(data["tensor"][1]))
    if "const" in data:
        return ("const", data["const"])
    if "dtype" in data:
        return ("const", getattr(torch, data["dtype"].removeprefix("torch.")))
    if "device" in data:
        return ("const", torch.device(data["device"]))
    if "enum" in data:
        return ("const", _import(data["enum"])(data["value"]))
    if "input" in data:
        return ("input", int(data["input"]))
    for tag in ("cache", "layer"):
        if tag in data:
            meta = kv.meta_from_json(data["meta"], _import)
            return (tag, _import(data[tag]), meta, data["source"], tuple(from_json(c) for c in data["items"]))
    if "repr" in data:
        raise ValueError(f"a constant {data['repr']} cannot be restored from JSON")
    if "map" in data:
        return ("map", _import(data["map"]), tuple(data["keys"]), tuple(from_json(c) for c in data["items"]))
    return ("seq", _import(data["seq"]), bool(data["named"]), tuple(from_json(c) for c in data["items"]))


def _path(kind: type) -> str:
    return f"{kind.__module__}:{kind.__qualname__}"


def _import(path: str) -> Any:
    import importlib

    module, _, qualname = path.partition(":")
    value: Any = importlib.import_module(module)
    for part in qualname.split("."):
        value = getattr(value, part)
    return value
