"""Continuous batching for a streaming model: the requests it holds are generated together, one
step of every one at a time, and requests join and leave between steps.

A :class:`Scheduler` owns a generator that batches sequences (:func:`batches`) and one thread
that runs :meth:`Scheduler.step` over and over. ``submit`` queues a checked request
(:class:`~sextant_triton.stream_protocol.Prompt`) with its :class:`Sink`, where its responses go.
Each step:

1. admits waiting requests, up to ``max_sequences`` held;
2. drops the requests that were cancelled (their stream is closed, nothing more generated);
3. runs one step of every request held, sends each its new tokens, and lets the requests that
   have all their tokens leave (their last response is flagged final).

How a step runs is the generator's (the scheduler's ``engine``, the one difference between the
two): a :class:`sextant.api.SequenceBatcher` (``torch-generate``) prefills each admitted request
alone (its first token is sent at once), joins it to the running batch and decodes every row in
one ``decode`` call; a :class:`sextant.api.StreamBatcher` (``openvino-genai``) owns the loop: a
request is added to it, and each of its steps gives the requests it ran their tokens (the first
one in the same scheduler step: the backend prefills the new requests then, without the others).

A request that fails (its prefill, or the backend drops it) is answered with the error and the
others go on; a step that fails answers every request held with it. Each change of the number of
requests a step gave tokens to is logged (``decoding N sequence(s) together``), so a server's log
shows how it batched. Nothing here knows Triton: the Python-backend model
(:mod:`sextant_triton.stream_model`) gives a sink over its response sender, and tests drive
``step`` directly.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sextant.api import SequenceBatcher, StreamBatcher, UsageError

from sextant_triton import stream_protocol as sp

#: the most sequences decoded together unless the config's ``sextant_max_sequences`` says otherwise
#: (``deploy triton --max-sequences``, ``serve --max-sequences``)
DEFAULT_MAX_SEQUENCES = 8
MAX_SEQUENCES_PARAMETER = "sextant_max_sequences"


def check_max_sequences(value: int) -> int:
    """``--max-sequences``, refused unless at least 1 (a :class:`~sextant.api.UsageError`)."""
    if value < 1:
        raise UsageError(
            f"--max-sequences {value}: a streaming model decodes at least one sequence at a time",
            hint=f"Give 1 (one request at a time per instance) or more; left out, {DEFAULT_MAX_SEQUENCES}.",
        )
    return value


def refuse_max_sequences(value: int, hint: str) -> UsageError:
    """The error for ``--max-sequences`` given for a package that does not generate text; ``hint``
    says how that package's requests are batched instead."""
    return UsageError(
        f"--max-sequences {value}: only a text-generation package's streaming model decodes sequences together",
        hint=hint,
    )


def unused_note(runner: str, max_sequences: int | None, more: str) -> str | None:
    """What ``--max-sequences`` above 1 gets where ``runner``'s generator cannot join and leave a
    running batch: it has no effect, and why; ``more`` says how to serve several requests at once."""
    if max_sequences is None or max_sequences <= 1:
        return None
    return (
        f"--max-sequences {max_sequences} has no effect: the {runner} generator does not join and leave a running "
        f"batch (no continuous batching), so it serves one request at a time per instance; {more}"
    )


class Sink(Protocol):
    """Where one request's responses go."""

    def send(self, ids: list[int], last: bool) -> None:
        """Send a response with these new tokens; ``last``: the stream's final one."""

    def fail(self, message: str) -> None:
        """Answer with an error (the stream's final response)."""

    def cancelled(self) -> bool:
        """Whether the client cancelled the request."""

    def close(self) -> None:
        """End a cancelled stream: a final flag, no tokens."""


@dataclass
class _Sequence:
    asked: sp.Prompt
    sink: Sink
    replies: sp.Replies = field(init=False)
    next_id: int = 0
    #: the generator's own: a prefill's state (decoded rows), the handle (a pipeline's rows)
    slot: Any = None

    def __post_init__(self) -> None:
        self.replies = sp.Replies(self.asked)


def batches(generator: Any) -> bool:
    """Whether the scheduler can run ``generator``'s sequences together (it is a
    :class:`~sextant.api.SequenceBatcher` or a :class:`~sextant.api.StreamBatcher`)."""
    return isinstance(generator, (SequenceBatcher, StreamBatcher))


