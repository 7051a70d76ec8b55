"""Skip a test where what it needs is optional; fail it where everything is meant to be installed.

A test that needs an optional package (diffusers, tf2onnx, another plugin) or a tool is skipped, with
the reason, where that is missing: a contributor's environment need not hold everything. Where it is
meant to be there, the environment says so and the same absence fails the test, so that a broken
install shows as a failure, not as skips nobody reads:

- ``SEXTANT_REQUIRE_ALL=1`` (``make test``, in the environments that hold every component their tests
  use): a missing module or component fails;
- ``SEXTANT_REQUIRE_TRITON=1``, ``SEXTANT_REQUIRE_POSTGRES=1``, ``SEXTANT_REQUIRE_BROWSER=1``: the
  same for one component each (tritonserver and perf_analyzer; a PostgreSQL server; Chromium).

Only tests import this module (it imports pytest). :func:`marks` needs the
``sextant.testing.fixtures`` plugin, which turns its mark into a failure.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

REQUIRE_ALL = "SEXTANT_REQUIRE_ALL"
#: the mark :func:`marks` puts on a test that must fail: ``sextant_missing(reason)``
MISSING_MARK = "sextant_missing"


def required(variable: str = REQUIRE_ALL) -> bool:
    """Whether the environment sets ``variable`` to 1: what is missing fails instead of skipping."""
    return os.environ.get(variable) == "1"


def skip_or_fail(reason: str, variable: str = REQUIRE_ALL) -> NoReturn:
    """Skip the calling test (or, at module level, the module) with ``reason``; fail it where the
    environment sets ``variable=1``."""
    __tracebackhide__ = True  # pytest reports the skip or failure at the test, not here
    if required(variable):
        pytest.fail(f"{variable}=1, but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def importorskip(name: str, reason: str | None = None, variable: str = REQUIRE_ALL) -> ModuleType:
    """:func:`pytest.importorskip`, except that with ``variable=1`` a module that cannot be imported
    fails (at module level: a collection error naming the module)."""
    __tracebackhide__ = True
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        skip_or_fail(f"{name} cannot be imported: {exc}" + (f" ({reason})" if reason else ""), variable)


def marks(reason: str | None, variable: str = REQUIRE_ALL) -> list[pytest.MarkDecorator]:
    """For a module's ``pytestmark``: nothing where ``reason`` is ``None`` (all there), else a skip
    with the reason, or, where the environment sets ``variable=1``, a mark that fails every test of
    the module with it (``skipif`` cannot fail)."""
    if reason is None:
        return []
    if required(variable):
        return [getattr(pytest.mark, MISSING_MARK)(f"{variable}=1, but {reason}")]
    return [pytest.mark.skip(reason=reason)]
