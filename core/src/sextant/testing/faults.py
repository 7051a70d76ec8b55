"""Exporters and a runner that misbehave on purpose, for tests of isolation, caching, correctness
gating and the profiler's cut-off.

Each exporter reads the fake ``numpy-mlp`` source. ``full`` fails as a full disk does (``ENOSPC``,
wrapped by the exporter); ``fat`` writes a correct artifact padded to fill a small file system; ``oom``
raises ``MemoryError`` and ``oom-kill`` is killed by SIGKILL, as the OOM killer does, until
``SEXTANT_FAULT_MEMORY=plenty`` (all four only when named); ``relabel`` (only when named) writes
fake-graph's graph signed by another producer (other bytes, the same canonical form).
``SEXTANT_FAULTS=crash,hang`` registers only those named (default: every exporter). ``sleepy`` (only when named) adds a runner of fake graphs
that sleeps 2 ms per call: correct, and far slower than its rivals. ``compiled`` (only when named)
adds a runner of the source marked ``slow_build``, standing for one that compiles as it loads;
``engine`` (only when named) a converter of fake graphs marked ``slow_build``, standing for an engine
build (a correct graph, with an engine file beside it). Options are fixed when the
catalog is built, in the parent, so a child started from a long-lived fork server sees this run's.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from pathlib import Path

from sextant.hookspecs import hookimpl
from sextant.runtime import StepRequest
from sextant.specs import ConverterSpec, ExporterSpec, Format, RunnerSpec
from sextant.testing.fake import GRAPH, SOURCE, NumpyMLP, load_graph, write_graph

#: what ``fault-wrong`` produces, so that ``--formats fault-graph`` leaves only wrong candidates
WRONG_GRAPH = Format("fault-graph")

FAULTS = ("crash", "hang", "raise", "wrong", "slow")
ONLY_WHEN_NAMED = ("full", "fat", "oom", "oom-kill", "relabel")


@hookimpl
def sextant_register_exporters() -> list[ExporterSpec]:
    chosen = os.environ.get("SEXTANT_FAULTS")
    known = (*FAULTS, *ONLY_WHEN_NAMED)
    names = FAULTS if chosen is None else [n.strip() for n in chosen.split(",") if n.strip() in known]
    options = {"seconds": float(os.environ.get("SEXTANT_FAULT_SLOW_S", "2"))}
    return [
        ExporterSpec(
            f"fault-{name}",
            SOURCE,
            WRONG_GRAPH if name == "wrong" else GRAPH,
            run=f"sextant.testing.faults:fault_{name.replace('-', '_')}",
            options=options,
        )
        for name in names
    ]


@hookimpl
def sextant_register_converters() -> list[ConverterSpec]:
    if "engine" not in (os.environ.get("SEXTANT_FAULTS") or ""):
        return []
    return [ConverterSpec("fault-engine", GRAPH, GRAPH, run="sextant.testing.faults:fault_engine", slow_build=True)]


@hookimpl
def sextant_register_runners() -> list[RunnerSpec]:
    runners = [RunnerSpec("fault-graph", WRONG_GRAPH, load="sextant.testing.fake:load_graph")]
    if "sleepy" in (os.environ.get("SEXTANT_FAULTS") or ""):
        runners.append(RunnerSpec("fault-sleepy", GRAPH, load="sextant.testing.faults:load_sleepy"))
    if "compiled" in (os.environ.get("SEXTANT_FAULTS") or ""):
        runners.append(
            RunnerSpec(
                "fault-compiled",
                SOURCE,
                load="sextant.testing.fake:load_eager",
                pickled="sextant.testing.fake:pickled",
                slow_build=True,
            )
        )
    return runners


def fault_crash(request: StepRequest) -> Path:
    print("about to crash", flush=True)
    os.kill(os.getpid(), signal.SIGSEGV)
    raise AssertionError("unreachable")


def fault_hang(request: StepRequest) -> Path:
    time.sleep(3600)
    raise AssertionError("unreachable")


def fault_raise(request: StepRequest) -> Path:
    raise ValueError("unsupported operator 'Frobnicate' in layer 3")


def fault_full(request: StepRequest) -> Path:
    """The disk fills while the artifact is written; the exporter wraps the error, as many do."""
    target = request.output_dir / "model.graph"
    target.write_bytes(b"\0" * 1024)
    try:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
    except OSError as exc:
        raise RuntimeError(f"export failed: {exc}") from exc


def fault_fat(request: StepRequest) -> Path:
    """A correct artifact padded with ``SEXTANT_FAULT_FAT_MB`` MB (default 8), to fill a small disk."""
    path = write_graph(request.output_dir, NumpyMLP.read(request.input).weights, "float32")
    megabytes = int(os.environ.get("SEXTANT_FAULT_FAT_MB", "8"))
    with open(request.output_dir / "padding.bin", "wb") as out:
        for _ in range(megabytes):
            out.write(b"\0" * (1024 * 1024))
    return path


def _short_of_memory() -> bool:
    """Memory is short unless ``SEXTANT_FAULT_MEMORY=plenty`` (read in the child, so the step's key
    stays the same when a later run has memory)."""
    return os.environ.get("SEXTANT_FAULT_MEMORY") != "plenty"


def fault_oom(request: StepRequest) -> Path:
    """Out of memory as Python says it (numpy's words); a correct artifact once memory is plenty."""
    if _short_of_memory():
        raise MemoryError("Unable to allocate 3.20 GiB for an array with shape (819200, 1024) and data type float32")
    return write_graph(request.output_dir, NumpyMLP.read(request.input).weights, "float32")


def fault_oom_kill(request: StepRequest) -> Path:
    """Out of memory as the kernel's OOM killer ends it: SIGKILL; a correct artifact once memory is plenty."""
    if _short_of_memory():
        print("allocating ...", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return write_graph(request.output_dir, NumpyMLP.read(request.input).weights, "float32")


def fault_wrong(request: StepRequest) -> Path:
    weights = dict(NumpyMLP.read(request.input).weights)
    weights["b2"] = weights["b2"] + 0.5
    return write_graph(request.output_dir, weights, "float32")


def fault_slow(request: StepRequest) -> Path:
    time.sleep(request.options["seconds"])
    return write_graph(request.output_dir, NumpyMLP.read(request.input).weights, "float32")


def fault_relabel(request: StepRequest) -> Path:
    """fake-graph's graph, signed by another producer: other bytes, the same canonical form."""
    return write_graph(request.output_dir, NumpyMLP.read(request.input).weights, "float32", producer="relabel")


def fault_engine(request: StepRequest) -> Path:
    """The graph as it came, with an "engine" beside it (so its bytes are its own)."""
    dtype = json.loads((request.input / "graph.json").read_text())["dtype"]
    path = write_graph(request.output_dir, _weights(request.input), dtype)
    (request.output_dir / "engine.bin").write_bytes(b"engine")
    return path


def _weights(folder: Path) -> dict:
    import numpy as np

    with np.load(folder / "weights.npz") as data:
        return {k: data[k] for k in data.files}


class _Sleepy:
    """A correct runner that sleeps 2 ms per call."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def infer(self, inputs):
        time.sleep(0.002)
        return self.inner.infer(inputs)

    def close(self) -> None:
        self.inner.close()


def load_sleepy(request):
    return _Sleepy(load_graph(request))
