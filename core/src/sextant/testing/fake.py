"""A numpy "framework" plugin: enough to drive the whole pipeline with no torch.

Source format ``numpy-mlp``: a :class:`NumpyMLP` object (API) or a ``.npmlp`` file (which declares
its input, so it needs no samples); a :class:`PickledMLP` object is written with ``pickle``, as
torch writes an ``nn.Module``, so loading it from a package needs ``trust_source``. Exporter ``fake-graph`` writes a JSON op list plus weights;
converter ``fake-fp16`` halves the weights' precision; the graph's format names a canonical
fingerprint (``canonical_graph``: ops and weights, not who produced it); runners ``numpy-eager`` (the reference) and
``fake-graph`` (with an ``impl`` option and an ``einsum`` variant).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from sextant.hookspecs import hookimpl
from sextant.runtime import RunnerRequest, StepRequest
from sextant.signature import Signature, TensorSpec
from sextant.specs import ConverterSpec, ExporterSpec, Format, FormatSpec, Param, RunnerSpec, SourceModel

SOURCE = Format("numpy-mlp")
GRAPH = Format("fake-graph")
SUFFIX = ".npmlp"
PICKLE_SUFFIX = ".pkl"


class NumpyMLP:
    """``relu(x @ w1 + b1) @ w2 + b2``, float32."""

    def __init__(self, features: int = 8, hidden: int = 16, outputs: int = 4, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.weights = {
            "w1": rng.standard_normal((features, hidden)).astype(np.float32) / np.sqrt(features),
            "b1": rng.standard_normal(hidden).astype(np.float32),
            "w2": rng.standard_normal((hidden, outputs)).astype(np.float32) / np.sqrt(hidden),
            "b2": rng.standard_normal(outputs).astype(np.float32),
        }

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return _forward(self.weights, x, np.float32)

    def save(self, path: Path) -> Path:
        with path.open("wb") as handle:
            np.savez(handle, **self.weights)
        return path

    @classmethod
    def read(cls, path: Path) -> NumpyMLP:
        model = cls.__new__(cls)
        if path.suffix == PICKLE_SUFFIX:
            model.weights = pickle.loads(path.read_bytes())  # noqa: S301 - see pickled()
            return model
        with np.load(path) as data:
            model.weights = {k: data[k] for k in data.files}
        return model


class PickledMLP(NumpyMLP):
    """A :class:`NumpyMLP` whose source is written as a pickle (``model.pkl``)."""

    def save(self, path: Path) -> Path:
        path = path.with_suffix(PICKLE_SUFFIX)
        path.write_bytes(pickle.dumps(self.weights))
        return path


def pickled(artifact: Path) -> str | None:
    """What ``numpy-eager`` unpickles when it loads ``artifact`` (``RunnerSpec.pickled``)."""
    return f"{artifact.name} is a pickled NumpyMLP (pickle.loads)" if artifact.suffix == PICKLE_SUFFIX else None


def nan_mlp(features: int = 8, hidden: int = 16, outputs: int = 4, seed: int = 0) -> NumpyMLP:
    """An MLP whose outputs are NaN for inputs with a positive first feature (two hidden units go
    to +Inf there and cancel), finite elsewhere: a model that returns NaN for some inputs."""
    model = NumpyMLP(features, hidden, outputs, seed)
    model.weights["w1"][0, :2] = np.inf
    model.weights["w2"][0, :], model.weights["w2"][1, :] = 1.0, -1.0
    return model


def _forward(weights: Mapping[str, np.ndarray], x: np.ndarray, dtype: type, impl: str = "matmul") -> np.ndarray:
    w = {k: v.astype(dtype) for k, v in weights.items()}
    x = x.astype(dtype)
    if impl == "einsum":
        hidden = np.maximum(np.einsum("bi,ih->bh", x, w["w1"]) + w["b1"], 0)
        out = np.einsum("bh,ho->bo", hidden, w["w2"]) + w["b2"]
    else:
        out = np.maximum(x @ w["w1"] + w["b1"], 0) @ w["w2"] + w["b2"]
    return out.astype(np.float32)


def _declared(model: NumpyMLP) -> Signature:
    features = model.weights["w1"].shape[0]
    return Signature((TensorSpec("x", "float32", (None, features)),), call_style="keyword")


@hookimpl
def sextant_load_source(model: object, name: str | None) -> SourceModel | None:
    if isinstance(model, Path) and model.suffix == SUFFIX:
        loaded = NumpyMLP.read(model)
        return SourceModel(
            SOURCE, name or model.stem, lambda folder: loaded.save(folder / "model.npz"), _declared(loaded)
        )
    if isinstance(model, NumpyMLP):
        return SourceModel(SOURCE, name or "numpy-mlp", lambda folder: model.save(folder / "model.npz"))
    return None


@hookimpl
def sextant_register_exporters() -> list[ExporterSpec]:
    return [
        ExporterSpec(
            "fake-graph", SOURCE, GRAPH, run="sextant.testing.fake:export_graph", description="MLP → JSON graph"
        )
    ]


@hookimpl
def sextant_register_converters() -> list[ConverterSpec]:
    return [
        ConverterSpec(
            "fake-fp16",
            GRAPH,
            GRAPH,
            run="sextant.testing.fake:convert_fp16",
            precision="fp16",
            description="weights to float16",
        )
    ]


@hookimpl
def sextant_register_runners() -> list[RunnerSpec]:
    return [
        RunnerSpec(
            "numpy-eager",
            SOURCE,
            load="sextant.testing.fake:load_eager",
            requires=("numpy",),
            reference=True,
            description="the MLP itself",
            pickled="sextant.testing.fake:pickled",
        ),
        RunnerSpec(
            "fake-graph",
            GRAPH,
            load="sextant.testing.fake:load_graph",
            options=(Param("impl", "categorical", ("matmul", "einsum"), "matmul", "how the matrix products run"),),
            variants=({"impl": "einsum"},),
            description="interprets the JSON graph",
        ),
    ]


def export_graph(request: StepRequest) -> Path:
    model = NumpyMLP.read(request.input)
    return write_graph(request.output_dir, model.weights, "float32")


def write_graph(folder: Path, weights: Mapping[str, np.ndarray], dtype: str, producer: str | None = None) -> Path:
    """The graph's folder: ``graph.json`` (its ops, data type and, when given, who produced it:
    metadata, as an ONNX file's producer) and ``weights.npz``."""
    folder.mkdir(parents=True, exist_ok=True)
    graph = {"ops": ["matmul", "add", "relu", "matmul", "add"], "dtype": dtype}
    (folder / "graph.json").write_text(json.dumps({**graph, **({"producer": producer} if producer else {})}))
    np.savez(folder / "weights.npz", **weights)
    return folder


