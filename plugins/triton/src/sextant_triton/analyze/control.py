"""The server an analysis measures, and how configurations reach it: the repository API.

- :class:`LocalServer`: sextant starts the bundled ``tritonserver`` on loopback ports with explicit
  model control, loads each configuration with the repository API's config override (the
  repository's files are never rewritten), restarts a server that died, and stops it by PID.
- :class:`RemoteServer`: an existing server (``--url``): sextant loads and unloads only the models
  it analyzes and, when done, puts back what was loaded before (the repository's own
  configuration, or unloaded).

Server memory is the resident memory of the server and its backend processes (the Python backend's
stubs), read from ``/proc``; a remote server's is not measured. With a GPU, the memory in use on
the GPUs (``nvidia-smi``) is recorded too, as ``gpu_memory_mb`` (not run here: no GPU).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from sextant.api import SextantError

from sextant_triton.server import PYTHON_BASED, TritonServer, error_lines, start_server



class ServerControl(Protocol):
    """What the search needs of a server."""

    grpc_url: str

    def apply(self, configs: Sequence[Mapping[str, Any]]) -> None:
        """Load every configuration (composing models first); a failure names the model and Triton's reason."""

    def alive(self) -> bool: ...

    def restart(self) -> None: ...

    def memory_mb(self) -> float | None: ...

    def close(self) -> None: ...


@contextmanager
def _connected(url: str) -> Iterator[Any]:
    """A gRPC client of the server at ``url``, closed afterwards."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    try:
        yield client
    finally:
        client.close()


#: how many times, READY_PAUSE_S apart, a loaded model is asked whether it is ready (a minute: the
#: first answer is almost always yes, and five seconds was a short bound for a loaded machine)
READY_POLLS = 1200
READY_PAUSE_S = 0.05


def load_configs(url: str, configs: Sequence[Mapping[str, Any]], sleep: Callable[[float], None] = time.sleep) -> None:
    """Load every configuration through the repository API, in order, each ready before the next
    (and before anything measures it); a failure names the model and Triton's reason."""
    from tritonclient.utils import InferenceServerException

    with _connected(url) as client:
        for config in configs:
            try:
                client.load_model(config["name"], config=json.dumps(config))
                _wait_ready(client, config["name"], sleep)
            except InferenceServerException as exc:
                raise SextantError(f"the server could not load {config['name']!r}: {exc.message()}") from exc


def _wait_ready(client: Any, name: str, sleep: Callable[[float], None]) -> None:
    """Wait, a bounded number of polls, until the server says ``name`` is ready. ``load_model``
    returns once the load is done; an analysis's first perf_analyzer run on a just-loaded LLM still
    once found no version of it, on a loaded machine."""
    for _ in range(READY_POLLS):
        if client.is_model_ready(name):
            return
        sleep(READY_PAUSE_S)
    states = {m["name"]: m.get("state", "?") for m in client.get_model_repository_index(as_json=True).get("models", [])}
    raise SextantError(
        f"the server loaded {name!r} but did not call it ready after {READY_POLLS} polls "
        f"(its state: {states.get(name, 'not in the repository index')})",
        hint="See the server's log for why (a backend that failed after loading).",
    )


def _tree_rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` and every process below it, in MB."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        child, parent = int(stat.parent.name), int(fields[1])
        children.setdefault(parent, []).append(child)
        rss[child] = int(fields[21])  # pages
    if pid not in rss:
        return None
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss.get(current, 0)
        todo += children.get(current, [])
    import os

    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def gpu_memory_mb() -> float | None:
    """Memory in use on every GPU together (``nvidia-smi``), or ``None`` without one."""
    import shutil
    import subprocess

    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None
    done = subprocess.run(
        [tool, "--query-gpu=memory.used", "--format=csv,noheader,nounits"], capture_output=True, text=True, check=False
    )
    try:
        return sum(float(line) for line in done.stdout.split()) if done.returncode == 0 else None
    except ValueError:
        return None


class LocalServer:
    """The bundled ``tritonserver`` on ``repository``, started with explicit model control."""

    def __init__(self, repository: Path, workdir: Path) -> None:
        self.repository, self.workdir = repository, workdir
        self.server: TritonServer = self._start()
        self.restarts = 0

    def _start(self) -> TritonServer:
        return start_server(
            self.repository,
            python_backends=PYTHON_BASED,
            workdir=self.workdir,
            extra_args=("--model-control-mode=explicit",),
        )

    @property
    def grpc_url(self) -> str:
        return self.server.grpc_url

    def apply(self, configs: Sequence[Mapping[str, Any]]) -> None:
        """As :func:`load_configs`; a failure also carries the server log's own reason (Triton's
        answer to a failed load is often only "failed to poll from model repository")."""
        seen = len(self.server.logs())
        try:
            load_configs(self.grpc_url, configs)
        except SextantError as exc:
            lines = [ln.split("] ", 1)[-1].strip('"') for ln in error_lines(self.server.logs()[seen:])]
            said = [ln for ln in lines if ln not in exc.message]
            if not said:
                raise
            raise SextantError(f"{exc.message}; its log says: {' | '.join(said)}", hint=exc.hint) from exc

    def alive(self) -> bool:
        return self.server.process.poll() is None and self.server.ready()

    def restart(self) -> None:
        self.server.stop()
        self.server = self._start()
        self.restarts += 1

    def memory_mb(self) -> float | None:
        return _tree_rss_mb(self.server.pid)

    def close(self) -> None:
        self.server.stop()


class RemoteServer:
    """A server sextant did not start: only the analyzed models are touched, and restored at the end."""

    def __init__(self, url: str, models: Sequence[str]) -> None:
        from tritonclient.utils import InferenceServerException

        self.grpc_url = url
        self.models = tuple(models)
        try:
            with _connected(url) as client:
                if not client.is_server_live():
                    raise SextantError(f"the server at {url} is not live")
                index = client.get_model_repository_index(as_json=True).get("models", [])
        except InferenceServerException as exc:
            raise SextantError(
                f"cannot reach a Triton server at {url}: {exc.message()}",
                hint="Give --url the gRPC address (host:port, default port 8001) of a running server.",
            ) from exc
        known = {m["name"] for m in index}
        missing = [m for m in self.models if m not in known]
        if missing:
            raise SextantError(
                f"the server at {url} has no model {', '.join(missing)} in its repository",
                hint=f"Models there: {', '.join(sorted(known)) or 'none'}.",
            )
        self.loaded_before = {m["name"] for m in index if m.get("state") == "READY"}

    def apply(self, configs: Sequence[Mapping[str, Any]]) -> None:
        load_configs(self.grpc_url, configs)

    def alive(self) -> bool:
        try:
            with _connected(self.grpc_url) as client:
                return bool(client.is_server_ready())
        except Exception:  # noqa: BLE001 - any failure to answer is "not alive"
            return False

    def restart(self) -> None:
        raise SextantError(f"the server at {self.grpc_url} stopped answering; sextant does not restart a remote server")

    def memory_mb(self) -> float | None:
        return None

    def close(self) -> None:
        """Reload what was loaded before with the repository's own configuration; unload the rest."""
        with _connected(self.grpc_url) as client:
            for name in reversed(self.models):
                if name in self.loaded_before:
                    client.load_model(name)
                else:
                    client.unload_model(name)
