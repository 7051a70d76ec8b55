"""PyTriton's instance start-up race, mended where it happens.

A PyTriton model with several instances starts them in parallel, each a Python stub that runs
PyTriton's proxy (the files it hands Triton with the model). The first instance serves its
configuration on a Unix socket, the others fetch it (``get_config_from_handshake_server``): they wait
for the socket's file, then connect once. The first instance's asyncio server binds the socket, which
makes the file, before it listens, so an instance that connects in between is refused, and the model
fails to load. On a loaded 2-core machine that window is milliseconds wide and a clean-clone test
run hit it three starts in a row. PyTriton's own handshake in this process (after the load) also gives
up after one second.

:func:`mended` makes both fetches patient while a server starts: a refused, missing or timed-out
socket is tried again until :data:`PATIENCE_S` has passed. The proxy's copy gets :func:`patient`'s
own source appended to its ``communication.py``: the stub imports that file, not this package.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

COMMUNICATION = "communication.py"
FETCH = "get_config_from_handshake_server"
PATIENCE_S = 10.0


def patient(
    fetch: Callable[..., dict],
    patience_s: float = 10.0,
    pause: Callable[[float], Any] | None = None,
    clock: Callable[[], float] | None = None,
) -> Callable[..., dict]:
    """``fetch`` (PyTriton's ``get_config_from_handshake_server``), tried again after a refused,
    missing or timed-out socket until ``patience_s`` (or the caller's longer timeout) has passed;
    then its last error is raised. ``pause`` and ``clock`` default to ``time.sleep`` and
    ``time.monotonic``. Self-contained (no names of this module), so that its source runs in the proxy."""
    pause = pause or time.sleep
    clock = clock or time.monotonic

    def get_config_from_handshake_server(socket_path, timeout_s=1.0):  # PyTriton's signature
        deadline = clock() + max(timeout_s, patience_s)
        while True:
            try:
                return fetch(socket_path, timeout_s=max(0.001, deadline - clock()))
            except (ConnectionRefusedError, FileNotFoundError, TimeoutError):
                if clock() >= deadline:
                    raise
                pause(0.005)

    return get_config_from_handshake_server


def proxy_source(source: bytes) -> bytes:
    """PyTriton's proxy ``communication.py`` with its fetch made patient; unchanged where that file
    no longer defines the fetch (another PyTriton version), where the restart in
    :func:`sextant_triton.serve._start` is what is left."""
    if f"def {FETCH}(".encode() not in source:
        return source
    addition = (
        "\n\n# Added by sextant (sextant_triton.handshake): the first instance's socket exists before it listens.\n"
        "from typing import Any, Callable  # patient's annotations\n\n\n"
        f"{inspect.getsource(patient)}\n"
        f"{FETCH} = patient({FETCH}, patience_s={PATIENCE_S!r})\n"
    )
    return source + addition.encode()


@contextmanager
def mended() -> Iterator[None]:
    """Within this block, a PyTriton model's load hands Triton a proxy whose instances wait for the
    first one's handshake, and PyTriton's own handshake in this process waits as long."""
    import pytriton.models.model as module

    files = module.Model.get_proxy_model_files
    fetch = getattr(module, FETCH)

    def get_proxy_model_files(model: Any) -> dict[str, bytes]:
        found = files(model)
        return {key: proxy_source(text) if key.endswith("/" + COMMUNICATION) else text for key, text in found.items()}

    module.Model.get_proxy_model_files = get_proxy_model_files  # type: ignore[method-assign]
    setattr(module, FETCH, patient(fetch, PATIENCE_S))
    try:
        yield
    finally:
        module.Model.get_proxy_model_files = files  # type: ignore[method-assign]
        setattr(module, FETCH, fetch)
