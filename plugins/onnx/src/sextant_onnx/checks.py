"""Cheap availability checks: which ONNX Runtime build is installed, read from package metadata."""

from __future__ import annotations

from sextant.api import installed


def check_ort(device: str) -> str | None:
    if device == "cuda" and not installed("onnxruntime-gpu"):
        return "CUDA needs onnxruntime-gpu (pip install 'sextant-onnx[gpu]' instead of [cpu])"
    return None


def check_ort_tensorrt(device: str) -> str | None:
    if not installed("onnxruntime-gpu"):
        return "the TensorRT execution provider needs onnxruntime-gpu (pip install 'sextant-onnx[gpu]')"
    if not installed("tensorrt") and not any(installed(d) for d in ("tensorrt-cu12", "tensorrt-cu13")):
        return "the TensorRT execution provider needs TensorRT (pip install tensorrt)"
    return None


def check_ort_openvino(device: str) -> str | None:
    if not installed("onnxruntime-openvino"):
        return "needs onnxruntime-openvino (pip install onnxruntime-openvino instead of onnxruntime)"
    return None
