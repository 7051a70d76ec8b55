"""``sextant serve`` of a text-generation package: a decoupled (streaming) PyTriton model.

The same tensors as the Python-backend model ``sextant deploy triton`` writes
(:mod:`sextant_triton.stream_protocol`: ``input_ids`` or ``text_input`` in, ``max_tokens``,
``stream`` and ``exclude_input_in_output`` optional; ``output_ids`` and, with a tokenizer,
``text_output`` out), so one client serves both. PyTriton's ``ModelConfig(decoupled=True)`` takes
a generator infer function: it yields one response per generated token (``stream`` false: one
with all of them), and PyTriton flags the stream final, with an empty response, when the generator
ends. A request the model cannot take is answered with the error of
:func:`sextant_triton.stream_protocol.prompt`.

The generator runs in this process (one instance, ``max_batch_size 0``), as the runner of any other
``sextant serve``. Where it batches sequences (:func:`sextant_triton.stream_scheduler.batches`:
``torch-generate``, ``openvino-genai``), the requests in flight are decoded together, up to
``max_sequences`` (``sextant serve --max-sequences``, default 8; continuous batching, as the
Python-backend model does): the infer function is then a coroutine, PyTriton runs every request's
on one event loop, and a driver task on that loop runs
:class:`~sextant_triton.stream_scheduler.Scheduler` steps while any request is held (it ends when
none is, so nothing outlives the server). Other generators answer
one request after the other. The rest (ports, log file, workspace, stopping) is
:func:`sextant_triton.serve.serving`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sextant_triton import stream_protocol as sp
from sextant_triton.stream_scheduler import DEFAULT_MAX_SEQUENCES, batches, unused_note

LOGGER = logging.getLogger("sextant_triton.serve_stream")

#: what ``Served.settings`` says of a streaming model: Triton batches nothing, one instance
INSTANCES = 1


def _reader(generator: Any, default_tokens: int, tokenizer: Any) -> Callable[[list], tuple[Any, Any]]:
    """What both infer functions do first with PyTriton's requests: the one request's prompt,
    checked against the model (:func:`stream_protocol.prompt`), and the text decoder when a tokenizer
    was saved (``None`` otherwise)."""
    inner = generator.generator
    vocab_size, max_positions = int(inner.vocab_size), int(inner.max_positions)
    encode = (lambda text: tokenizer(text)["input_ids"]) if tokenizer is not None else None

    def read(requests: list) -> tuple[Any, Any]:
        if len(requests) != 1:  # max_batch_size 0: Triton hands a non-batching model one request at a time
            raise sp.RequestError(f"{len(requests)} requests in one call: this streaming model takes one")
        data = requests[0].data
        names = (sp.INPUT_IDS, sp.MAX_TOKENS, sp.STREAM, sp.TEXT_INPUT, sp.EXCLUDE_INPUT)
        inputs = {name: (data[name] if name in data else None) for name in names}
        asked = sp.prompt(
            inputs, vocab_size=vocab_size, max_positions=max_positions, default_tokens=default_tokens, encode=encode
        )
        texts = sp.TextDeltas(lambda ids: tokenizer.decode(ids)) if tokenizer is not None else None
        return asked, texts

    return read


def infer_function(
    generator: Any, *, default_tokens: int, tokenizer: Any = None
) -> Callable[[list], Iterator[list[dict[str, np.ndarray]]]]:
    """A PyTriton decoupled infer function over ``generator`` (a loaded generation candidate)."""
    read = _reader(generator, default_tokens, tokenizer)

    def infer(requests: list) -> Iterator[list[dict[str, np.ndarray]]]:
        asked, texts = read(requests)
        tokens = generator.stream(asked.ids, max_new_tokens=asked.max_tokens)
        for ids, last in sp.responses(tokens, asked, lambda: False):
            out = {sp.OUTPUT_IDS: np.array(ids, dtype=np.int64)}
            if texts is not None:
                out[sp.TEXT_OUTPUT] = np.array([texts.push(ids, last).encode()], dtype=np.object_)
            yield [out]

    return infer


class _Held:
    """A :class:`~sextant_triton.stream_scheduler.Sink` the scheduler fills on the event loop and
    a request's coroutine empties: ``("ids", (ids, last))``, ``("error", message)`` or
    ``("closed", None)``. ``gone`` once the coroutine stopped (its client left): the request
    leaves the batch."""

    def __init__(self) -> None:
        import asyncio

        self.items: list[tuple[str, Any]] = []
        self.ready = asyncio.Event()
        self.gone = False

    def _put(self, kind: str, value: Any) -> None:
        self.items.append((kind, value))
        self.ready.set()

    def send(self, ids: list[int], last: bool) -> None:
        self._put("ids", (ids, last))

    def fail(self, message: str) -> None:
        self._put("error", message)

    def cancelled(self) -> bool:
        return self.gone

    def close(self) -> None:
        self._put("closed", None)


def batched_infer_function(
    generator: Any, *, default_tokens: int, tokenizer: Any = None, max_sequences: int, log: Callable[[str], None]
) -> Callable[[list], Any]:
    """A PyTriton decoupled infer function (an async generator) that decodes the requests in flight
    together over ``generator`` (a loaded candidate whose generator
    :func:`~sextant_triton.stream_scheduler.batches`)."""
    import asyncio

    from sextant_triton.stream_scheduler import Scheduler

    read = _reader(generator, default_tokens, tokenizer)
    scheduler = Scheduler(generator.generator, max_sequences=max_sequences, log=log)
    driver: list[asyncio.Task] = []

    async def drive() -> None:
        while True:
            try:
                if not scheduler.step():  # no request held or waiting: the next one starts a driver
                    return
            except Exception as exc:
                scheduler.abort(exc)
            await asyncio.sleep(0)  # the requests' coroutines send what this step gave them

    async def infer(requests: list) -> Any:
        asked, texts = read(requests)
        held = _Held()
        scheduler.submit(asked, held)
        if not driver or driver[0].done():
            driver[:] = [asyncio.ensure_future(drive())]
        try:
            while True:
                await held.ready.wait()
                held.ready.clear()
                items, held.items = held.items, []
                for kind, value in items:
                    if kind == "error":
                        raise sp.RequestError(value)
                    if kind == "closed":
                        return
                    ids, last = value
                    out = {sp.OUTPUT_IDS: np.array(ids, dtype=np.int64)}
                    if texts is not None:
                        out[sp.TEXT_OUTPUT] = np.array([texts.push(ids, last).encode()], dtype=np.object_)
                    yield [out]
                    if last:
                        return
        finally:
            held.gone = True

    return infer


def bind(triton: Any, name: str, infer: Callable, *, tokenizer: bool) -> None:
    """Bind ``infer`` to a PyTriton ``Triton`` as the decoupled model ``name``."""
    from pytriton.model_config import ModelConfig, Tensor

    inputs = [
        Tensor(name=sp.INPUT_IDS, dtype=np.int64, shape=(-1,), optional=tokenizer),
        Tensor(name=sp.MAX_TOKENS, dtype=np.int32, shape=(1,), optional=True),
        Tensor(name=sp.STREAM, dtype=np.bool_, shape=(1,), optional=True),
    ]
    outputs = [Tensor(name=sp.OUTPUT_IDS, dtype=np.int64, shape=(-1,))]
    if tokenizer:
        inputs.append(Tensor(name=sp.TEXT_INPUT, dtype=np.bytes_, shape=(1,), optional=True))
        outputs.append(Tensor(name=sp.TEXT_OUTPUT, dtype=np.bytes_, shape=(-1,)))
    inputs.append(Tensor(name=sp.EXCLUDE_INPUT, dtype=np.bool_, shape=(1,), optional=True))
    triton.bind(
        model_name=name,
        infer_func=infer,
        inputs=inputs,
        outputs=outputs,
        config=ModelConfig(max_batch_size=0, batching=False, decoupled=True),
        strict=True,
    )


def load_tokenizer(folder: Path | None) -> Any:
    """The tokenizer saved with the model (``AutoTokenizer``), or ``None``."""
    if folder is None:
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def for_candidate(
    package: Any, view: Any, generator: Any, settings_cls: Any, max_sequences: int | None = None
) -> tuple[Callable, Callable, Any, tuple[str, ...]]:
    """What :func:`sextant_triton.serve.serving` needs to serve a loaded generation candidate: the
    infer function, the binding (``bind(triton, name)``), the settings ``Served`` reports and its
    notes. ``max_sequences``: the most requests decoded together (checked by the caller; ``None``:
    :data:`~sextant_triton.stream_scheduler.DEFAULT_MAX_SEQUENCES`)."""
    from sextant_triton.stream_deploy import tokenizer_folder

    tokenizer = load_tokenizer(tokenizer_folder(view))
    document = package.document
    default_tokens = int((document.generation or {}).get("new_tokens") or 32)
    notes: tuple[str, ...] = ()
    if batches(generator.generator):
        most = max_sequences or DEFAULT_MAX_SEQUENCES
        infer = batched_infer_function(
            generator, default_tokens=default_tokens, tokenizer=tokenizer, max_sequences=most, log=LOGGER.info
        )
        reason = (
            f"a streaming generator: decoupled (max_batch_size 0); the requests in flight are decoded together, "
            f"up to {most} (continuous batching)"
        )
    else:
        infer = infer_function(generator, default_tokens=default_tokens, tokenizer=tokenizer)
        reason = "a streaming generator: decoupled, one sequence at a time (max_batch_size 0)"
        more = "sextant deploy triton --instances N serves N at once"
        notes = tuple(n for n in [unused_note(view.record.runner, max_sequences, more)] if n)
    settings = settings_cls(
        max_batch_size=0,
        dynamic_batching=False,
        preferred_batch_sizes=(),
        queue_delay_us=0,
        instances=INSTANCES,
        device=view.record.device,
        threads=int(document.host.threads or 1) if document.host else 1,
        reasons=(reason,),
    )
    return infer, (lambda triton, name: bind(triton, name, infer, tokenizer=tokenizer is not None)), settings, notes
