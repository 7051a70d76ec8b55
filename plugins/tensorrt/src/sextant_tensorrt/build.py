"""ONNX → TensorRT engine, in the step's child process on the GPU.

The ONNX parser's and the builder's own messages are collected; a build that fails (an unsupported
layer, out of memory at a large profile) raises them, so the candidate fails with TensorRT's words
and the run goes on. int8 engines are calibrated on the run's samples (entropy calibration).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorrt as trt
from sextant.api import StepError, StepRequest, device_identity, load_batches

from sextant_tensorrt.profiles import builder_flags, derive_profile, timing_cache_path

WORKSPACE_BYTES = 4 << 30


class Logger(trt.ILogger):
    """Keeps TensorRT's warnings and errors, to report the real cause of a failed build."""

    def __init__(self) -> None:
        trt.ILogger.__init__(self)
        self.messages: list[str] = []

    def log(self, severity: Any, msg: str) -> None:
        if severity <= trt.ILogger.Severity.WARNING:
            self.messages.append(f"{severity.name}: {msg}")
            print(f"tensorrt {severity.name}: {msg}", flush=True)  # into the step's log

    def errors(self) -> str:
        found = [m for m in self.messages if not m.startswith("WARNING")] or self.messages
        return "\n".join(found[-10:]) or "no message from TensorRT"


class Calibrator(trt.IInt8EntropyCalibrator2):
    """Feeds the samples, one batch at a time, from CUDA buffers (torch tensors)."""

    def __init__(self, batches: Sequence[Mapping[str, np.ndarray]], cache: Path) -> None:
        import torch

        trt.IInt8EntropyCalibrator2.__init__(self)
        self.batches = [{k: torch.from_numpy(np.ascontiguousarray(v)).cuda() for k, v in b.items()} for b in batches]
        self.index = 0
        self.cache = cache

    def get_batch_size(self) -> int:
        return 1  # explicit-batch networks: the shapes carry the batch

    def get_batch(self, names: list[str]) -> list[int] | None:
        if self.index >= len(self.batches):
            return None
        batch = self.batches[self.index]
        self.index += 1
        return [int(batch[name].data_ptr()) for name in names]

    def read_calibration_cache(self) -> bytes | None:
        return self.cache.read_bytes() if self.cache.exists() else None

    def write_calibration_cache(self, cache: bytes) -> None:
        self.cache.write_bytes(bytes(cache))


def build_engine(request: StepRequest) -> Path:
    logger = Logger()
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch: the only mode TensorRT 10 has
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(request.input)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise StepError(f"TensorRT's ONNX parser refused the model: {'; '.join(errors) or logger.errors()}")

    precision = request.options.get("precision", "fp32")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(request.options.get("workspace", WORKSPACE_BYTES)))
    config.builder_optimization_level = int(request.options.get("optimization_level", 3))
    flags, cleared = builder_flags(precision)
    for flag in flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    for flag in cleared:
        config.clear_flag(getattr(trt.BuilderFlag, flag))

    batches = load_batches(request.samples)
    ranges = derive_profile(request.signature, batches, request.max_batch)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in ranges.items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    if precision == "int8":
        config.set_calibration_profile(profile)
        config.int8_calibrator = Calibrator(batches, request.output_dir / "calibration.cache")

    cache_path = timing_cache_path(trt.__version__, device_identity("cuda"))
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    timing = config.create_timing_cache(cache_path.read_bytes() if cache_path.exists() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise StepError(f"TensorRT could not build a {precision} engine:\n{logger.errors()}")
    cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    path = request.output_dir / "model.engine"
    path.write_bytes(bytes(serialized))
    return path
