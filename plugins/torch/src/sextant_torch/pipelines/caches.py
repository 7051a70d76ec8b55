"""Transformers' key/value caches in a call's structure (see :mod:`.structure`).

transformers 5 passes a decoder's cache as an object (``past_key_values=EncoderDecoderCache(...)``)
that the model grows in place (``cache.update`` concatenates each layer's new keys and values) and
returns. A cache becomes a node of the tree, ``("cache", class, meta, source, children)``: its layout
(the cache's class, its layers' classes, which layers hold tensors, an ``EncoderDecoderCache``'s
``is_updated`` flags) is kept, and its layers' keys and values are tensor slots, named
``past_key_values.self.0.key`` in a call and ``past_key_values.self.0.present_key`` in an output
(ONNX wants the two names apart). An empty cache (the first decoding step) and a filled one (every
later step) are thus two structures. ``source`` is, in an output, the index of the call's cache that
the output is (the same object), so that serving fills the caller's cache in place and returns it,
as the model does.

Only ``DynamicCache`` and ``EncoderDecoderCache`` of ``DynamicLayer`` are recorded (without
offloading): other caches (static, sliding-window, quantized) keep state beyond their tensors.
transformers is never imported here: a value can only be a cache when transformers is loaded.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

Node = tuple[Any, ...]
Split = Callable[[Any, str], Node]


class UnsupportedCache(TypeError):
    """A transformers cache of a kind whose state is more than its layers' tensors."""


def is_cache(value: Any) -> bool:
    module = sys.modules.get("transformers.cache_utils")
    return module is not None and isinstance(value, module.Cache)


def split(cache: Any, path: str, output: bool, child: Split) -> Node:
    """The node of ``cache``; ``child(tensor, path)`` makes each key's and value's node."""
    from transformers.cache_utils import DynamicCache, DynamicLayer, EncoderDecoderCache

    kind = type(cache)
    if kind is EncoderDecoderCache:
        updated = tuple(sorted((int(i), bool(v)) for i, v in cache.is_updated.items()))
        children = (
            split(cache.self_attention_cache, f"{path}.self", output, child),
            split(cache.cross_attention_cache, f"{path}.cross", output, child),
        )
        return ("cache", kind, (("is_updated", updated),), None, children)
    if kind is not DynamicCache or cache.offloading:
        raise UnsupportedCache(f"{kind.__name__}{' with offloading' if cache.offloading else ''}")
    names = ("present_key", "present_value") if output else ("key", "value")
    layers = []
    for index, layer in enumerate(cache.layers):
        if type(layer) is not DynamicLayer:
            raise UnsupportedCache(f"{kind.__name__} with a {type(layer).__name__}")
        filled = layer.is_initialized and layer.keys is not None and layer.keys.numel() > 0
        tensors = (layer.keys, layer.values) if filled else ()
        items = tuple(child(t, f"{path}.{index}.{n}") for t, n in zip(tensors, names))
        layers.append(("layer", type(layer), (), None, items))
    return ("cache", kind, (("replicate", cache.layer_class_to_replicate),), None, tuple(layers))


def build(node: Node, child: Callable[[Node], Any]) -> Any:
    """A new cache of ``node``'s layout; ``child(node)`` gives each key's and value's tensor."""
    _, kind, meta, _, children = node
    options = dict(meta)
    if "is_updated" in options:
        cache = kind(build(children[0], child), build(children[1], child))
        cache.is_updated = dict(options["is_updated"])
        return cache
    cache = kind()
    cache.layers = [_layer(layer, child) for layer in children]
    cache.layer_class_to_replicate = options["replicate"]
    return cache


def _layer(node: Node, child: Callable[[Node], Any]) -> Any:
    layer = node[1]()
    if node[4]:
        keys, values = (child(c) for c in node[4])
        layer.lazy_initialization(keys, values)
        layer.keys, layer.values = keys, values
    return layer


def fill(cache: Any, node: Node, child: Callable[[Node], Any]) -> Any:
    """Put ``node``'s state into the existing ``cache`` in place (as the model's ``update`` calls
    would have left it) and return the cache."""
    _, _, meta, _, children = node
    options = dict(meta)
    if "is_updated" in options:
        fill(cache.self_attention_cache, children[0], child)
        fill(cache.cross_attention_cache, children[1], child)
        cache.is_updated = dict(options["is_updated"])
        return cache
    for index, layer_node in enumerate(children):
        if index >= len(cache.layers):
            cache.layers.append(layer_node[1]())
        layer = cache.layers[index]
        if layer_node[4]:
            keys, values = (child(c) for c in layer_node[4])
            if not layer.is_initialized:
                layer.lazy_initialization(keys, values)
            layer.keys, layer.values = keys, values
    return cache


def children(node: Node, path: str, output: bool) -> list[tuple[Node, str]]:
    """The nodes directly below a cache's (an ``EncoderDecoderCache``'s two caches, a
    ``DynamicCache``'s keys and values), with their paths as :func:`split` names them."""
    _, _, meta, _, nodes = node
    if "is_updated" in dict(meta):
        return [(nodes[0], f"{path}.self"), (nodes[1], f"{path}.cross")]
    names = ("present_key", "present_value") if output else ("key", "value")
    return [(item, f"{path}.{index}.{n}") for index, layer in enumerate(nodes) for item, n in zip(layer[4], names)]


def meta_to_json(meta: tuple[tuple[str, Any], ...]) -> list[Any]:
    """A cache node's layout options as JSON (classes by import path)."""
    out: list[Any] = []
    for name, value in meta:
        if name == "replicate":
            value = None if value is None else f"{value.__module__}:{value.__qualname__}"
        elif name == "is_updated":
            value = [list(item) for item in value]
        out.append([name, value])
    return out


def meta_from_json(data: list[Any], load: Callable[[str], Any]) -> tuple[tuple[str, Any], ...]:
    meta = []
    for name, value in data:
        if name == "replicate":
            value = None if value is None else load(value)
        elif name == "is_updated":
            value = tuple((int(i), bool(v)) for i, v in value)
        meta.append((name, value))
    return tuple(meta)


def describe(node: Node, show: Callable[[Node], str]) -> str:
    """``EncoderDecoderCache(self: 2 layers float32[4d], cross: 2 empty layers, is_updated=...)``."""
    _, kind, meta, _, children = node
    options = dict(meta)
    if "is_updated" in options:
        flags = {v for _, v in options["is_updated"]}
        updated = f", is_updated={flags.pop()}" if len(flags) == 1 else f", is_updated={options['is_updated']}"
        return f"{kind.__name__}(self: {_layers(children[0], show)}, cross: {_layers(children[1], show)}{updated})"
    return f"{kind.__name__}({_layers(node, show)})"


def _layers(node: Node, show: Callable[[Node], str]) -> str:
    layers = node[4]
    filled = [layer for layer in layers if layer[4]]
    if not filled:
        return f"{len(layers)} empty layers"
    first = show(filled[0][4][0])
    if len(filled) == len(layers):
        return f"{len(layers)} layers {first}"
    return f"{len(filled)} of {len(layers)} layers {first}"