class _Engine(Protocol):
    """How the requests held run on the generator: the one difference between the two kinds."""

    def start(self, sequence: _Sequence) -> int | None:
        """Begin ``sequence``: its first token where it has one at once, else ``None``."""

    def join(self, sequence: _Sequence) -> None:
        """Add the started ``sequence`` to the requests run together."""

    def advance(self, rows: list[_Sequence]) -> list[list[int] | Exception]:
        """One step of every request held: each one's new tokens, or the error that ended it."""

    def leave(self, rows: list[int], sequences: list[_Sequence]) -> None:
        """Let ``sequences`` (at positions ``rows``) go: finished, failed or cancelled."""

    def reset(self, sequences: list[_Sequence]) -> None:
        """Drop every request held (after a failed step)."""


class _DecodedRows:
    """A :class:`~sextant.api.SequenceBatcher`'s requests: each prefilled alone (its first token at
    once), joined to one batch state, every row decoded in one call."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator
        self.batch: Any = None

    def start(self, sequence: _Sequence) -> int | None:
        ids = sequence.asked.ids[None]
        logits, sequence.slot = self.generator.prefill(ids, np.ones_like(ids))
        return int(np.asarray(logits, dtype=np.float32)[0].argmax())

    def join(self, sequence: _Sequence) -> None:
        state, sequence.slot = sequence.slot, None
        self.batch = self.generator.join(self.batch, state)

    def advance(self, rows: list[_Sequence]) -> list[list[int] | Exception]:
        logits, self.batch = self.generator.decode(self.batch, np.array([s.next_id for s in rows], np.int64))
        return [[int(token)] for token in np.asarray(logits, dtype=np.float32).argmax(-1)]

    def leave(self, rows: list[int], sequences: list[_Sequence]) -> None:
        self.batch = self.generator.leave(self.batch, rows)

    def reset(self, sequences: list[_Sequence]) -> None:
        self.batch = None


def _ids(new: Any) -> list[int] | Exception:
    """A :class:`~sextant.api.StreamBatcher` step's answer for one sequence, as the scheduler takes it."""
    if new is None:  # no token this step (it was not scheduled)
        return []
    if isinstance(new, Exception):
        return new
    return [int(token) for token in np.asarray(new).reshape(-1)]


