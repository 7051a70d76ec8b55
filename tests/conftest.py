from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--max-batch-size", "4", "--batch-budget-s", "0.2", "--window-ms", "5"]


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("SEXTANT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    for var in ("SEXTANT_PLUGINS", "SEXTANT_PLUGIN_MODULES"):
        monkeypatch.delenv(var, raising=False)


def sextant(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from sextant.cli import main; sys.exit(main())", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        timeout=900,
    )
