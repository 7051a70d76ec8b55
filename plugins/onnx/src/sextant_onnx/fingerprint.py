"""What an ONNX Runtime session on the CPU runs, hashed (:class:`sextant.api.Fingerprinted`).

ONNX Runtime rewrites a graph when it creates a session (constant folding, fusions, the CPU's
blocked ``nchwc`` layouts), and different files often end as one graph: on ResNet-18 the dynamo
export and onnxslim's rewrite of it, and the TorchScript-based export and its rewrite; on the MLP
the TorchScript-based export and its rewrite. Measuring both measures one thing twice.

:func:`fingerprint` asks ONNX Runtime for the graph it optimised (a second session with the runner's
options and ``optimized_model_filepath``; the weights written apart, never read back) and hashes it
the way the runtime sees it, not the way the file spells it:

- each node is hashed from its op and domain, its attributes, and what it reads: another node's
  hash and output index, a graph input's position, or a weight's data type and shape (its values
  too when it has at most :data:`SMALL` elements: a shape, axes, pads);
- the graph's hash is the sorted multiset of its nodes' hashes and what its outputs read, with
  the runner's settings that change speed without changing the graph (threads, execution mode,
  spinning: ``settings``).

So names, the order of nodes in the file (two branches written the other way round) and the
values of large weights do not count (the candidates' outputs are judged each on their own);
anything else does. A graph with subgraphs (``If``, ``Loop``, ``Scan``) gets no fingerprint, nor
does one ONNX Runtime cannot write back: those candidates are all measured.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: bump when the hashed form changes (fingerprints of different versions never compare equal)
VERSION = "onnxruntime-cpu-1"
#: a weight of at most this many elements is hashed with its values: a shape, axes or pads, not a layer's weights
SMALL = 8
#: attribute types that hold a graph (``onnx.AttributeProto.GRAPH``, ``GRAPHS``)
_SUBGRAPHS = (5, 10)


def fingerprint(artifact: Path, session_options: Callable[[], Any], settings: str) -> str | None:
    """The hash of the graph ONNX Runtime's CPU provider runs for ``artifact`` with the options
    ``session_options()`` makes (a fresh ``SessionOptions`` each call), and ``settings``; ``None``
    when it has subgraphs."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="sextant-ort-fingerprint-") as folder:
        written = Path(folder) / "optimized.onnx"
        so = session_options()
        so.optimized_model_filepath = str(written)
        so.add_session_config_entry("session.optimized_model_external_initializers_file_name", "weights.bin")
        so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        ort.InferenceSession(str(artifact), so, providers=["CPUExecutionProvider"])
        graph = onnx.load(str(written), load_external_data=False).graph
    return graph_hash(graph, settings)


def graph_hash(graph: Any, settings: str) -> str | None:
    """The hash of an ``onnx.GraphProto`` (module doc); ``None`` when a node holds a subgraph."""
    reads: dict[str, str] = {value.name: f"input{i}" for i, value in enumerate(graph.input)}
    reads.update((weight.name, f"weight{_tensor(weight)}") for weight in graph.initializer)
    nodes = []
    for node in _in_order(graph.node):
        if any(a.type in _SUBGRAPHS for a in node.attribute):
            return None
        attributes = sorted((a.name, _attribute(a)) for a in node.attribute)
        body = f"{node.domain}:{node.op_type}|{[reads.get(name, '') for name in node.input]}|{attributes}"
        digest = hashlib.sha256(body.encode()).hexdigest()
        for index, name in enumerate(node.output):
            reads[name] = f"{digest}.{index}"
        nodes.append(digest)
    outputs = [reads.get(value.name, "?") for value in graph.output]
    lines = [VERSION, settings, *sorted(nodes), *outputs]
    return f"{VERSION}:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _in_order(nodes: Any) -> list[Any]:
    """The nodes in an order where each comes after those whose outputs it reads (ONNX Runtime
    writes them so; this does not rely on it). A cycle, which no valid graph has, leaves its nodes
    at the end."""
    nodes = list(nodes)
    producer = {name: index for index, node in enumerate(nodes) for name in node.output}
    waits = [{producer[name] for name in node.input if name in producer} - {index} for index, node in enumerate(nodes)]
    users: dict[int, list[int]] = {}
    for index, needed in enumerate(waits):
        for other in needed:
            users.setdefault(other, []).append(index)
    ready = deque(index for index, needed in enumerate(waits) if not needed)
    ordered: list[int] = []
    while ready:
        index = ready.popleft()
        ordered.append(index)
        for user in users.get(index, []):
            waits[user].discard(index)
            if not waits[user]:
                ready.append(user)
    done = set(ordered)
    return [nodes[index] for index in ordered + [i for i in range(len(nodes)) if i not in done]]


def _attribute(attribute: Any) -> str:
    """An attribute's value as text; a tensor's as :func:`_tensor` gives it."""
    from onnx import helper

    if attribute.HasField("t"):
        return f"tensor{_tensor(attribute.t)}"
    return str(helper.get_attribute_value(attribute))


def _tensor(tensor: Any) -> str:
    """A weight or tensor attribute as text: its data type and shape, and its values when it has at
    most :data:`SMALL` elements held in the file (not external data)."""
    from onnx import numpy_helper

    shape = list(tensor.dims)
    small = tensor.data_location != 1 and math.prod(shape) <= SMALL  # 1: EXTERNAL
    return f"{tensor.data_type}{shape}" + (numpy_helper.to_array(tensor).tobytes().hex() if small else "")
