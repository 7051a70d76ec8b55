"""``sextant serve``: serve a package's candidate through PyTriton, with sextant's own runner.

The runner runs in this process (PyTriton's proxy model hands it the requests Triton batched); the
serving settings are the ones ``sextant deploy triton`` derives from the package (max batch size,
dynamic batching, instances). Every endpoint binds to 127.0.0.1 unless told otherwise; the command
serves any other address with a warning that says what it exposes (``server.exposure``). SIGINT,
SIGTERM and SIGHUP stop the server; the PyTriton workspace is a temporary folder removed on the way out.
PyTriton starts ``tritonserver`` with a parent-death signal, so it ends with this process, however
that ends.

A port in use is refused before anything starts (``server.check_ports``: Triton would wait two
minutes). The server's own log (on a CPU-only machine, some fifty lines with GPU and NVML errors
that say nothing) goes to a file, :attr:`Served.log`, which a failure names with its error lines.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sextant.api import (
    Package,
    SextantError,
    ServingSettings,
    Signature,
    cache_dir,
    choose_candidate,
    serving_settings,
)

from sextant_triton import backends, config, handshake, servable, server
from sextant_triton.batching import run_batched
from sextant_triton.stream_scheduler import DEFAULT_MAX_SEQUENCES, check_max_sequences, refuse_max_sequences

log = logging.getLogger(__name__)

SOCKET_PATH_MAX = 107  # sockaddr_un.sun_path, less its terminating NUL
SOCKET_SUFFIX = 32  # what PyTriton adds to the workspace and model name ("/<model>_0_0-server.sock", ...)


@dataclass(frozen=True)
class Served:
    """A model being served: its name, candidate, endpoints and settings."""

    name: str
    candidate: str
    host: str
    http_port: int
    grpc_port: int
    settings: ServingSettings
    alive: Callable[[], bool] = field(default=lambda: True, compare=False, repr=False)
    metrics_port: int = 0
    notes: tuple[str, ...] = ()  # what the user should know (a candidate that was only screened)
    log: Path | None = None  # the server's own log

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"


def _infer_function(runner: Any, signature: Signature, batching: bool) -> Callable[[list], list]:
    """A PyTriton infer function over a list of requests: same-shaped requests run as one batch.

    A batched tensor with no other axis travels as ``[batch, 1]`` (Triton's dims may not be empty;
    a deployed config says the same with ``dims: [1]`` and an empty reshape)."""
    flat_in = {s.name for s in signature.inputs if batching and not config.dims(s, batching)}
    flat_out = {s.name for s in signature.outputs if batching and not config.dims(s, batching)}

    def infer(requests: list) -> list:
        feeds = [{n: a.reshape(len(a)) if n in flat_in else a for n, a in r.data.items()} for r in requests]
        results = run_batched(feeds, runner.infer, batching)
        failed = next((r for r in results if isinstance(r, Exception)), None)
        if failed is not None:
            raise failed
        answers = []
        for result in results:
            arrays = {n: np.asarray(result[n]) for n in signature.output_names}  # type: ignore[index]
            answers.append(
                {n: np.ascontiguousarray(a.reshape(-1, 1) if n in flat_out else a) for n, a in arrays.items()}
            )
        return answers

    return infer


def _tensors(specs: Sequence[Any], batching: bool) -> list[Any]:
    from pytriton.model_config import Tensor

    return [Tensor(name=s.name, dtype=np.dtype(s.dtype), shape=tuple(config.dims(s, batching)) or (1,)) for s in specs]


START_TRIES = 3


def _handshake_race(exc: BaseException | None) -> bool:
    """Whether ``exc``, or what caused it, is PyTriton's instance start-up race: the handshake's
    name in the message (an instance's error, with its stack, as Triton reports it) or in the stack
    of an error raised in this process (the handshake PyTriton's model makes after the load, which
    gives up after one second on a busy machine)."""
    import traceback

    while exc is not None:
        if handshake.FETCH in str(exc):
            return True
        if any(frame.name == handshake.FETCH for frame in traceback.extract_tb(exc.__traceback__)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextmanager
def _quiet_server() -> Iterator[None]:
    """PyTriton prints every line ``tritonserver`` writes to its stdout (``verbose=True``, which its
    ``Triton`` does not let a caller change): within this block it makes its server quiet. The server
    writes its log to the file it is given; what it prints before (a CPU machine's "Failed to
    initialize NVML") and on the way out ("Signal (2) received.") stays in PyTriton's memory."""
    import functools

    import pytriton.triton as module

    original = module.TritonServer
    module.TritonServer = functools.partial(original, verbose=False)  # type: ignore[misc]
    try:
        yield
    finally:
        module.TritonServer = original  # type: ignore[misc]


def _start(
    name: str,
    infer: list[Callable[[list], list]],
    signature: Signature | None,
    settings: ServingSettings,
    host: str,
    ports: dict[str, int],
    workspace: Path,
    log_file: Path,
    bind: Callable[[Any, str], None] | None = None,
    tries: int = START_TRIES,
) -> Any:
    """Start PyTriton with ``infer`` bound as ``name``; returns the running ``Triton``.

    PyTriton's proxy has a start-up race when a model has several instances (Triton initialises
    them in parallel): :mod:`sextant_triton.handshake` makes their handshake wait for it. Where
    that cannot (another PyTriton version's proxy), the race's errors, and only they, are retried
    with a fresh server, at most ``tries`` times. ``bind``: binds the
    model instead (``bind(triton, name)``: a streaming model, :mod:`sextant_triton.serve_stream`)."""
    from pytriton.model_config import DynamicBatcher, ModelConfig
    from pytriton.triton import Triton, TritonConfig

    batching = settings.max_batch_size > 0
    for attempt in range(1, tries + 1):
        triton = Triton(
            config=TritonConfig(
                http_address=host,
                grpc_address=host,
                metrics_address=host,
                exit_timeout_secs=5,
                log_verbose=0,
                log_file=log_file,
                **ports,
            ),
            workspace=workspace,
        )
        try:
            if bind is not None:
                bind(triton, name)
            else:
                triton.bind(
                    model_name=name,
                    infer_func=infer,
                    inputs=_tensors(signature.inputs, batching),
                    outputs=_tensors(signature.outputs, batching),
                    config=ModelConfig(
                        max_batch_size=settings.max_batch_size,
                        batching=batching,
                        batcher=DynamicBatcher(
                            max_queue_delay_microseconds=settings.queue_delay_us,
                            preferred_batch_size=list(settings.preferred_batch_sizes) or None,
                        ),
                    ),
                    strict=True,
                )
            with _quiet_server(), handshake.mended():
                triton.run()
            return triton
        except Exception as exc:
            triton.stop()
            shutil.rmtree(workspace, ignore_errors=True)
            if attempt == tries or not _handshake_race(exc):
                raise
            # PyTriton's own race, retried: not the user's to act on (a retry that fails raises above)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.info("PyTriton's instances raced at start-up (%s); starting again (%d/%d)", first, attempt + 1, tries)
    raise AssertionError("unreachable")


SCRATCH_PREFIX = "sextant-serve-"


def _check_socket_room(served_name: str) -> None:
    """Refuse a temporary folder too deep for the sockets PyTriton makes in its workspace there
    (``mkdtemp`` adds 8 characters to the prefix)."""
    scratch = Path(tempfile.gettempdir()) / (SCRATCH_PREFIX + "x" * 8)
    if len(str(scratch / "pytriton" / served_name)) + SOCKET_SUFFIX > SOCKET_PATH_MAX:
        raise SextantError(
            f"the temporary folder {scratch.parent} is too deep for PyTriton's sockets "
            f"(a Unix socket path holds at most {SOCKET_PATH_MAX} bytes)",
            hint="Set TMPDIR to a shorter folder, such as /tmp.",
        )

@contextmanager
def serving(
    package: str | Path,
    *,
    candidate: str | None = None,
    name: str | None = None,
    host: str = "127.0.0.1",
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    trust_source: bool = False,
    log_file: Path | None = None,
    max_sequences: int | None = None,
) -> Iterator[Served]:
    """Serve while the ``with`` block runs; ports 0 pick free ones. Stops and cleans up on exit.
    ``trust_source`` lets the candidate unpickle its files (see ``CandidateView.load``).
    ``max_sequences``: a text-generation package's requests decoded together at most (continuous
    batching, where its generator can; default 8); refused for any other package.
    ``log_file``: the server's log (default: ``serve-logs/<name>-<http port>.log`` in sextant's
    cache folder); it stays after the server stops."""
    if max_sequences is not None:
        check_max_sequences(max_sequences)
    dist = server.Distribution.find()  # before importing PyTriton: says how to install it

    opened = Package(package)
    choice = choose_candidate(opened, candidate)  # a package's regime pick for its serving max batch size
    view = choice.view
    streaming = view.generates  # a text-generation package: a decoupled model (sextant_triton.serve_stream)
    if max_sequences is not None and not streaming:
        hint = "Leave it out: this package's serving batch size is derived from its profile."
        raise refuse_max_sequences(max_sequences, hint)
    servable.require(opened, view, servable.runner_need, "serve")  # its runner computes in this process
    view.verify(trust_source=trust_source)  # refuse before starting anything
    served_name = servable.model_name(opened, name)
    if not streaming:
        signature = opened.document.signature
        settings = serving_settings(view, threads=backends.option_threads(view.record))
        batching = settings.max_batch_size > 0
    _check_socket_room(served_name)  # what no port change fixes, first
    server.check_ports(host, {"--http-port": http_port, "--grpc-port": grpc_port, "--metrics-port": metrics_port})

    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))  # PyTriton makes its workspace inside
    saved = {k: os.environ.get(k) for k in ("LD_LIBRARY_PATH", "PATH")}
    runners: list[Any] = []
    notes: tuple[str, ...] = ()
    triton = None
    try:
        environment = server.server_env(dist)
        os.environ.update({k: environment[k] for k in saved})
        try:
            infer: list[Callable[[list], list]] = []
            bind = None
            if streaming:
                from sextant_triton import serve_stream

                most = (max_sequences or DEFAULT_MAX_SEQUENCES) if view.batches_sequences() else 1
                runners = [view.load(trust_source=trust_source, max_batch=most)]  # the KV cache a batcher holds
                _, bind, settings, notes = serve_stream.for_candidate(
                    opened, view, runners[0], ServingSettings, max_sequences
                )
                signature = None
            else:
                runners = [view.load(trust_source=trust_source) for _ in range(settings.instances)]
                infer = [_infer_function(r, signature, batching) for r in runners]
            # ports 0: free ones chosen now, just before the server binds them, not before the loads
            chosen = server.Ports(http_port, grpc_port, metrics_port).filled(host)
            http_port, grpc_port, metrics_port = chosen.http, chosen.grpc, chosen.metrics
            endpoints = {"http_port": http_port, "grpc_port": grpc_port, "metrics_port": metrics_port}
            log_file = Path(log_file or cache_dir() / "serve-logs" / f"{served_name}-{http_port}.log")
            log_file.parent.mkdir(parents=True, exist_ok=True)
            log_file.write_text("")  # this run's log only
            workspace = scratch / "pytriton"
            triton = _start(served_name, infer, signature, settings, host, endpoints, workspace, log_file, bind)
        except SextantError:
            raise
        except Exception as exc:  # PyTriton's own errors: say what failed
            raise SextantError(
                f"PyTriton could not serve {served_name}: {type(exc).__name__}: {exc}", hint=log_hint(log_file)
            ) from exc
        warning = servable.screened_warning(view)
        yield Served(
            served_name,
            view.id,
            host,
            http_port,
            grpc_port,
            settings,
            triton.is_alive,
            metrics_port,
            (*([choice.reason] if choice.regime else []), *([warning] if warning else []), *notes),
            log_file,
        )
    finally:
        if triton is not None:
            triton.stop()
        for runner in runners:
            runner.close()
        shutil.rmtree(scratch, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def log_hint(log_file: Path | None) -> str:
    """Where the server's log is, and its error lines (less the noise every CPU-only start prints)."""
    if log_file is None:
        return "See the server's log."
    text = log_file.read_text(errors="replace") if log_file.exists() else ""
    errors = server.error_lines(text)
    return f"The server's log is {log_file}" + (":\n" + "\n".join(errors) if errors else ".")


def serve(
    package: str | Path,
    *,
    on_ready: Callable[[Served], None] | None = None,
    **options: Any,
) -> None:
    """Serve until SIGINT (Ctrl-C), SIGTERM or SIGHUP; ``options`` as for :func:`serving`.
    ``on_ready`` is called once the model answers."""
    stop = threading.Event()
    signals = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in signals}
    try:
        with serving(package, **options) as served:
            if on_ready is not None:
                on_ready(served)
            while not stop.wait(timeout=1.0):
                if not served.alive():
                    raise SextantError(f"the server of {served.name} stopped by itself", hint=log_hint(served.log))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
