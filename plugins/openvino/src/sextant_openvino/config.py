"""What OpenVINO's CPU plugin is told for one candidate: its compile properties, from the request.

Nothing here imports openvino: the properties are plain strings (OpenVINO parses them), so they
can be read, logged and tested without compiling anything.

The inference precision follows the candidate's precision, never OpenVINO's default: on a CPU
with AMX or AVX512-BF16 OpenVINO lowers float models to bf16 by itself, which an fp32 candidate
must not do (its outputs are judged under fp32's tolerance). A reduced-precision artifact (an
int8-quantised or fp16 ONNX file) carries its precision in the graph; the rest of it runs in f32.
"""

from __future__ import annotations

from dataclasses import dataclass

from sextant.api import RunnerRequest, UsageError

#: sextant's precision → OpenVINO's INFERENCE_PRECISION_HINT (other precisions: f32)
INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16"}
#: the ``performance_hint`` option → OpenVINO's PERFORMANCE_HINT
PERFORMANCE_HINT = {"latency": "LATENCY", "throughput": "THROUGHPUT"}


@dataclass(frozen=True)
class CompileConfig:
    """The properties one candidate is compiled with (``num_streams`` ``None``: the hint decides)."""

    inference_precision: str
    performance_hint: str
    threads: int
    num_streams: int | None = None
    cpu_pinning: bool = False

    def properties(self) -> dict[str, str]:
        """The ``config`` of ``openvino.Core.compile_model``."""
        props = {
            "INFERENCE_PRECISION_HINT": self.inference_precision,
            "PERFORMANCE_HINT": self.performance_hint,
            "INFERENCE_NUM_THREADS": str(self.threads),
        }
        if self.num_streams is not None:
            props["NUM_STREAMS"] = str(self.num_streams)
        props["ENABLE_CPU_PINNING"] = "YES" if self.cpu_pinning else "NO"
        return props


def compile_config(request: RunnerRequest) -> CompileConfig:
    """The compile properties for ``request``: its precision, its options, its threads.

    Threads are pinned to cores only when the ``cpu_pinning`` option asks (OpenVINO pins by default
    on Linux, which on a machine shared with other processes made a 2-thread call several times
    slower), and never in a runner that shares its process with other work (``request.shared``).
    """
    options = request.options
    hint = options.get("performance_hint", "latency")
    if hint not in PERFORMANCE_HINT:
        raise UsageError(f"performance_hint must be one of {sorted(PERFORMANCE_HINT)}, not {hint!r}")
    streams = int(options.get("num_streams") or 0)
    return CompileConfig(
        inference_precision=INFERENCE_PRECISION.get(request.precision, "f32"),
        performance_hint=PERFORMANCE_HINT[hint],
        threads=int(options.get("inference_num_threads") or request.threads),
        num_streams=streams or None,
        cpu_pinning=bool(options.get("cpu_pinning", False)) and not request.shared,
    )
