from __future__ import annotations

import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest
from sextant.isolation import shared_servers
from sextant.options import OptimizeOptions
from sextant.plugins import load_catalog
from sextant.testing import FAST as SHORT

FAST = replace(SHORT, max_batch=8)


@pytest.fixture(autouse=True, scope="session")
def _shared_fork_servers():
    """The session's runs fork their children from warm servers (sextant.isolation.shared_servers)."""
    with shared_servers():
        yield


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    for var in ("SEXTANT_PLUGINS", "SEXTANT_PLUGIN_MODULES", "SEXTANT_FAULTS", "SEXTANT_TRACE_PLUGINS", "SEXTANT_HISTORY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SEXTANT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def fake_catalog():
    return load_catalog(extra_modules=["sextant.testing.fake"], entry_points=False)


@pytest.fixture
def catalog_with(tmp_path, monkeypatch):
    """``make(name, source)``: the fake plugins' catalog with one more plugin, the module ``name``
    written from ``source`` (loaded first: its steps come first in a plan's order)."""
    written: list[str] = []

    def make(name: str, source: str):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        written.append(name)
        return load_catalog(extra_modules=[name, "sextant.testing.fake"], entry_points=False)

    yield make
    for name in written:
        sys.modules.pop(name, None)


@pytest.fixture
def fault_catalog(monkeypatch):
    def make(*faults: str, slow_s: float = 2.0):
        monkeypatch.setenv("SEXTANT_FAULTS", ",".join(faults))
        monkeypatch.setenv("SEXTANT_FAULT_SLOW_S", str(slow_s))
        return load_catalog(extra_modules=["sextant.testing.fake", "sextant.testing.faults"], entry_points=False)

    return make


@pytest.fixture
def options(tmp_path):
    """Fast profiles, every candidate swept in full (``cutoff=0``: no screen, no cut-off), so what
    the tests assert never depends on how fast one candidate ran next to another; the screen's
    own tests set a cut-off."""
    return OptimizeOptions(workspace=tmp_path / "ws", max_batch_size=8, profiler=FAST, step_timeout=60, cutoff=0.0)


@pytest.fixture
def samples():
    rng = np.random.default_rng(1)
    return [
        {"x": rng.standard_normal((4, 8)).astype(np.float32)},
        {"x": rng.standard_normal((2, 8)).astype(np.float32)},
    ]
