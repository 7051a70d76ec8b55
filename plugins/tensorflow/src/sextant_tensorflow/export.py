"""Steps: Keras → SavedModel, SavedModel → ONNX (tf2onnx), SavedModel → TF-TRT.

The Keras export writes one ``serving_default`` signature that takes sextant's input names (the
batch axis and the axes that vary left dynamic) and returns sextant's output names, so every
artifact of a model is called and compared alike.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf
from sextant.api import StepError, StepRequest

from sextant_tensorflow.source import SERVING, SIGNATURE_FILE, read_keras, signature_name
from sextant_tensorflow.tensors import model_inputs, named, tensor_specs

ONNX_OPSET = 17


def keras_to_savedmodel(request: StepRequest) -> Path:
    model = read_keras(request.input)
    signature = request.signature

    def serve(*tensors: tf.Tensor) -> dict[str, tf.Tensor]:
        return named(model(model_inputs(tensors, signature), training=False), signature)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=SERVING, fn=serve, input_signature=tensor_specs(signature))
    path = request.output_dir / "saved_model"
    archive.write_out(str(path), verbose=False)
    return path


def savedmodel_to_onnx(request: StepRequest) -> Path:
    import tf2onnx

    loaded = tf.saved_model.load(str(request.input))
    function = loaded.signatures[signature_name(request.input)]
    _, kwargs = function.structured_input_signature
    names = sorted(kwargs)
    specs = [tf.TensorSpec(kwargs[n].shape, kwargs[n].dtype, name=n) for n in names]

    # a tf.function whose arguments carry the signature's names, so the ONNX inputs do too; its
    # dict result names the ONNX outputs
    @tf.function(input_signature=specs)
    def call(*tensors: tf.Tensor) -> dict[str, tf.Tensor]:
        return function(**dict(zip(names, tensors)))

    path = request.output_dir / "model.onnx"
    tf2onnx.convert.from_function(call, input_signature=specs, opset=ONNX_OPSET, output_path=str(path))
    return path


def tf_trt(request: StepRequest) -> Path:
    from tensorflow.python.compiler.tensorrt import trt_convert as trt

    if not tf.config.list_physical_devices("GPU"):
        raise StepError("TensorFlow sees no GPU", hint="TF-TRT needs a CUDA build of TensorFlow and an NVIDIA GPU.")
    precision = request.options.get("precision", "FP32")
    converter = trt.TrtGraphConverterV2(
        input_saved_model_dir=str(request.input),
        input_saved_model_signature_key=signature_name(request.input),
        precision_mode=getattr(trt.TrtPrecisionMode, precision),
    )
    converter.convert()  # engines are built for the shapes of the first calls (the correctness check)
    path = request.output_dir / "saved_model"
    converter.save(str(path))
    (path / SIGNATURE_FILE).write_text(signature_name(request.input) + "\n")
    return path
