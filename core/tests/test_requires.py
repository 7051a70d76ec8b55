"""sextant.testing.requires: a missing component skips a test, and fails it where the environment
says everything is installed (SEXTANT_REQUIRE_ALL=1, or one component's variable)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sextant.testing.requires import importorskip, marks, skip_or_fail

ABSENT = "sextant_no_such_module_here"


def test_a_missing_module_skips_unless_required(monkeypatch):
    monkeypatch.delenv("SEXTANT_REQUIRE_ALL", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"{ABSENT} cannot be imported: .* \\(the reason\\)"):
        importorskip(ABSENT, reason="the reason")
    monkeypatch.setenv("SEXTANT_REQUIRE_ALL", "1")
    with pytest.raises(pytest.fail.Exception, match=f"^SEXTANT_REQUIRE_ALL=1, but {ABSENT} cannot be imported"):
        importorskip(ABSENT)
    # another variable decides for its own component only
    with pytest.raises(pytest.skip.Exception):
        skip_or_fail("no server", "SEXTANT_REQUIRE_SOMETHING")
    monkeypatch.setenv("SEXTANT_REQUIRE_SOMETHING", "1")
    with pytest.raises(pytest.fail.Exception, match="^SEXTANT_REQUIRE_SOMETHING=1, but no server$"):
        skip_or_fail("no server", "SEXTANT_REQUIRE_SOMETHING")


def test_an_importable_module_is_returned(monkeypatch):
    monkeypatch.setenv("SEXTANT_REQUIRE_ALL", "1")
    assert importorskip("json").dumps([1]) == "[1]"


def test_marks(monkeypatch):
    monkeypatch.delenv("SEXTANT_REQUIRE_X", raising=False)
    assert marks(None, "SEXTANT_REQUIRE_X") == []
    (skip,) = marks("gone", "SEXTANT_REQUIRE_X")
    assert (skip.name, skip.kwargs) == ("skip", {"reason": "gone"})
    # with SEXTANT_REQUIRE_X=1 the mark is sextant.testing.fixtures' own (registered by that plugin):
    # checked in a real pytest run below


CONFTEST = 'pytest_plugins = ["sextant.testing.fixtures"]\n'


MODULE = """
import pytest
from sextant.testing.requires import marks

pytestmark = marks("the server is not installed", "SEXTANT_REQUIRE_X")


def test_it():
    pass
"""


@pytest.mark.parametrize("required", [False, True])
def test_a_marked_module_skips_or_fails_in_a_real_pytest_run(tmp_path, monkeypatch, required):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_marked.py").write_text(MODULE)
    if required:
        monkeypatch.setenv("SEXTANT_REQUIRE_X", "1")
    else:
        monkeypatch.delenv("SEXTANT_REQUIRE_X", raising=False)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    if required:  # failed before it ran (at its setup), with the reason
        assert done.returncode == 1, done.stdout
        assert "ERROR at setup of test_it" in done.stdout
        assert "\nSEXTANT_REQUIRE_X=1, but the server is not installed\n" in done.stdout
        assert done.stdout.rstrip().splitlines()[-1].strip("= ").startswith("1 error in ")
    else:
        assert done.returncode == 0, done.stdout
        assert "SKIPPED [1] test_marked.py: the server is not installed" in done.stdout
        assert done.stdout.rstrip().splitlines()[-1].strip("= ").startswith("1 skipped in ")
