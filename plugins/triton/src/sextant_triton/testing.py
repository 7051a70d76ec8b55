"""pytest fixtures that run the real ``tritonserver``: ``pytest_plugins = ["sextant_triton.testing"]``.

- ``triton_server``: a factory ``triton_server(repository) -> TritonServer`` that starts the server
  (from the ``nvidia-pytriton`` wheel) on free loopback ports with the Python backend and the
  Python-based ``onnxruntime`` backend (:mod:`sextant_triton.ort_backend`), waits for readiness
  with a bounded number of polls, and stops every server it started, by PID, at teardown.
- ``ORT_BACKEND``: that backend's ``model.py``, for :func:`sextant_triton.server.start_server`.

Tests that use the fixture are skipped, with the reason, where nvidia-pytriton is not installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.util import find_spec
from pathlib import Path

import pytest

from sextant_triton.server import TritonServer, start_server

ORT_BACKEND = Path(__file__).with_name("ort_backend.py")
NO_SERVER = (
    None if find_spec("pytriton") else "tritonserver ships in nvidia-pytriton: pip install 'sextant-triton[serve]'"
)


@pytest.fixture(scope="module")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., TritonServer]]:
    if NO_SERVER:
        pytest.skip(NO_SERVER)
    started: list[TritonServer] = []

    def start(repository: Path, **kwargs: object) -> TritonServer:
        workdir = tmp_path_factory.mktemp("tritonserver")
        server = start_server(repository, python_backends={"onnxruntime": ORT_BACKEND}, workdir=workdir, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
