"""PyTriton's instance start-up race (:mod:`sextant_triton.handshake`): a handshake socket that exists
before it listens, met with PyTriton's own fetch, on a real Unix socket; no test here waits on time."""

from __future__ import annotations

import json
import socket
import threading
import types

import pytest
from sextant_triton import handshake
from sextant_triton.testing import needs_triton

pytestmark = needs_triton()  # PyTriton: skipped without it, a failure where SEXTANT_REQUIRE_TRITON=1

CONFIG = {"data_socket": "/tmp/data.sock", "authkey": "a2V5"}


def _answer_once(server: socket.socket) -> None:
    """Serve ``CONFIG`` to one ``get_config`` request, as PyTriton's handshake server does."""
    connection, _ = server.accept()
    with connection:
        assert connection.recv(64) == b"get_config\n"
        payload = json.dumps(CONFIG).encode()
        connection.sendall(len(payload).to_bytes(4, "big") + payload)


@pytest.fixture
def bound(tmp_path):
    """A Unix socket bound, so its file exists, but not listening yet: the first instance's
    handshake server between its ``bind`` and its ``listen``."""
    path = tmp_path / "model-config.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    yield path, server
    server.close()


def test_pytritons_fetch_is_refused_between_bind_and_listen(bound):
    """The race itself, with PyTriton's own fetch: the file exists, the connection is refused."""
    from pytriton.proxy.communication import get_config_from_handshake_server

    path, _ = bound
    with pytest.raises(ConnectionRefusedError):
        get_config_from_handshake_server(path)


def test_the_patient_fetch_waits_for_the_listen(bound):
    """Made patient, the same fetch is refused, pauses (the first instance listens then), and gets
    the configuration."""
    from pytriton.proxy.communication import get_config_from_handshake_server

    path, server = bound
    pauses = []

    def pause(seconds: float) -> None:
        if not pauses:
            server.listen(1)
            threading.Thread(target=_answer_once, args=(server,), daemon=True).start()
        pauses.append(seconds)

    fetch = handshake.patient(get_config_from_handshake_server, pause=pause)
    assert fetch(path) == CONFIG
    assert len(pauses) == 1


def test_the_patient_fetch_gives_up_after_its_patience():
    """A socket that never listens: tried on the injected clock until the patience is spent, then
    the last refusal is raised."""
    now = [0.0]
    tries = []

    def refused(socket_path, timeout_s):
        tries.append(timeout_s)
        raise ConnectionRefusedError(111, "Connection refused")

    fetch = handshake.patient(refused, patience_s=1.0, pause=lambda s: now.__setitem__(0, now[0] + 0.25),
                              clock=lambda: now[0])  # fmt: skip
    with pytest.raises(ConnectionRefusedError):
        fetch("unused.sock")
    assert len(tries) == 5  # at 0, 0.25, 0.5, 0.75 and 1.0 s
    assert tries[0] == 1.0 and tries[-1] == 0.001  # each try is given what is left of the patience


def test_other_errors_are_not_retried():
    def broken(socket_path, timeout_s):
        raise ValueError("invalid JSON from the server")

    with pytest.raises(ValueError, match="invalid JSON"):
        handshake.patient(broken, pause=lambda s: pytest.fail("paused"))("unused.sock")


def test_the_proxy_triton_is_handed_is_patient(bound):
    """Within :func:`handshake.mended`, the proxy files PyTriton hands Triton carry the patient fetch
    (run here as the stub runs it: the file's own module), and PyTriton's fetch in this process is
    patient too; after the block, both are PyTriton's again."""
    import pytriton.models.model as models

    original = models.get_config_from_handshake_server
    model = types.SimpleNamespace(model_version=1, SCRIPT_FILES_TO_COPY=models.Model.SCRIPT_FILES_TO_COPY)
    with handshake.mended():
        files = models.Model.get_proxy_model_files(model)
        assert models.get_config_from_handshake_server is not original
    assert models.get_config_from_handshake_server is original
    assert models.Model.get_proxy_model_files(model)["file:1/communication.py"] in files["file:1/communication.py"]

    proxy = types.ModuleType("communication")
    exec(compile(files["file:1/communication.py"], "communication.py", "exec"), proxy.__dict__)
    fetch = proxy.get_config_from_handshake_server
    assert fetch.__qualname__ == "patient.<locals>.get_config_from_handshake_server"
    path, server = bound
    server.listen(1)
    threading.Thread(target=_answer_once, args=(server,), daemon=True).start()
    assert fetch(path) == CONFIG


def test_another_pytriton_versions_proxy_is_left_alone():
    source = b"def some_other_fetch(path):\n    return {}\n"
    assert handshake.proxy_source(source) == source
