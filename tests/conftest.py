import pytest


@pytest.fixture(autouse=True)
def _cache(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("SEXTANT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    for var in ("SEXTANT_PLUGINS", "SEXTANT_PLUGIN_MODULES"):
        monkeypatch.delenv(var, raising=False)
