import pytest
from sextant.isolation import shared_servers


@pytest.fixture(autouse=True, scope="session")
def _shared_fork_servers():
    """The session's runs fork their children from warm servers (sextant.isolation.shared_servers)."""
    with shared_servers():
        yield


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("SEXTANT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("SEXTANT_HISTORY", "off")  # no run orders its candidates by what an earlier test learned
    for var in ("SEXTANT_PLUGINS", "SEXTANT_PLUGIN_MODULES"):
        monkeypatch.delenv(var, raising=False)


def pytest_collection_modifyitems(config, items):
    """The ``architectures`` tests (tests/test_architectures.py beyond its default two) run only
    when ``-m`` names that marker (``make test-architectures``); otherwise they are deselected."""
    if "architectures" in (config.getoption("markexpr") or ""):
        return
    kept = [item for item in items if item.get_closest_marker("architectures") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
