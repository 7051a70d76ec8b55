"""The OpenVINO runner: an ONNX file or OpenVINO IR compiled for OpenVINO's CPU plugin.

The compile properties come from :mod:`sextant_openvino.config`. After compiling, the runner reads
back the inference precision OpenVINO chose: where it is not the one asked for (bf16 on a CPU
where OpenVINO has none, which it would silently run in f32) loading fails, so that no candidate
is measured under a precision it does not compute. Outputs are named as the signature
names them (:mod:`sextant_openvino.naming`) and copied out of OpenVINO's buffers. The runner says
what it compiled (:meth:`OpenVINORunner.fingerprint`): candidates alike are profiled once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import openvino as ov
from sextant.api import ModelLoadError, RunnerRequest, SampleError, StepError, cpu_model, ignored_inputs

from sextant_openvino.batches import join, split, splittable
from sextant_openvino.config import CompileConfig, compile_config
from sextant_openvino.errors import reason
from sextant_openvino.fingerprint import fingerprint, op_types
from sextant_openvino.naming import port_names

DEVICE = "CPU"


class OpenVINORunner:
    """Runs one compiled model; with several streams, a batch's parts at once (:mod:`.batches`)."""

    def __init__(self, request: RunnerRequest) -> None:
        if request.device != "cpu":
            raise StepError(f"the OpenVINO runner runs on the CPU, not {request.device}")
        self.config: CompileConfig = compile_config(request)
        core = ov.Core()
        model = read(core, request)
        try:
            self.compiled = core.compile_model(model, DEVICE, self.config.properties())
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise ModelLoadError(
                f"OpenVINO cannot compile {request.artifact.name} for the CPU: {reason(exc)}",
                hint="An operation may be missing from OpenVINO's CPU plugin; the other runners may take the model.",
            ) from exc
        check_precision(self.compiled, self.config)
        self.op_types = op_types(model)  # for the fingerprint; not the model, whose weights would stay resident
        self.signature = request.signature
        self.inputs = port_names(self.compiled.inputs, request.signature.input_names)
        self.ignored = ignored_inputs(request.signature, self.inputs)
        self.outputs = port_names(self.compiled.outputs, request.signature.output_names)
        self.request = self.compiled.create_infer_request()
        jobs = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.streams = Streams(self.compiled, jobs, self.outputs) if jobs > 1 and splittable(self.signature) else None

    def _feed(self, inputs: Mapping[str, np.ndarray]) -> dict[int, np.ndarray]:
        if self.ignored:
            inputs = {name: array for name, array in inputs.items() if name not in self.ignored}
        if set(inputs) != set(self.inputs):
            unknown, missing = sorted(set(inputs) - set(self.inputs)), sorted(set(self.inputs) - set(inputs))
            raise SampleError(
                f"the OpenVINO model takes the inputs {self.inputs}"
                + (f"; it has none named {unknown}" if unknown else "")
                + (f"; {missing} not given" if missing else "")
            )
        return {self.inputs.index(name): _contiguous(array) for name, array in inputs.items()}

    def infer(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.streams is not None:
            parts = split(inputs, self.streams.jobs, self.signature)
            if len(parts) > 1:
                return join(self.streams.run([self._feed(part) for part in parts]))
        results = self.request.infer(self._feed(inputs), share_inputs=True, share_outputs=False)
        return {name: np.asarray(results[i]) for i, name in enumerate(self.outputs)}

    def fingerprint(self) -> str | None:
        """The compiled graph and its settings, hashed (:mod:`sextant_openvino.fingerprint`)."""
        return fingerprint(self.compiled, self.op_types)

    def close(self) -> None:
        self.streams = self.request = self.compiled = None


class Streams:
    """``jobs`` infer requests started together, one part of a batch each, then awaited in order."""

    def __init__(self, compiled: Any, jobs: int, outputs: list[str]) -> None:
        self.jobs = jobs
        self.outputs = outputs
        self.requests = [compiled.create_infer_request() for _ in range(jobs)]

    def run(self, feeds: list[dict[int, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Each feed's outputs, in the feeds' order (at most ``jobs`` feeds)."""
        started = list(zip(self.requests, feeds))
        for request, feed in started:
            request.start_async(feed, share_inputs=True)
        results = []
        for request, _ in started:
            request.wait()
            results.append({name: request.get_output_tensor(i).data.copy() for i, name in enumerate(self.outputs)})
        return results


def _contiguous(array: np.ndarray) -> np.ndarray:
    """``array`` in C order (np.ascontiguousarray would make a 0-d input, a scale or a timestep, 1-d)."""
    array = np.asarray(array)
    return array if array.flags.c_contiguous else array.copy(order="C")


def read(core: Any, request: RunnerRequest) -> Any:
    """The model of ``request.artifact`` (ONNX, or IR with its ``.bin`` beside it)."""
    path = request.artifact
    if path.suffix == ".xml" and not path.with_suffix(".bin").exists():
        raise ModelLoadError(f"OpenVINO IR {path.name} has no weights file {path.with_suffix('.bin').name} beside it")
    try:
        return core.read_model(str(path))
    except Exception as exc:
        raise ModelLoadError(
            f"OpenVINO cannot read {path.name}: {reason(exc)}",
            hint="OpenVINO reads ONNX files and IR (.xml beside .bin); check the file is whole and valid.",
        ) from exc


def check_precision(compiled: Any, config: CompileConfig) -> None:
    """Fail when OpenVINO compiled another inference precision than the candidate's."""
    got = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
    if got != config.inference_precision:
        raise StepError(
            f"OpenVINO's CPU plugin runs {got}, not {config.inference_precision}, on this CPU ({cpu_model()}), "
            "so this candidate would not compute what it claims",
            hint="Leave this precision out of --precision (auto plans only what the CPU computes natively).",
        )


def load(request: RunnerRequest) -> OpenVINORunner:
    return OpenVINORunner(request)
