"""TensorFlow and Keras source models: reading their declared signature and writing them so that the
child processes can load them.

A Keras model object is saved as a ``.keras`` file. Classes that a fresh process could not import
(defined in a script or in a ``file.py:factory`` file) are pickled by value with cloudpickle into
``custom_objects.pkl`` beside it and handed to ``keras.models.load_model``; they still need Keras'
``get_config`` to rebuild. A ``tf.function`` is saved as a SavedModel whose serving signature is
the function. A SavedModel folder is copied; the signature sextant uses is recorded in
``sextant-signature.txt`` inside the copy when it is not ``serving_default``.

Keras files are read in Keras' safe mode, which refuses Lambda layers (they hold Python bytecode).
``--source-option safe_mode=false`` (``source_options={"safe_mode": "false"}``) is the explicit
opt-in for a model you trust: the source is then read, here and in the children, with
``safe_mode=False``, and a marker beside it (``sextant_tensorflow.checks.UNSAFE_MARKER``) says so,
so that loading it later from the package needs ``trust_source`` like a pickle.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cloudpickle
import keras
import numpy as np
import tensorflow as tf
from sextant.api import (
    KERAS,
    TF_SAVEDMODEL,
    ModelLoadError,
    Signature,
    SourceModel,
    TensorSpec,
    UsageError,
    is_user_module,
)

from sextant_tensorflow.checks import CUSTOM_OBJECTS, UNSAFE_MARKER

KERAS_FILE = "model.keras"
SIGNATURE_FILE = "sextant-signature.txt"
SERVING = "serving_default"


# -- Keras ----------------------------------------------------------------------------------------


def _custom_classes(model: keras.Model) -> dict[str, type]:
    """Layer and model classes defined where a child process cannot import them."""
    found = {}
    for layer in [model, *model._flatten_layers(include_self=False)]:
        cls = type(layer)
        module = cls.__module__
        if is_user_module(module):
            cloudpickle.register_pickle_by_value(sys.modules[module])
            found[cls.__name__] = cls
    return found


def custom_objects(path: Path) -> dict[str, type] | None:
    """The custom classes pickled beside a ``.keras`` file, if any."""
    extra = path.parent / CUSTOM_OBJECTS
    return cloudpickle.loads(extra.read_bytes()) if extra.exists() else None


def read_keras(path: Path) -> keras.Model:
    """Load a ``.keras`` file written by a source loader (with its pickled custom classes; in
    Keras' safe mode unless the source was given with ``safe_mode=false``)."""
    safe = not (path.parent / UNSAFE_MARKER).exists()
    return keras.models.load_model(path, custom_objects=custom_objects(path), compile=False, safe_mode=safe)


def keras_safe_mode(options: Mapping[str, str]) -> tuple[bool, dict[str, str]]:
    """Keras' ``safe_mode`` from ``--source-option safe_mode=true|false`` (default true), and the
    options used (so an unused one is an error, never silently ignored)."""
    if "safe_mode" not in options:
        return True, {}
    value = str(options["safe_mode"]).strip().lower()
    if value not in ("true", "false"):
        raise UsageError(f"--source-option safe_mode={options['safe_mode']}: give true or false")
    return value == "true", {"safe_mode": value}


def _mark_unsafe(folder: Path, safe: bool) -> None:
    if not safe:
        (folder / UNSAFE_MARKER).write_text("read with keras safe_mode=False (--source-option safe_mode=false)\n")


def keras_signature(model: keras.Model) -> Signature | None:
    """What a built functional model declares: its ``Input`` names, dtypes and shapes."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None  # a subclassed model that was never built on inputs: samples are needed
    if not inputs:
        return None
    specs = tuple(
        TensorSpec(t.name.split(":")[0], tf.dtypes.as_dtype(t.dtype).name, tuple(t.shape), batched=len(t.shape) > 0)
        for t in inputs
    )
    keyword = isinstance(getattr(model, "_inputs_struct", None), Mapping)
    return Signature(specs, call_style="keyword" if keyword else "positional")


def keras_fingerprint(model: keras.Model) -> str:
    """Changes with the architecture, the weights and the source of custom classes (a saved
    ``.keras`` file cannot serve: it records when it was saved)."""
    sha = hashlib.sha256(model.to_json().encode())
    for cls in sorted({type(layer) for layer in model._flatten_layers()}, key=lambda c: c.__qualname__):
        sha.update(f"{cls.__module__}.{cls.__qualname__}".encode())
        with contextlib.suppress(OSError, TypeError):
            sha.update(inspect.getsource(cls).encode())
    for weight in model.weights:
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
        sha.update(f"{weight.path}:{value.dtype}:{value.shape}".encode())
        sha.update(value.tobytes())
    return sha.hexdigest()


def keras_object_source(model: keras.Model, name: str | None, options: Mapping[str, str]) -> SourceModel:
    safe, used = keras_safe_mode(options)

    def write(folder: Path) -> Path:
        custom = _custom_classes(model)
        path = folder / KERAS_FILE
        try:
            model.save(path)
            _mark_unsafe(folder, safe)
            if custom:
                (folder / CUSTOM_OBJECTS).write_bytes(cloudpickle.dumps(custom))
                read_keras(path)  # fail here, with the reason, rather than in every child
        except Exception as exc:
            raise ModelLoadError(
                f"cannot save the Keras model {model.name!r} for the isolated steps: {type(exc).__name__}: {exc}",
                hint="Custom layers and models need get_config() returning their constructor arguments "
                "(https://keras.io/guides/serialization_and_saving/).",
            ) from exc
        return path

    return SourceModel(
        KERAS,
        name or model.name,
        write,
        signature=keras_signature(model),
        description="Keras model",
        fingerprint=lambda: keras_fingerprint(model),
        options=used,
    )


def keras_file_source(path: Path, name: str | None, options: Mapping[str, str]) -> SourceModel:
    safe, used = keras_safe_mode(options)
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=safe)
    except Exception as exc:
        if safe and "safe_mode" in str(exc):
            raise ModelLoadError(
                f"{path} holds code (a Lambda layer) that Keras' safe mode refuses to load: {exc}",
                hint="Loading it runs that code. If you trust the file, pass --source-option safe_mode=false "
                '(Python: source_options={"safe_mode": "false"}).',
            ) from exc
        raise ModelLoadError(
            f"{path} is not a loadable Keras model: {type(exc).__name__}: {exc}",
            hint="A model with custom layers must be given as file.py:factory (so sextant can import "
            "the classes), or register them with keras.saving.register_keras_serializable.",
        ) from exc

    def write(folder: Path) -> Path:
        target = folder / (KERAS_FILE if path.suffix == ".keras" else path.name)
        shutil.copy2(path, target)
        _mark_unsafe(folder, safe)
        return target

    return SourceModel(
        KERAS, name or path.stem, write, signature=keras_signature(model), description="Keras file", options=used
    )


# -- SavedModel -----------------------------------------------------------------------------------


def signature_defs(folder: Path) -> Mapping[str, Any]:
    """The SavedModel's signatures (``SignatureDef`` protos), read without loading the variables."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString((folder / "saved_model.pb").read_bytes())
    except Exception as exc:
        raise ModelLoadError(f"{folder}/saved_model.pb is not a readable SavedModel: {exc}") from exc
    for graph in proto.meta_graphs:
        if "serve" in graph.meta_info_def.tags or len(proto.meta_graphs) == 1:
            return {k: v for k, v in graph.signature_def.items() if not k.startswith("__")}
    return {}


def choose_signature(folder: Path, wanted: str | None) -> str:
    available = sorted(signature_defs(folder))
    hint = f"Choose one with --source-option signature=NAME; this SavedModel has: {', '.join(available) or 'none'}."
    if wanted is not None:
        if wanted not in available:
            raise UsageError(f"{folder} has no signature {wanted!r}", hint=hint)
        return wanted
    if SERVING in available:
        return SERVING
    if len(available) == 1:
        return available[0]
    raise ModelLoadError(
        f"{folder} has {'no signatures' if not available else 'several signatures and none is ' + SERVING}",
        hint=hint if available else "Save it with tf.saved_model.save(obj, path, signatures=...).",
    )


def signature_name(folder: Path) -> str:
    """The signature a SavedModel artifact is used through (see module doc)."""
    recorded = folder / SIGNATURE_FILE
    return recorded.read_text().strip() if recorded.exists() else SERVING


def _tensor_spec(name: str, info: Any) -> TensorSpec:
    dtype = tf.dtypes.as_dtype(info.dtype).name
    if info.tensor_shape.unknown_rank:
        raise ModelLoadError(f"signature input {name!r} has an unknown rank; sextant needs the number of axes")
    shape = tuple(d.size if d.size >= 0 else None for d in info.tensor_shape.dim)
    return TensorSpec(name, dtype, shape, batched=len(shape) > 0)


def declared_signature(folder: Path, signature: str) -> Signature:
    sig = signature_defs(folder)[signature]
    inputs = tuple(_tensor_spec(name, sig.inputs[name]) for name in sorted(sig.inputs))
    fixed = [t.shape[0] for t in inputs if t.shape and t.shape[0] is not None]
    return Signature(inputs, call_style="keyword", max_batch=min(fixed) if fixed else None)


def savedmodel_source(folder: Path, name: str | None, options: Mapping[str, str]) -> SourceModel:
    unknown = set(options) - {"signature"}
    if unknown:
        raise UsageError(f"--source-option {', '.join(sorted(unknown))}: a SavedModel takes only signature=NAME")
    signature = choose_signature(folder, options.get("signature"))

    def write(target: Path) -> Path:
        copy = target / folder.name
        shutil.copytree(folder, copy)
        if signature != SERVING:
            (copy / SIGNATURE_FILE).write_text(signature + "\n")
        return copy

    used = {"signature": options["signature"]} if "signature" in options else {}
    return SourceModel(
        TF_SAVEDMODEL,
        name or folder.name,
        write,
        signature=declared_signature(folder, signature),
        description=f"SavedModel (signature {signature})",
        options=used,
    )


# -- tf.function ----------------------------------------------------------------------------------


def function_source(function: Any, name: str | None) -> SourceModel:
    if not function.input_signature:
        raise ModelLoadError(
            "a tf.function needs an input_signature to be optimized",
            hint="Decorate it with @tf.function(input_signature=[tf.TensorSpec([None, ...], tf.float32, name='x')]).",
        )
    concrete = function.get_concrete_function()
    holder = tf.Module()
    holder.function = function
    holder.captured = list(concrete.variables)  # track what the function closes over, or saving fails
    staged = Path(tempfile.mkdtemp(prefix="sextant-tf-function-"))
    try:
        tf.saved_model.save(holder, str(staged / "saved"), signatures={SERVING: concrete})
    except Exception as exc:
        shutil.rmtree(staged, ignore_errors=True)
        raise ModelLoadError(
            f"cannot save the tf.function {function.__name__!r} as a SavedModel: {type(exc).__name__}: {exc}",
            hint="A signature must return a tensor, a list or a dict of tensors.",
        ) from exc
    signature = declared_signature(staged / "saved", SERVING)

    def write(target: Path) -> Path:
        copy = target / "saved_model"
        shutil.copytree(staged / "saved", copy)
        shutil.rmtree(staged, ignore_errors=True)
        return copy

    return SourceModel(TF_SAVEDMODEL, name or function.__name__, write, signature=signature, description="tf.function")
