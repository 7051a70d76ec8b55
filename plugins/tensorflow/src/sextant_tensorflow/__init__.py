"""sextant plugin for TensorFlow and Keras.

Sources: Keras models (objects through the API and ``file.py:factory``, ``.keras`` / ``.h5``
files), SavedModel folders (the ``serving_default`` signature, or the one named with
``--source-option signature=NAME``), and ``tf.function`` objects with an input signature.
Steps: Keras → SavedModel (one serving signature named like sextant's inputs and outputs),
SavedModel → ONNX (tf2onnx), so installed ONNX runners compete too, and SavedModel → TF-TRT
(fp32, fp16) when TensorFlow has CUDA and TensorRT. Runners on CPU and GPU: Keras (eager, as a
``tf.function``, or XLA-compiled; mixed bf16/fp16 when allowed) and SavedModel (graph, or XLA
with ``jit_compile``).

This module only declares specs: TensorFlow is imported by the callables, in the child processes.
"""

from __future__ import annotations

import os
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path

from sextant.api import (
    KERAS,
    ONNX,
    TF_SAVEDMODEL,
    ConverterSpec,
    ExporterSpec,
    Param,
    Rejection,
    RunnerSpec,
    SourceModel,
    hookimpl,
)

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
_DEVICES = ("cpu", "cuda")
_TF = ("tensorflow",)
_TF_CHECK = "sextant_tensorflow.checks:check_tensorflow"

# TensorFlow's C++ start-up chatter (oneDNN notices, CUDA probes) would flood every step's log;
# set before any child (and the fork server, which inherits the environment) imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def is_savedmodel(path: Path) -> bool:
    return path.is_dir() and (path / "saved_model.pb").is_file()


def keras_file_problem(path: Path) -> Rejection | None:
    """Why a ``.keras`` / ``.h5`` file cannot be a Keras model, read from its first bytes (cheap:
    Keras is not imported), or ``None`` when it may be one."""
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        return Rejection(
            "not a valid Keras archive: a .keras file is a zip archive written by model.save(), this one is not",
            hint="The file may be truncated or of another kind; save the model again with "
            "model.save('model.keras'), or pass its factory as model.py:make_model.",
        )
    if path.suffix != ".keras":
        with path.open("rb") as file:
            if file.read(len(_HDF5_MAGIC)) != _HDF5_MAGIC:
                return Rejection(
                    f"not an HDF5 file, which a Keras {path.suffix} file is",
                    hint="The file may be truncated or of another kind; save the model again with "
                    "model.save('model.keras').",
                )
    return None


@hookimpl
def sextant_load_source(model: object, name: str | None, options: Mapping[str, str]) -> SourceModel | Rejection | None:
    if isinstance(model, Path):
        if model.suffix in KERAS_SUFFIXES and model.is_file():
            problem = keras_file_problem(model)
            if problem is not None:
                return problem
            from sextant_tensorflow.source import keras_file_source

            return keras_file_source(model, name, options)
        if is_savedmodel(model):
            from sextant_tensorflow.source import savedmodel_source

            return savedmodel_source(model, name, options)
        if model.is_dir():
            return Rejection("not a TensorFlow SavedModel: the folder has no saved_model.pb", claimed=False)
        return None
    keras = sys.modules.get("keras")  # a Keras model means keras is already imported
    if keras is not None and isinstance(model, keras.Model):
        from sextant_tensorflow.source import keras_object_source

        return keras_object_source(model, name, options)
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(model, tf.types.experimental.GenericFunction):
        from sextant_tensorflow.source import function_source

        return function_source(model, name)
    return None


@hookimpl
def sextant_register_exporters() -> list[ExporterSpec]:
    return [
        ExporterSpec(
            "keras-savedmodel",
            KERAS,
            TF_SAVEDMODEL,
            run="sextant_tensorflow.export:keras_to_savedmodel",
            requires=_TF,
            description="Keras ExportArchive: one serving signature with sextant's names",
        )
    ]


@hookimpl
def sextant_register_converters() -> list[ConverterSpec]:
    tftrt = ("tensorflow", "tensorrt")
    tftrt_install = "TF-TRT needs TensorFlow with CUDA and TensorRT: pip install 'sextant-tensorflow[gpu]' tensorrt"
    return [
        ConverterSpec(
            "tf2onnx",
            TF_SAVEDMODEL,
            ONNX,
            run="sextant_tensorflow.export:savedmodel_to_onnx",
            requires=(*_TF, "tf2onnx", "onnx"),
            description="tf2onnx on the SavedModel's signature (opset 17)",
        ),
        ConverterSpec(
            "tf-trt",
            TF_SAVEDMODEL,
            TF_SAVEDMODEL,
            run="sextant_tensorflow.export:tf_trt",
            requires=tftrt,
            device="cuda",
            check=_TF_CHECK,
            install=tftrt_install,
            description="TF-TRT: TensorRT engines inside the SavedModel, fp32",
        ),
        ConverterSpec(
            "tf-trt-fp16",
            TF_SAVEDMODEL,
            TF_SAVEDMODEL,
            run="sextant_tensorflow.export:tf_trt",
            requires=tftrt,
            precision="fp16",
            options={"precision": "FP16"},
            device="cuda",
            check=_TF_CHECK,
            install=tftrt_install,
            description="TF-TRT: TensorRT engines inside the SavedModel, fp16",
        ),
    ]


@hookimpl
def sextant_register_runners() -> list[RunnerSpec]:
    inter_op = Param(
        "inter_op_threads", "categorical", (0, 1, 2), 0, "threads running independent ops; 0: TensorFlow's choice"
    )
    return [
        RunnerSpec(
            "keras",
            KERAS,
            load="sextant_tensorflow.runners:load_keras",
            pickled="sextant_tensorflow.checks:keras_pickles",
            devices=_DEVICES,
            precisions=("fp32", "bf16", "fp16"),
            requires=_TF,
            check=_TF_CHECK,
            options=(
                Param(
                    "mode",
                    "categorical",
                    ("eager", "function", "xla"),
                    "eager",
                    "call the model eagerly, as a tf.function, or XLA-compiled (jit_compile)",
                ),
                inter_op,
            ),
            variants=({"mode": "function"},),
            reference=True,
            description="the Keras model; bf16/fp16 as Keras mixed precision",
        ),
        RunnerSpec(
            "tf-savedmodel",
            TF_SAVEDMODEL,
            load="sextant_tensorflow.runners:load_savedmodel",
            devices=_DEVICES,
            requires=_TF,
            check=_TF_CHECK,
            options=(
                Param("jit_compile", "categorical", (False, True), False, "compile the signature with XLA"),
                inter_op,
            ),
            variants=({"jit_compile": True},),
            reference=True,
            description="a SavedModel signature, as a graph or XLA-compiled",
        ),
    ]
