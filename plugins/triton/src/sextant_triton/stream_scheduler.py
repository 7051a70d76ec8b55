"""Continuous batching for a streaming model: the requests it holds are decoded together, one token
each per decode step, and requests join and leave between steps.

A :class:`Scheduler` owns a generator that is a :class:`sextant.api.SequenceBatcher` and one
thread that runs :meth:`Scheduler.step` over and over. ``submit`` queues a checked request
(:class:`~sextant_triton.stream_protocol.Prompt`) with its :class:`Sink`, where its responses go.
Each step:

1. admits waiting requests, up to ``max_sequences`` in the batch: each is prefilled alone (its
   first token is sent at once) and joins the running batch;
2. drops the rows whose request was cancelled (their stream is closed, nothing more generated);
3. decodes every row in one ``decode`` call, sends each row its token, and lets the rows that
   have all their tokens leave (their last response is flagged final).

A request that fails (its prefill) is answered with the error and the others go on; a decode that
fails answers every row with it. Each change of the batch's size is logged (``decoding N
sequence(s) together``), so a server's log shows how it batched. Nothing here knows Triton: the
Python-backend model (:mod:`sextant_triton.stream_model`) gives a sink over its response sender,
and tests drive ``step`` directly.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sextant.api import UsageError

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

    def __post_init__(self) -> None:
        self.replies = sp.Replies(self.asked)


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
        self.generator = generator
        self.max_sequences = max_sequences
        self.log = log
        self.waiting: queue.Queue[_Sequence | None] = queue.Queue()
        self.rows: list[_Sequence] = []
        self.batch: Any = None
        #: decode calls by batch size (bounded by ``max_sequences``); the last call's size
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
        """Admit waiting requests, drop cancelled ones, decode the batch once. ``block``: wait for a
        request when there is nothing to do. Whether anything was done."""
        admitted = self._admit(block and not self.rows)
        self._drop_cancelled()
        if not self.rows:
            return admitted
        try:
            logits, self.batch = self.generator.decode(self.batch, np.array([s.next_id for s in self.rows], np.int64))
        except Exception as exc:
            self._fail_all(exc)
            return True
        if self.size != len(self.rows):
            self.log(f"sextant: decoding {len(self.rows)} sequence(s) together")
        self.size = len(self.rows)
        self.steps[self.size] += 1
        tokens = np.asarray(logits, dtype=np.float32).argmax(-1)
        finished = [row for row, sequence in enumerate(self.rows) if self._emit(sequence, int(tokens[row]))]
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
            ids = sequence.asked.ids[None]
            try:
                logits, state = self.generator.prefill(ids, np.ones_like(ids))
            except Exception as exc:
                self._fail(sequence, exc)
                continue
            if self._emit(sequence, int(np.asarray(logits, dtype=np.float32)[0].argmax())):
                continue  # one token asked for: done without joining
            try:
                self.batch = self.generator.join(self.batch, state)
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
        self.rows = [sequence for row, sequence in enumerate(self.rows) if row not in gone]
        try:
            self.batch = self.generator.leave(self.batch, rows)
        except Exception as exc:
            self._fail_all(exc)

    def _fail(self, sequence: _Sequence, exc: BaseException) -> None:
        message = _message(exc)
        try:
            sequence.sink.fail(message)
        except Exception as unsent:
            self.log(f"sextant: could not answer a request with its error ({message}): {unsent}")

    def _fail_all(self, exc: BaseException) -> None:
        rows, self.rows, self.batch = self.rows, [], None
        for sequence in rows:
            self._fail(sequence, exc)
