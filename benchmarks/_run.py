"""What the benchmark scripts share: one timed `sextant optimize` in a subprocess, and the CPU's name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def optimize(model: str, workspace: Path, *extra: str, env: Mapping[str, str] | None = None) -> tuple[float, dict]:
    """`sextant optimize MODEL -w WORKSPACE --json EXTRA...` from the repository root (with ``env``
    over this process's environment): its wall time in seconds and its JSON document. A failed run
    stops the benchmark with the end of its stderr."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "sextant.cli", "optimize", model, "-w", str(workspace), "--json", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env} if env else None,
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"sextant optimize {model} failed:\n{result.stderr[-3000:]}")
    return seconds, json.loads(result.stdout)


def cpu() -> str:
    """The CPU's model name and count, as lscpu gives them."""
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    name = fields.get("Model name", "?").strip()
    return f"{name}, {fields.get('CPU(s)', '?').strip()} CPUs ({fields.get('Core(s) per socket', '?').strip()} cores per socket)"
