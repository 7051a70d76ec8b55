"""Helpers shared by the cross-distribution tests (a module, not conftest: several conftests meet here)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--max-batch-size", "4", "--batch-budget-s", "0.2", "--window-ms", "5"]


def sextant(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from sextant.cli import main; sys.exit(main())", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        timeout=900,
    )


def mlp_args(workspace: Path, *extra: str) -> list[str]:
    """`sextant optimize` of the bundled MLP example into ``workspace``, with a short profiler."""
    return [
        "optimize",
        "examples/mlp.py:build",
        "--samples",
        "examples/mlp.py:samples",
        "-w",
        str(workspace),
        *extra,
        "--json",
        *FAST,
    ]


def assert_judged_against_the_reference(package: Path, record: Mapping[str, Any]) -> None:
    """The candidate was compared with the fp32 reference under its precision's tolerance, and its
    status follows from its outputs: recomputed here from the package's files, element by element
    (an element is off when it misses both atol and rtol * |reference|)."""
    from sextant.compare import Tolerance
    from sextant.samples import load_batches

    tolerance = Tolerance.for_precision(record["precision"])
    assert (record["correctness"]["atol"], record["correctness"]["rtol"]) == (tolerance.atol, tolerance.rtol)
    reference = load_batches(package / "reference.npz")
    outputs = load_batches(package / record["outputs"])
    assert len(outputs) == len(reference)
    within = True
    for expected, got in zip(reference, outputs):
        for name, ref in expected.items():
            ref64, error = ref.astype(np.float64), np.abs(got[name].astype(np.float64) - ref.astype(np.float64))
            within &= bool(np.all((error <= tolerance.atol) | (error <= tolerance.rtol * np.abs(ref64))))
    assert record["status"] == ("ok" if within else "incorrect"), (within, record["correctness"])
