"""Helpers shared by the cross-distribution tests (a module, not conftest: several conftests meet here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
