"""What a compiled model runs, hashed (:class:`sextant.api.Fingerprinted`): OpenVINO's runtime
graph, operation by operation in execution order (the layer type, the kernel chosen for it, its
precisions and output layouts, the shapes it makes, which outputs it reads, and the types of the
model's operations fused into it, constants aside: a FullyConnected with a Relu is not one with a
Tanh), and every property of the compiled model but its name. Names (the source graph's node
names) do not count, nor weights: two files OpenVINO compiles to this same graph run at the same
speed, whichever exporter wrote them. It is taken once compiled, before any call: the first call at
a new shape chooses the kernels of a dynamic graph, which are ``undef`` until then.

On the README's three models: ResNet-18's five OpenVINO candidates (the ONNX files of torch's two
exporters, onnxslim's rewrites of them, OpenVINO's IR of the torch.export program) compile to one
graph; the MLP's four too (the TorchScript-based export's Erf arithmetic is fused into the Gelu
the dynamo export writes: :func:`op_types`); of the encoder's five, the dynamo export and its
rewrite share one.
"""

from __future__ import annotations

import hashlib
from typing import Any

#: what each runtime operation says about how it runs (of its runtime info)
RUNS_AS = ("layerType", "primitiveType", "runtimePrecision", "outputPrecisions", "outputLayouts")
#: properties of a compiled model that say nothing about how it runs
NAMES = frozenset({"NETWORK_NAME", "SUPPORTED_PROPERTIES"})


def op_types(model: Any) -> dict[str, str]:
    """Each operation's type in an ``openvino.Model``, by its name: what a runtime operation fused.
    Where OpenVINO's common fusions make one operation of several, the fused one's type counts
    under the name it keeps: the TorchScript-based exporter's Gelu, written as an Erf with its
    arithmetic, is a Gelu to the CPU plugin (the MLP's FullyConnected fuses it under the last
    Multiply's name), as the dynamo exporter's Gelu operation is. Those fusions run on a copy
    (0.01 s on the MLP, 0.07 s on the encoder); without them, the types as read."""
    types = {op.get_friendly_name(): op.get_type_name() for op in model.get_ordered_ops()}
    try:
        from openvino._offline_transformations import apply_moc_transformations

        fused = model.clone()
        apply_moc_transformations(fused, cf=False)
    except Exception:  # noqa: BLE001 - an OpenVINO without them: the types as read, a fingerprint that merges less
        return types
    types.update((op.get_friendly_name(), op.get_type_name()) for op in fused.get_ordered_ops())
    return types


def fingerprint(compiled: Any, types: dict[str, str]) -> str | None:
    """The hash of ``compiled``'s runtime graph and properties (``types``: :func:`op_types` of the
    model it was compiled from); ``None`` when OpenVINO cannot give them."""
    try:
        graph = compiled.get_runtime_model()
        properties = sorted(set(compiled.get_property("SUPPORTED_PROPERTIES")) - NAMES)
        settings = [f"{name}={_property(compiled, name)}" for name in properties]
    except Exception:  # noqa: BLE001 - an OpenVINO without a runtime model: no fingerprint, every candidate measured
        return None
    position: dict[int, int] = {}
    lines = list(settings)
    for index, op in enumerate(graph.get_ordered_ops()):
        position[op.get_instance_id()] = index
        info = op.get_rt_info()
        runs_as = [str(info[key].astype(str)) if key in info else "" for key in RUNS_AS]
        fused = str(info["originalLayersNames"].astype(str)) if "originalLayersNames" in info else ""
        if runs_as[0] != "Const":  # a constant is what it holds, however it was folded (from a Range, say)
            runs_as.append("+".join(types.get(name, "?") for name in fused.split(",") if name))  # "?": OpenVINO's
        reads = [
            (position.get(port.get_source_output().get_node().get_instance_id()), port.get_source_output().get_index())
            for port in op.inputs()
        ]
        shapes = [str(port.get_partial_shape()) for port in op.outputs()]
        lines.append(f"{op.get_type_name()}|{'|'.join(runs_as)}|{reads}|{shapes}")
    return "openvino-cpu:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _property(compiled: Any, name: str) -> str:
    try:
        return str(compiled.get_property(name))
    except Exception:  # noqa: BLE001 - a property the plugin lists but cannot read: the same for every compile
        return "?"
