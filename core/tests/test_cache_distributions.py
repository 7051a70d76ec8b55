"""Which distributions provide a module, read once per installation, not once per run."""

import importlib.metadata

import pytest
from sextant import cache


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("SEXTANT_CACHE_DIR", str(tmp_path))
    cache._module_distributions.cache_clear()
    yield tmp_path
    cache._module_distributions.cache_clear()


def test_the_module_to_distribution_map_is_kept_until_what_is_installed_changes(fresh, monkeypatch):
    computed = cache._module_distributions()
    assert computed == importlib.metadata.packages_distributions() and "numpy" in computed["numpy"]
    (kept,) = (fresh / "distributions").iterdir()

    def forbidden():
        raise AssertionError("read every distribution's files again")

    monkeypatch.setattr(importlib.metadata, "packages_distributions", forbidden)
    cache._module_distributions.cache_clear()
    assert cache._module_distributions() == computed  # the next run reads the kept answer

    installed = cache._installed_metadata()
    assert any(name.startswith("numpy-") for _, name, _ in installed)
    monkeypatch.setattr(cache, "_installed_metadata", lambda: [*installed, ("site", "new_thing-1.0.dist-info", 1)])
    cache._module_distributions.cache_clear()
    with pytest.raises(AssertionError, match="read every"):  # something installed: computed again
        cache._module_distributions()
    kept.write_text("not json")
    monkeypatch.undo()
    monkeypatch.setenv("SEXTANT_CACHE_DIR", str(fresh))
    cache._module_distributions.cache_clear()
    assert cache._module_distributions() == computed  # a damaged file is computed again, not an error
