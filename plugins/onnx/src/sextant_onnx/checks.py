"""Cheap availability checks: which ONNX Runtime build is installed, read from package metadata."""

from __future__ import annotations

import importlib.metadata


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def check_ort(device: str) -> str | None:
    if device == "cuda" and not _installed("onnxruntime-gpu"):
        return "CUDA needs onnxruntime-gpu (pip install 'sextant-onnx[gpu]' instead of [cpu])"
    return None


def check_ort_tensorrt(device: str) -> str | None:
    if not _installed("onnxruntime-gpu"):
        return "the TensorRT execution provider needs onnxruntime-gpu (pip install 'sextant-onnx[gpu]')"
    if not _installed("tensorrt") and not any(_installed(d) for d in ("tensorrt-cu12", "tensorrt-cu13")):
        return "the TensorRT execution provider needs TensorRT (pip install tensorrt)"
    return None


def check_ort_openvino(device: str) -> str | None:
    if not _installed("onnxruntime-openvino"):
        return "needs onnxruntime-openvino (pip install onnxruntime-openvino instead of onnxruntime)"
    return None