@hookimpl
def sextant_register_formats() -> list[FormatSpec]:
    canonical = "sextant.testing.fake:canonical_graph"
    return [FormatSpec(GRAPH, canonical_hash=canonical, description="the graph's files, not its producer")]


def canonical_graph(artifact: Path) -> str:
    """A fake graph's fingerprint: every file of its folder, ``graph.json`` without its producer."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in artifact.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == "graph.json":
            graph = json.loads(data)
            graph.pop("producer", None)
            data = json.dumps(graph, sort_keys=True).encode()
        digest.update(f"{path.relative_to(artifact)}:{len(data)}:".encode() + data)
    return digest.hexdigest()


def convert_fp16(request: StepRequest) -> Path:
    graph = json.loads((request.input / "graph.json").read_text())
    with np.load(request.input / "weights.npz") as data:
        weights = {k: data[k].astype(np.float16) for k in data.files}
    graph_dtype = "float16" if graph["dtype"] == "float32" else graph["dtype"]
    return write_graph(request.output_dir, weights, graph_dtype)


class _Runner:
    def __init__(self, weights: Mapping[str, np.ndarray], dtype: type, impl: str) -> None:
        self.weights, self.dtype, self.impl = dict(weights), dtype, impl

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        (x,) = inputs.values()
        return {"output_0": _forward(self.weights, x, self.dtype, self.impl)}

    def close(self) -> None:
        self.weights = {}


def load_eager(request: RunnerRequest) -> _Runner:
    return _Runner(NumpyMLP.read(request.artifact).weights, np.float32, "matmul")


def load_graph(request: RunnerRequest) -> _Runner:
    graph = json.loads((request.artifact / "graph.json").read_text())
    with np.load(request.artifact / "weights.npz") as data:
        weights = {k: data[k] for k in data.files}
    return _Runner(weights, np.dtype(graph["dtype"]).type, request.options.get("impl", "matmul"))
