"""Exporters that misbehave on purpose, for tests of isolation, caching and correctness gating.

Each reads the fake ``numpy-mlp`` source. ``SEXTANT_FAULTS=crash,hang`` registers only those
named (default: all). Options are fixed when the catalog is built, in the parent, so a child
started from a long-lived fork server sees the values of this run.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from sextant.hookspecs import hookimpl
from sextant.runtime import StepRequest
from sextant.specs import ExporterSpec, Format, RunnerSpec
from sextant.testing.fake import GRAPH, SOURCE, NumpyMLP, write_graph

#: what ``fault-wrong`` produces, so that ``--formats fault-graph`` leaves only wrong candidates
WRONG_GRAPH = Format("fault-graph")

FAULTS = ("crash", "hang", "raise", "wrong", "slow")


@hookimpl
def sextant_register_exporters() -> list[ExporterSpec]:
    chosen = os.environ.get("SEXTANT_FAULTS")
    names = FAULTS if chosen is None else [n.strip() for n in chosen.split(",") if n.strip()]
    options = {"seconds": float(os.environ.get("SEXTANT_FAULT_SLOW_S", "2"))}
    return [
        ExporterSpec(
            f"fault-{name}",
            SOURCE,
            WRONG_GRAPH if name == "wrong" else GRAPH,
            run=f"sextant.testing.faults:fault_{name}",
            options=options,
        )
        for name in names
    ]


@hookimpl
def sextant_register_runners() -> list[RunnerSpec]:
    return [RunnerSpec("fault-graph", WRONG_GRAPH, load="sextant.testing.fake:load_graph")]


def fault_crash(request: StepRequest) -> Path:
    print("about to crash", flush=True)
    os.kill(os.getpid(), signal.SIGSEGV)
    raise AssertionError("unreachable")


def fault_hang(request: StepRequest) -> Path:
    time.sleep(3600)
    raise AssertionError("unreachable")


def fault_raise(request: StepRequest) -> Path:
    raise ValueError("unsupported operator 'Frobnicate' in layer 3")


def fault_wrong(request: StepRequest) -> Path:
    weights = dict(NumpyMLP.read(request.input).weights)
    weights["b2"] = weights["b2"] + 0.5
    return write_graph(request.output_dir, weights, "float32")


def fault_slow(request: StepRequest) -> Path:
    time.sleep(request.options["seconds"])
    return write_graph(request.output_dir, NumpyMLP.read(request.input).weights, "float32")
