"""Which Triton backend serves a candidate, and the backend settings that carry what was measured.

A :class:`Backend` is a value object naming Triton's ``platform`` and ``backend``, the file a version
folder holds and how tensors are named. :func:`native_backend` finds the one Triton has for a
candidate's artifact *and* runner (ONNX on ONNX Runtime, an ONNX file OpenVINO ran: ONNX Runtime
with its OpenVINO execution accelerator, OpenVINO IR: Triton's OpenVINO backend, TorchScript, a
SavedModel, a TensorRT engine); anything else (eager and compiled torch, exported programs, Keras) runs through
:data:`PYTHON`, a Python-backend model running sextant's own runner. :func:`tuning` turns the
winning runner options into the backend's settings: for ONNX Runtime the threads, graph
optimisation level, execution mode and execution provider it was measured with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sextant.api import ONNX, TENSORRT_ENGINE, TF_SAVEDMODEL, TORCHSCRIPT

if TYPE_CHECKING:
    from sextant.api import CandidateRecord


@dataclass(frozen=True)
class Accelerator:
    """An entry of ``optimization.execution_accelerators`` (``name`` and string parameters)."""

    name: str
    parameters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Tuning:
    """Backend settings for one candidate: model ``parameters``, ``optimization.graph.level``,
    execution accelerators, CUDA graphs, and notes on what could not be carried over."""

    parameters: Mapping[str, str] = field(default_factory=dict)
    graph_level: int | None = None
    cpu_accelerators: tuple[Accelerator, ...] = ()
    gpu_accelerators: tuple[Accelerator, ...] = ()
    cuda_graphs: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Backend:
    """A Triton backend: its config names, the file (or folder) in a version folder, whether
    tensors are named by position (``<name>__<index>``, as LibTorch binds them), and the function
    that turns a candidate's options into :class:`Tuning`."""

    name: str
    backend: str
    platform: str = ""
    filename: str = ""
    positional_names: bool = False
    translate: Callable[[CandidateRecord, int], Tuning] = field(default=lambda record, threads: Tuning(), compare=False)

    def __str__(self) -> str:
        return self.name


#: the runner option that sets a runner's threads per call (0 or absent: the threads it is given)
THREAD_OPTIONS = {
    "onnxruntime": "intra_op_threads",
    "onnxruntime-trt": "intra_op_threads",
    "onnxruntime-openvino": "intra_op_threads",
}


def option_threads(record: CandidateRecord) -> int | None:
    """The threads per call the candidate's runner options set (``None``: the threads it was given)."""
    option = THREAD_OPTIONS.get(record.runner)
    return int(record.options.get(option) or 0) or None if option else None


def threads_per_call(record: CandidateRecord, default: int) -> int:
    """How many threads the candidate's runner used for one call when it was measured."""
    return option_threads(record) or (record.profile.threads if record.profile and record.profile.threads else default)


_ORT_LEVELS = {"all": None, "extended": 1, "basic": -1, "disable": 2}  # Triton's optimization.graph.level
_TRT_PRECISIONS = {"fp16": "FP16", "int8": "INT8"}


def _onnxruntime(record: CandidateRecord, threads: int) -> Tuning:
    options = record.options
    sequential = options.get("execution_mode", "sequential") == "sequential"
    parameters = {
        "intra_op_thread_count": str(threads_per_call(record, threads)),
        "inter_op_thread_count": str(1 if sequential else threads),
        "execution_mode": "0" if sequential else "1",
    }
    cpu: tuple[Accelerator, ...] = ()
    gpu: tuple[Accelerator, ...] = ()
    notes: list[str] = []
    if record.runner in ("onnxruntime-openvino", "openvino"):
        cpu = (Accelerator("openvino"),)
    if record.runner == "openvino":
        if options:
            notes.append(
                f"OpenVINO options {_listed(options)}: ONNX Runtime's OpenVINO accelerator takes no such settings "
                "in Triton; it runs with its own"
            )
    elif record.runner == "onnxruntime-trt":
        gpu = (Accelerator("tensorrt", {"precision_mode": _TRT_PRECISIONS.get(record.precision, "FP32")}),)
    if options.get("io_binding"):
        notes.append("io_binding: Triton's ONNX Runtime backend binds inputs and outputs itself")
    return Tuning(
        parameters=parameters,
        graph_level=_ORT_LEVELS[options.get("graph_optimization_level", "all")],
        cpu_accelerators=cpu,
        gpu_accelerators=gpu,
        notes=tuple(notes),
    )


