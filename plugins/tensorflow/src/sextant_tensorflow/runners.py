"""Runners: Keras models (eager, ``tf.function``, XLA; mixed precision) and SavedModel signatures
(graph, XLA), on the CPU or the first GPU.

TensorFlow's thread pools are sized before its runtime starts, which happens in the child process
at load: intra-op threads follow the request, inter-op threads the ``inter_op_threads`` option.
Outputs come back as float32 numpy arrays named as in ``sextant_tensorflow.tensors``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from sextant.api import RunnerRequest, Signature, StepError

from sextant_tensorflow.source import custom_objects, read_keras, signature_name
from sextant_tensorflow.tensors import model_inputs, tensor_specs, to_numpy

_MIXED = {"bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


class TFRunner:
    """Calls a TensorFlow callable that takes the signature's inputs in order."""

    def __init__(self, function: Callable[..., Any], request: RunnerRequest, device: str) -> None:
        self.function = function
        self.signature: Signature = request.signature
        self.device = device

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        with tf.device(self.device):
            tensors = [tf.convert_to_tensor(inputs[name]) for name in self.signature.input_names]
            result = self.function(*tensors)
        return to_numpy(result, self.signature)

    def close(self) -> None:
        self.function = None


def _setup(request: RunnerRequest) -> str:
    """Size the thread pools and pick the device; returns TensorFlow's device name.

    In a process where TensorFlow already runs (``sextant.load(...).best().load()`` in a user's
    program) the pools and visible devices are fixed: they stay as they are."""
    with contextlib.suppress(RuntimeError):
        tf.config.threading.set_intra_op_parallelism_threads(request.threads)
        tf.config.threading.set_inter_op_parallelism_threads(int(request.options.get("inter_op_threads", 0)))
    if request.device == "cuda":
        if not tf.config.list_physical_devices("GPU"):
            raise StepError(
                "TensorFlow sees no GPU",
                hint="Install a CUDA build (pip install 'sextant-tensorflow[gpu]'), or use --device cpu.",
            )
        return "/GPU:0"
    with contextlib.suppress(RuntimeError):
        tf.config.set_visible_devices([], "GPU")
    return "/CPU:0"


def _mixed(config: Any, policy: str) -> Any:
    """A Keras model config with every float32 dtype policy turned into ``policy``."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and config.get("config", {}).get("name") == "float32":
            return {**config, "config": {**config["config"], "name": policy}}
        return {key: _mixed(value, policy) for key, value in config.items()}
    if isinstance(config, list):
        return [_mixed(value, policy) for value in config]
    return config


def _mixed_precision(model: keras.Model, policy: str, custom: Mapping[str, Any] | None) -> keras.Model:
    config = _mixed(json.loads(model.to_json()), policy)
    mixed = keras.models.model_from_json(json.dumps(config), custom_objects=custom)
    mixed.set_weights(model.get_weights())
    return mixed


def load_keras(request: RunnerRequest) -> TFRunner:
    device = _setup(request)
    signature = request.signature
    with tf.device(device):
        model = read_keras(request.artifact)
        if request.precision in _MIXED:
            model = _mixed_precision(model, _MIXED[request.precision], custom_objects(request.artifact))

        def call(*tensors: tf.Tensor) -> Any:
            return model(model_inputs(tensors, signature), training=False)

        mode = request.options.get("mode", "eager")
        if mode != "eager":
            call = tf.function(call, input_signature=tensor_specs(signature), jit_compile=mode == "xla")
    return TFRunner(call, request, device)


def load_savedmodel(request: RunnerRequest) -> TFRunner:
    device = _setup(request)
    names = request.signature.input_names
    with tf.device(device):
        loaded = tf.saved_model.load(str(request.artifact))
        function = loaded.signatures[signature_name(request.artifact)]
        if request.options.get("jit_compile"):
            function = tf.function(function, jit_compile=True)

        def call(*tensors: tf.Tensor) -> Any:
            return function(**dict(zip(names, tensors)))

    runner = TFRunner(call, request, device)
    runner.loaded = loaded  # the signature's variables live as long as the object that loaded them
    return runner
