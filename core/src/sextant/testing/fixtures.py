"""pytest fixtures for plugin tests: ``pytest_plugins = ["sextant.testing.fixtures"]`` in a conftest.

- an isolated ``SEXTANT_CACHE_DIR`` for the test session (autouse);
- warm fork servers shared by the session's runs (autouse; :func:`sextant.isolation.shared_servers`):
  each run's children no longer wait for a new server to import torch;
- ``catalog``: every installed plugin, as the CLI sees them;
- ``options``: :class:`~sextant.options.OptimizeOptions` writing to a temporary workspace, with a
  profiler shortened for tests (``sextant.testing.FAST``) and no paired re-measurement of the pick
  (``paired_rounds=0``: it decides close calls by timing, which a plugin's test does not check;
  set it back with ``dataclasses.replace`` where one does);
- the ``sextant_missing(reason)`` mark of :func:`sextant.testing.requires.marks`: its test fails
  with the reason before it runs.
"""

from __future__ import annotations

import pytest

from sextant.isolation import shared_servers
from sextant.options import OptimizeOptions
from sextant.plugins import load_catalog
from sextant.testing import FAST
from sextant.testing.requires import MISSING_MARK


def pytest_configure(config):
    config.addinivalue_line(
        "markers", f"{MISSING_MARK}(reason): fails the test with the reason (something required is missing)"
    )


def pytest_runtest_setup(item):
    mark = item.get_closest_marker(MISSING_MARK)
    if mark is not None:
        pytest.fail(mark.args[0], pytrace=False)


@pytest.fixture(autouse=True, scope="session")
def _shared_fork_servers():
    with shared_servers():
        yield


@pytest.fixture(autouse=True)
def _sextant_cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("SEXTANT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "sextant-cache"))
    monkeypatch.setenv("SEXTANT_HISTORY", "off")  # no run orders its candidates by what an earlier test learned


@pytest.fixture(scope="session")
def catalog():
    return load_catalog()


@pytest.fixture
def options(tmp_path):
    return OptimizeOptions(
        workspace=tmp_path / "ws", max_batch_size=FAST.max_batch, profiler=FAST, step_timeout=300, paired_rounds=0
    )
