"""The canonical fingerprint of an ONNX file (``FormatSpec.canonical_hash`` of ``onnx``).

Two exporters of one model (torch's TorchScript-based and dynamo-based ones, or one exporter in two
versions) often write the same graph in files that differ only in what does not change what runs:
the producer's name and version, doc strings, metadata, the graph's and nodes' names, the names of
the values between nodes and of the weights, the order of the weights, the shapes inferred for
intermediate values. The fingerprint hashes the model with all of that normalised:

- model: producer, version, domain, doc string and metadata cleared; opset imports sorted; the IR
  version cleared from 4 on (what it changes since is the file format, not what an op computes);
- graph (and every subgraph of a node attribute): its name, doc string and ``value_info`` cleared;
- names: the main graph's inputs and outputs keep theirs (callers feed and read them by name), as
  do sparse weights;
  a weight (initializer) is named by its content, so two weights are one name only when they hold
  the same values; every other value is named by the order in which the nodes first use it;
- nodes: name, doc string and metadata cleared; op, domain, attributes (a tensor attribute's
  values included) and the order of the nodes kept; attributes sorted by name, and one that states
  its op's default value (``transA=0`` on a Gemm) left out, as the op's schema says;
- weights: hashed by their content (data type, shape, raw bytes), then sorted.

So two files have one fingerprint only when one is the other up to those renamings: the same
computation. What a normalisation cannot see through (nodes in another order, another
decomposition of an op, weights stored as typed values in one file and raw bytes in the other)
gives another fingerprint, and the two are measured as different candidates: a missed duplicate,
never a false one. Weights are hashed as raw bytes (no conversion to Python values), so a file of
tens of MB takes a fraction of a second, most of it reading the file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

#: bump when the canonical form changes (fingerprints of different versions never compare equal)
VERSION = b"sextant-onnx-canonical-1\n"
#: prefix of the names the canonical form gives; no name in a real file holds a NUL character
_PREFIX = "\x00"


def canonical_hash(artifact: Path) -> str:
    """The fingerprint of the ONNX model at ``artifact`` (a ``.onnx`` file, or a folder holding
    exactly one), its external data read from beside it."""
    import onnx

    path = _model_file(Path(artifact))
    model = onnx.load(str(path), load_external_data=True)
    canonical_model(model)
    return hashlib.blake2b(VERSION + model.SerializeToString(deterministic=True), digest_size=32).hexdigest()


def canonical_model(model: Any) -> Any:
    """``model`` (an ``onnx.ModelProto``) in canonical form, changed in place and returned. A
    model with training information (which names weights) is refused: its bytes are compared."""
    if len(model.training_info):
        raise ValueError("a model with training_info has no canonical form here")
    for field in ("producer_name", "producer_version", "domain", "doc_string"):
        model.ClearField(field)
    if model.ir_version >= 4:  # from IR 4 on an initializer need not be an input: no change in meaning since
        model.ClearField("ir_version")
    model.ClearField("model_version")
    del model.metadata_props[:]
    opsets = sorted(((o.domain, o.version) for o in model.opset_import))
    del model.opset_import[:]
    for domain, version in opsets:
        entry = model.opset_import.add()
        entry.domain, entry.version = domain, version
    for function in model.functions:
        function.ClearField("doc_string")
    graph = model.graph
    names = _Names({v.name for v in graph.input} | {v.name for v in graph.output})
    _canonical_graph(graph, names, {o.domain or "": o.version for o in model.opset_import})
    return model


class _Names:
    """The canonical name of each value: kept (``protected``), by content (weights), or by order of
    first use."""

    def __init__(self, protected: set[str]) -> None:
        self.protected = protected
        self.given: dict[str, str] = {}
        self.values = 0

    def weight(self, name: str, content: bytes) -> str:
        new = name if name in self.protected else f"{_PREFIX}w{content.hex()}"
        self.given[name] = new
        return new

    def __call__(self, name: str) -> str:
        if not name or name in self.protected:
            return name  # "": an optional input left out
        if name not in self.given:
            self.given[name] = f"{_PREFIX}v{self.values}"
            self.values += 1
        return self.given[name]


def _canonical_graph(graph: Any, names: _Names, opsets: dict[str, int]) -> None:
    import onnx

    graph.ClearField("name")
    graph.ClearField("doc_string")
    del graph.value_info[:]
    _clear_metadata(graph)
    for sparse in graph.sparse_initializer:  # kept as they are, so they keep their names
        names.protected.add(sparse.values.name)
    weights = {}
    for tensor in graph.initializer:
        content = _content(tensor)
        stub = onnx.TensorProto()
        stub.name = names.weight(tensor.name, content)
        stub.data_type = tensor.data_type
        stub.dims.extend(tensor.dims)
        stub.raw_data = content
        weights[stub.name] = stub
    del graph.initializer[:]
    graph.initializer.extend(weights[name] for name in sorted(weights))
    for value in graph.input:
        value.ClearField("doc_string")
        _clear_metadata(value)
        value.name = names(value.name)
    for node in graph.node:
        node.ClearField("name")
        node.ClearField("doc_string")
        _clear_metadata(node)
        for i, name in enumerate(node.input):
            node.input[i] = names(name)
        for attribute in node.attribute:
            _canonical_attribute(attribute, names, opsets)
        _sort_attributes(node, opsets)
        for i, name in enumerate(node.output):
            node.output[i] = names(name)
    for value in graph.output:
        value.ClearField("doc_string")
        _clear_metadata(value)
        value.name = names(value.name)


def _canonical_attribute(attribute: Any, names: _Names, opsets: dict[str, int]) -> None:
    attribute.ClearField("doc_string")
    if attribute.HasField("g"):
        _canonical_graph(attribute.g, names, opsets)
    for graph in attribute.graphs:
        _canonical_graph(graph, names, opsets)
    if attribute.HasField("t"):
        _canonical_tensor(attribute.t)
    for tensor in attribute.tensors:
        _canonical_tensor(tensor)


def _sort_attributes(node: Any, opsets: dict[str, int]) -> None:
    """The node's attributes by name, without those equal to their default in the op's schema (at
    the model's opset); a node of an op with no known schema keeps all of them."""
    import onnx

    defaults = {}
    domain = node.domain or ""
    if domain in ("", "ai.onnx") and domain in opsets:
        try:
            schema = onnx.defs.get_schema(node.op_type, opsets[domain], domain)
        except onnx.defs.SchemaError:
            schema = None
        if schema is not None:
            defaults = {n: a.default_value for n, a in schema.attributes.items() if a.default_value.type}
    kept = [a for a in node.attribute if not (a.name in defaults and _same_value(a, defaults[a.name]))]
    kept = sorted((_copy(a) for a in kept), key=lambda a: a.name)
    del node.attribute[:]
    node.attribute.extend(kept)


def _same_value(attribute: Any, default: Any) -> bool:
    """Whether an attribute holds its default value (a scalar, string or list; never a graph or tensor)."""
    if attribute.type != default.type:
        return False
    field = {1: "f", 2: "i", 3: "s", 6: "floats", 7: "ints", 8: "strings"}.get(attribute.type)
    return field is not None and getattr(attribute, field) == getattr(default, field)


def _copy(proto: Any) -> Any:
    copy = type(proto)()
    copy.CopyFrom(proto)
    return copy


def _canonical_tensor(tensor: Any) -> None:
    """A tensor attribute's values stay; its name and doc string go."""
    tensor.ClearField("name")
    tensor.ClearField("doc_string")


def _content(tensor: Any) -> bytes:
    """A digest of a weight's data type, shape and values: its raw bytes when it has them, else
    its typed values as serialized (never equal for different values; maybe unequal for equal
    values stored differently, which only misses a duplicate)."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{tensor.data_type}:{list(tensor.dims)}:".encode())
    raw = tensor.raw_data
    if raw:
        digest.update(b"raw:")
        digest.update(raw)
    else:
        typed = type(tensor)()
        typed.CopyFrom(tensor)
        for field in ("name", "doc_string", "dims", "data_type"):
            typed.ClearField(field)
        digest.update(b"typed:")
        digest.update(typed.SerializeToString(deterministic=True))
    return digest.digest()


def _clear_metadata(proto: Any) -> None:
    if "metadata_props" in type(proto).DESCRIPTOR.fields_by_name:  # onnx >= 1.16
        del proto.metadata_props[:]


def _model_file(path: Path) -> Path:
    if path.is_file():
        return path
    found = sorted(path.glob("*.onnx"))
    if len(found) != 1:
        raise ValueError(f"{path}: expected one .onnx file, found {len(found)}")
    return found[0]
