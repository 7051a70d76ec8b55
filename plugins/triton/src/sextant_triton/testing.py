"""pytest fixtures that run the real ``tritonserver``: ``pytest_plugins = ["sextant_triton.testing"]``.

- ``triton_server``: a factory ``triton_server(repository) -> TritonServer`` that starts the server
  (from the ``nvidia-pytriton`` wheel) on free loopback ports with the Python backend and sextant's
  Python-based ``onnxruntime`` and ``openvino`` backends (``sextant_triton.server.PYTHON_BASED``),
  waits for readiness with a bounded number of polls, and stops every server it started, by PID, at teardown.

Tests that use the fixture, or whose module is marked with :func:`needs_triton`, are skipped, with the
reason, where nvidia-pytriton (or perf_analyzer, or a module they name) is missing, and fail instead
where ``SEXTANT_REQUIRE_TRITON=1`` (``make test``, which installs them all).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from importlib.util import find_spec
from pathlib import Path

import pytest

from sextant_triton import perf
from sextant_triton.server import PYTHON_BASED, TritonServer, start_server

NO_SERVER = (
    None if find_spec("pytriton") else "tritonserver ships in nvidia-pytriton: pip install 'sextant-triton[serve]'"
)
REQUIRE_TRITON = "SEXTANT_REQUIRE_TRITON"
#: the mark that sextant.testing.fixtures (loaded beside this plugin) turns into a failure at setup;
#: named here, not imported: a plugin imports sextant.api only (as sextant.testing.requires.marks)
MISSING_MARK = "sextant_missing"


def _skip_or_fail(reason: str) -> None:
    if os.environ.get(REQUIRE_TRITON) == "1":
        pytest.fail(f"{REQUIRE_TRITON}=1, but {reason}", pytrace=False)
    pytest.skip(reason)


def triton_missing(*, perf_analyzer: bool = False, modules: Sequence[str] = ()) -> str | None:
    """Why tests of the real tritonserver (and perf_analyzer, and ``modules``) cannot run here, or
    ``None`` when they can."""
    if NO_SERVER:
        return NO_SERVER
    if perf_analyzer and (reason := perf.missing()) is not None:
        return reason
    absent = [m for m in modules if find_spec(m) is None]
    return f"needs {', '.join(absent)}" if absent else None


def needs_triton(*, perf_analyzer: bool = False, modules: Sequence[str] = ()) -> list[pytest.MarkDecorator]:
    """A test module's ``pytestmark`` for :func:`triton_missing`: its tests skip with the reason, or
    fail with it where ``SEXTANT_REQUIRE_TRITON=1``."""
    reason = triton_missing(perf_analyzer=perf_analyzer, modules=modules)
    if reason is None:
        return []
    if os.environ.get(REQUIRE_TRITON) == "1":
        return [getattr(pytest.mark, MISSING_MARK)(f"{REQUIRE_TRITON}=1, but {reason}")]
    return [pytest.mark.skip(reason=reason)]


@pytest.fixture(scope="module")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., TritonServer]]:
    if NO_SERVER:
        _skip_or_fail(NO_SERVER)
    started: list[TritonServer] = []

    def start(repository: Path, **kwargs: object) -> TritonServer:
        workdir = tmp_path_factory.mktemp("tritonserver")
        server = start_server(repository, python_backends=PYTHON_BASED, workdir=workdir, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()

