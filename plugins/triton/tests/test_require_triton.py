"""SEXTANT_REQUIRE_TRITON: the real-Triton tests skip where tritonserver or perf_analyzer is missing,
and fail instead where the environment says they are installed (make test)."""

from __future__ import annotations

import pytest
from sextant_triton import testing


def test_nothing_missing_marks_nothing(monkeypatch):
    monkeypatch.setattr(testing, "NO_SERVER", None)
    assert testing.needs_triton(modules=("json",)) == []


@pytest.mark.parametrize("required", [False, True])
def test_a_missing_server_or_module_skips_or_fails(monkeypatch, required):
    monkeypatch.setenv("SEXTANT_REQUIRE_TRITON", "1" if required else "0")
    monkeypatch.setattr(testing, "NO_SERVER", None)
    (mark,) = testing.needs_triton(modules=("json", "sextant_no_such_module"))
    if required:  # sextant.testing.fixtures fails a test with this mark at its setup
        assert (mark.name, mark.args) == (
            "sextant_missing",
            ("SEXTANT_REQUIRE_TRITON=1, but needs sextant_no_such_module",),
        )
    else:
        assert (mark.name, mark.kwargs) == ("skip", {"reason": "needs sextant_no_such_module"})
    monkeypatch.setattr(testing, "NO_SERVER", "no tritonserver here")
    (mark,) = testing.needs_triton()
    assert (mark.args or (mark.kwargs["reason"],))[0].endswith("no tritonserver here")
    raised = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(raised, match="no tritonserver here"):
        testing._skip_or_fail(testing.NO_SERVER)
