"""The format names shared between plugins, in one place.

A format is a value object (:class:`sextant.specs.Format`); two plugins that speak of ONNX mean the
same ``Format("onnx")``. Plugins import these constants from :mod:`sextant.api` instead of
redeclaring them; a format only one plugin knows may still be declared by that plugin.
"""

from __future__ import annotations

from sextant.specs import Format

ONNX = Format("onnx")
TORCH_MODULE = Format("torch-module")
TORCHSCRIPT = Format("torchscript")
TORCH_EXPORTED = Format("torch-exported")
TORCH_TENSORRT = Format("torch-tensorrt")
KERAS = Format("keras")
TF_SAVEDMODEL = Format("tf-savedmodel")
TENSORRT_ENGINE = Format("tensorrt-engine")
#: a ``transformers`` causal LM written by ``save_pretrained`` (a folder: ``config.json`` and the
#: weights), loaded with ``AutoModelForCausalLM.from_pretrained``: the source of a generation run
TRANSFORMERS_CAUSAL_LM = Format("transformers-causal-lm")