def _listed(options: Mapping[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(options.items()))


#: the openvino runners' options → Triton's OpenVINO backend parameters (its README's names)
_OPENVINO_PARAMETERS = {
    "performance_hint": "PERFORMANCE_HINT",
    "num_streams": "NUM_STREAMS",
    "inference_num_threads": "INFERENCE_NUM_THREADS",
    "cpu_pinning": "ENABLE_CPU_PINNING",
}


#: a candidate's precision → OpenVINO's ``INFERENCE_PRECISION_HINT``, as the openvino runners compile
#: it (``sextant_openvino.config.INFERENCE_PRECISION``; this distribution does not import that one)
_OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16"}


def _openvino(record: CandidateRecord, threads: int) -> Tuning:
    """Triton's OpenVINO backend: the runner's options as its parameters (``PERFORMANCE_HINT``
    ``LATENCY``/``THROUGHPUT``, ``NUM_STREAMS``, ``INFERENCE_NUM_THREADS``, ``ENABLE_CPU_PINNING``);
    0 (OpenVINO chooses) is left out. ``INFERENCE_PRECISION_HINT`` pins the precision the candidate
    was verified in: left to itself, OpenVINO's CPU plugin computes in bfloat16 on a CPU with native
    bfloat16 (AMX, AVX512_BF16), and an fp32 candidate's outputs then differ from the verified ones
    by up to 1.6 % (seen on an AMD EPYC with AVX512_BF16)."""
    parameters: dict[str, str] = {}
    if precision := _OPENVINO_PRECISION.get(record.precision):
        parameters["INFERENCE_PRECISION_HINT"] = precision
    for option, value in sorted(record.options.items()):
        key = _OPENVINO_PARAMETERS.get(option)
        if key is None or value in (0, None):
            continue
        parameters[key] = str(value).upper() if isinstance(value, (str, bool)) else str(value)
    if "INFERENCE_NUM_THREADS" not in parameters:
        parameters["INFERENCE_NUM_THREADS"] = str(threads_per_call(record, threads))
    return Tuning(parameters=parameters)


def _libtorch(record: CandidateRecord, threads: int) -> Tuning:
    parameters = {"INFERENCE_MODE": "true"}
    if record.device == "cpu":
        parameters["INTRA_OP_THREAD_COUNT"] = str(threads_per_call(record, threads))
    return Tuning(parameters=parameters)


def _tensorflow(record: CandidateRecord, threads: int) -> Tuning:
    notes = []
    if record.options.get("inter_op_threads"):
        notes.append(
            "inter_op_threads: TensorFlow's thread pools are set for the whole server "
            "(--backend-config=tensorflow,...), not per model"
        )
    return Tuning(graph_level=1 if record.options.get("jit_compile") else None, notes=tuple(notes))


def _tensorrt(record: CandidateRecord, threads: int) -> Tuning:
    return Tuning(cuda_graphs=bool(record.options.get("cuda_graph")))


ONNXRUNTIME = Backend("onnxruntime_onnx", "onnxruntime", "onnxruntime_onnx", "model.onnx", translate=_onnxruntime)
LIBTORCH = Backend("pytorch_libtorch", "pytorch", "pytorch_libtorch", "model.pt", True, translate=_libtorch)
TENSORFLOW = Backend(
    "tensorflow_savedmodel", "tensorflow", "tensorflow_savedmodel", "model.savedmodel", translate=_tensorflow
)
TENSORRT = Backend("tensorrt_plan", "tensorrt", "tensorrt_plan", "model.plan", translate=_tensorrt)
OPENVINO = Backend("openvino", "openvino", "", "model.xml", translate=_openvino)
PYTHON = Backend("python", "python", "", "model.py")

#: (artifact format, runner) → the native backend that runs that artifact the way the runner did
NATIVE: Mapping[tuple[str, str], Backend] = {
    (ONNX.name, "onnxruntime"): ONNXRUNTIME,
    (ONNX.name, "onnxruntime-trt"): ONNXRUNTIME,
    (ONNX.name, "onnxruntime-openvino"): ONNXRUNTIME,
    (ONNX.name, "openvino"): ONNXRUNTIME,  # with the OpenVINO execution accelerator
    ("openvino-ir", "openvino-ir"): OPENVINO,
    (TORCHSCRIPT.name, "torchscript"): LIBTORCH,
    (TF_SAVEDMODEL.name, "tf-savedmodel"): TENSORFLOW,
    (TENSORRT_ENGINE.name, "tensorrt"): TENSORRT,
}

BACKENDS = {b.name: b for b in (ONNXRUNTIME, LIBTORCH, TENSORFLOW, TENSORRT, OPENVINO, PYTHON)}

#: what each native backend is, for the deploy notes: where Triton has it
WHERE = {
    OPENVINO.name: "Triton's OpenVINO backend (in NVIDIA's tritonserver images; on the tritonserver inside the "
    "nvidia-pytriton wheel, `python -m sextant_triton.server` runs the same config through sextant's "
    "Python-based openvino backend, which needs openvino in the server's Python)",
}


def native_backend(record: CandidateRecord) -> Backend | None:
    """The backend Triton has for this candidate's artifact and runner, if any."""
    return NATIVE.get((record.format, record.runner))


def native_summary() -> str:
    """What has a native backend, for messages."""
    return ", ".join(f"{fmt} on {runner} ({b.platform})" for (fmt, runner), b in NATIVE.items())


def tuning(backend: Backend, record: CandidateRecord, threads: int) -> Tuning:
    return backend.translate(record, threads)
