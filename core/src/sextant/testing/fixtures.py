"""pytest fixtures for plugin tests: ``pytest_plugins = ["sextant.testing.fixtures"]`` in a conftest.

- an isolated ``SEXTANT_CACHE_DIR`` for the test session (autouse);
- ``catalog``: every installed plugin, as the CLI sees them;
- ``options``: :class:`~sextant.options.OptimizeOptions` writing to a temporary workspace, with a
  profiler shortened for tests (``sextant.testing.FAST``).
"""

from __future__ import annotations

import pytest

from sextant.options import OptimizeOptions
from sextant.plugins import load_catalog
from sextant.testing import FAST


@pytest.fixture(autouse=True)
def _sextant_cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("SEXTANT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "sextant-cache"))


@pytest.fixture(scope="session")
def catalog():
    return load_catalog()


@pytest.fixture
def options(tmp_path):
    return OptimizeOptions(workspace=tmp_path / "ws", max_batch_size=FAST.max_batch, profiler=FAST, step_timeout=300)