class _PipelineRows:
    """A :class:`~sextant.api.StreamBatcher`'s requests: added to the backend's own loop, each of
    its steps giving the requests it ran their new tokens (the first at the step after ``add``)."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator

    def start(self, sequence: _Sequence) -> int | None:
        sequence.slot = self.generator.add(sequence.asked.ids, sequence.asked.max_tokens)
        return None

    def join(self, sequence: _Sequence) -> None:
        return None

    def advance(self, rows: list[_Sequence]) -> list[list[int] | Exception]:
        new = self.generator.step()
        return [_ids(new.get(sequence.slot)) for sequence in rows]

    def leave(self, rows: list[int], sequences: list[_Sequence]) -> None:
        for sequence in sequences:  # the done ones' handles are ignored
            self.generator.cancel(sequence.slot)

    def reset(self, sequences: list[_Sequence]) -> None:
        self.leave([], sequences)


class Unloading(Exception):
    """What the requests still held are answered with when the model is unloaded."""


def _message(exc: BaseException) -> str:
    if isinstance(exc, Unloading):
        return str(exc)
    return f"generation failed: {type(exc).__name__}: {exc}"


class Scheduler:
    """Continuous batching over ``generator`` (see the module's docstring); ``log(message)`` gets
    the batch sizes and cancellations. ``start()`` runs :meth:`step` in a thread until ``close()``."""

    def __init__(self, generator: Any, *, max_sequences: int, log: Callable[[str], None]) -> None:
        if max_sequences < 1:
            raise ValueError(f"max_sequences {max_sequences}: at least 1")
        if not batches(generator):
            raise TypeError(f"{type(generator).__name__} neither joins sequences to a batch nor adds them to its loop")
        self.generator = generator
        self.max_sequences = max_sequences
        self.log = log
        self.waiting: queue.Queue[_Sequence | None] = queue.Queue()
        self.rows: list[_Sequence] = []
        #: how the rows run on the generator
        self.engine: _Engine = (
            _DecodedRows(generator) if isinstance(generator, SequenceBatcher) else _PipelineRows(generator)
        )
        #: steps by how many requests each gave tokens to (bounded by ``max_sequences``); the last one's
        self.steps: Counter[int] = Counter()
        self.size = 0
        self._thread: threading.Thread | None = None
        self._closing = False

    # -- the thread -------------------------------------------------------------------------------

    def start(self) -> Scheduler:
        self._thread = threading.Thread(target=self._run, name="sextant-decode", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._closing:
            try:
                self.step(block=True)
            except Exception as exc:
                self.abort(exc)

    def abort(self, exc: BaseException) -> None:
        """What a failure of the loop itself does (a bug must not hang every stream): log it and
        answer every request in the batch with it; the loop goes on with the next ones."""
        self.log(f"sextant: the decode loop failed: {_message(exc)}")
        self._fail_all(exc)

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the thread (after the step it is in); requests still waiting or running are
        answered with an error saying the model is unloading."""
        self._closing = True
        self.waiting.put(None)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():  # still inside a step: the generator is its, not this thread's
                self.log(f"sextant: the decode loop did not stop within {timeout_s:g} s; its requests are left to it")
                return
        unloading = Unloading("the model is being unloaded; send the request again once it is loaded")
        self._fail_all(unloading)
        while True:
            try:
                waiting = self.waiting.get_nowait()
            except queue.Empty:
                break
            if waiting is not None:
                self._fail(waiting, unloading)

    # -- the work ---------------------------------------------------------------------------------

    def submit(self, asked: sp.Prompt, sink: Sink) -> None:
        """Queue a checked request; it joins the batch at the next step."""
        self.waiting.put(_Sequence(asked, sink))

    def step(self, block: bool = False) -> bool:
        """Admit waiting requests, drop cancelled ones, run one step of every request held.
        ``block``: wait for a request when there is nothing to do. Whether anything was done."""
        admitted = self._admit(block and not self.rows)
        self._drop_cancelled()
        if not self.rows:
            return admitted
        try:
            news = self.engine.advance(self.rows)
        except Exception as exc:
            self._fail_all(exc)
            return True
        size = sum(1 for new in news if isinstance(new, list) and new)
        if size:
            if self.size != size:
                self.log(f"sextant: decoding {size} sequence(s) together")
            self.size = size
            self.steps[size] += 1
        finished = []
        for row, (sequence, new) in enumerate(zip(self.rows, news)):
            if isinstance(new, Exception):  # the generator dropped this one: the others go on
                self._fail(sequence, new)
                finished.append(row)
            elif any(self._emit(sequence, token) for token in new):
                finished.append(row)
        self._leave(finished)
        return True

    def _admit(self, block: bool) -> bool:
        admitted = False
        while len(self.rows) < self.max_sequences:
            try:
                sequence = self.waiting.get(block=block and not admitted)
            except queue.Empty:
                break
            if sequence is None:  # close()
                break
            admitted = True
            if sequence.sink.cancelled():
                self._cancelled(sequence)
                continue
            try:
                token = self.engine.start(sequence)
            except Exception as exc:
                self._fail(sequence, exc)
                continue
            if token is not None and self._emit(sequence, token):
                continue  # one token asked for: done without joining
            try:
                self.engine.join(sequence)
            except Exception as exc:
                self._fail(sequence, exc)
                self._fail_all(exc)  # the batch's state may be half joined
                continue
            self.rows.append(sequence)
        return admitted

    def _emit(self, sequence: _Sequence, token: int) -> bool:
        """Send ``token`` to its sequence (if a response is due); whether the sequence is done."""
        sequence.next_id = token
        reply = sequence.replies.push(token)
        if reply is not None:
            try:
                sequence.sink.send(*reply)
            except Exception as exc:  # the client is gone: nothing more to send it
                self.log(f"sextant: could not send a response ({type(exc).__name__}: {exc}); the request stops")
                return True
        return sequence.replies.done

    def _drop_cancelled(self) -> None:
        cancelled = [row for row, sequence in enumerate(self.rows) if sequence.sink.cancelled()]
        for row in cancelled:
            self._cancelled(self.rows[row])
        self._leave(cancelled)

    def _cancelled(self, sequence: _Sequence) -> None:
        self.log(f"sextant: request cancelled after {sequence.replies.count} of {sequence.asked.max_tokens} tokens")
        try:
            sequence.sink.close()
        except Exception as exc:
            self.log(f"sextant: could not close a cancelled stream: {type(exc).__name__}: {exc}")

    def _leave(self, rows: list[int]) -> None:
        if not rows:
            return
        gone = set(rows)
        leaving = [self.rows[row] for row in rows]
        self.rows = [sequence for row, sequence in enumerate(self.rows) if row not in gone]
        try:
            self.engine.leave(rows, leaving)
        except Exception as exc:
            self._fail_all(exc)

    def _fail(self, sequence: _Sequence, exc: BaseException) -> None:
        message = _message(exc)
        try:
            sequence.sink.fail(message)
        except Exception as unsent:
            self.log(f"sextant: could not answer a request with its error ({message}): {unsent}")

    def _fail_all(self, exc: BaseException) -> None:
        rows, self.rows = self.rows, []
        try:
            self.engine.reset(rows)
        except Exception as unfreed:
            self.log(f"sextant: could not free the requests of a failed batch: {type(unfreed).__name__}: {unfreed}")
        for sequence in rows:
            self._fail(sequence, exc)
