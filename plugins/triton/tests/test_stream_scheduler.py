"""Continuous batching without a server: the scheduler over the real ``torch-generate`` generator of
a tiny random Llama, driven step by step (counts, not time). Requests decoded together get the
tokens each gets alone; the batch never exceeds its cap; a cancelled or failing request leaves and
the others go on; closing answers what is still held. A backend that owns its loop (a
``StreamBatcher``, faked here; the real openvino-genai one is tests/test_generation_openvino_genai.py's)
runs the requests together, and one it drops is answered with its error."""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pytest
from _causal_lm import VOCAB, llama
from sextant.api import GeneratorRequest, UsageError
from sextant.generation.loop import greedy
from sextant_triton.stream_protocol import Prompt
from sextant_triton.stream_scheduler import Scheduler, check_max_sequences, unused_note

pytest.importorskip("transformers")

STEPS = 200  # a bound on every loop below, never reached when the scheduler works


class Sink:
    """Records what one request was answered; cancelled once ``cancel_after`` tokens went out."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.replies: list[tuple[list[int], bool]] = []
        self.error: str | None = None
        self.closed = False
        self.cancel_after = cancel_after
        self.done = threading.Event()

    @property
    def ids(self) -> list[int]:
        return [i for ids, _ in self.replies for i in ids]

    def send(self, ids, last):
        self.replies.append((list(ids), last))
        if last:
            self.done.set()

    def fail(self, message):
        self.error = message
        self.done.set()

    def cancelled(self):
        return self.cancel_after is not None and len(self.ids) >= self.cancel_after

    def close(self):
        self.closed = True
        self.done.set()


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    from sextant_torch.generation import load_dynamic

    folder = tmp_path_factory.mktemp("lm") / "model"
    llama().save_pretrained(folder)
    return load_dynamic(GeneratorRequest(folder, max_length=64))


def _prompt(length: int, tokens: int, stream: bool = True, seed: int = 0) -> Prompt:
    return Prompt(np.random.default_rng(seed).integers(2, VOCAB, length).astype(np.int64), tokens, stream)


def _drain(scheduler: Scheduler, sinks: list[Sink]) -> None:
    for _ in range(STEPS):
        if all(sink.done.is_set() for sink in sinks):
            return
        scheduler.step()
    raise AssertionError(f"not done in {STEPS} steps")


def test_requests_decoded_together_get_their_solo_tokens(generator):
    logged: list[str] = []
    scheduler = Scheduler(generator, max_sequences=8, log=logged.append)
    asked = [_prompt(4, 5), _prompt(11, 3, seed=1), _prompt(7, 6, stream=False, seed=2)]
    sinks = [Sink() for _ in asked]
    for prompt, sink in zip(asked[:2], sinks):
        scheduler.submit(prompt, sink)
    scheduler.step()  # the first two join, then the third joins a running batch
    scheduler.submit(asked[2], sinks[2])
    _drain(scheduler, sinks)
    for prompt, sink in zip(asked, sinks):
        assert sink.ids == greedy(generator, prompt.ids, prompt.max_tokens)[0].tolist()
        assert sink.error is None and [last for _, last in sink.replies][-1]
    assert [len(ids) for ids, _ in sinks[0].replies] == [1] * 5  # streamed: one token a response
    assert len(sinks[2].replies) == 1  # stream false: all six in one
    # decode steps of 2, 3, 2, 2, 1 and 1 rows: the second leaves after its third token, the first after its fifth
    assert scheduler.steps == {2: 3, 3: 1, 1: 2}
    assert logged == [f"sextant: decoding {n} sequence(s) together" for n in (2, 3, 2, 1)]
    assert scheduler.rows == [] and scheduler.engine.batch is None


def test_the_batch_never_exceeds_its_cap_and_waiting_requests_join_as_others_leave(generator):
    scheduler = Scheduler(generator, max_sequences=2, log=lambda _: None)
    asked = [_prompt(5, 2), _prompt(6, 4, seed=1), _prompt(3, 4, seed=2)]
    sinks = [Sink() for _ in asked]
    for prompt, sink in zip(asked, sinks):
        scheduler.submit(prompt, sink)
    _drain(scheduler, sinks)
    assert scheduler.steps == {2: 3, 1: 1}  # the third waited, then joined the second as the first left
    for prompt, sink in zip(asked, sinks):
        assert sink.ids == greedy(generator, prompt.ids, prompt.max_tokens)[0].tolist()


def test_a_cancelled_or_failing_request_leaves_and_the_others_go_on(generator):
    logged: list[str] = []
    scheduler = Scheduler(generator, max_sequences=8, log=logged.append)
    kept, cancelled, failing = _prompt(6, 6), _prompt(5, 20, seed=1), Prompt(np.array([3, VOCAB + 7]), 3, True)
    sinks = [Sink(), Sink(cancel_after=2), Sink()]
    for prompt, sink in zip((kept, cancelled, failing), sinks):
        scheduler.submit(prompt, sink)
    _drain(scheduler, sinks)
    assert sinks[0].ids == greedy(generator, kept.ids, 6)[0].tolist()
    assert sinks[1].closed and sinks[1].ids == greedy(generator, cancelled.ids, 2)[0].tolist()
    assert "sextant: request cancelled after 2 of 20 tokens" in logged
    assert sinks[2].error.startswith("generation failed: IndexError") and sinks[2].replies == []


def test_the_thread_answers_and_closing_answers_what_is_still_waiting(generator):
    scheduler = Scheduler(generator, max_sequences=1, log=lambda _: None).start()
    first, waiting = Sink(), Sink()
    scheduler.submit(_prompt(4, 3), first)
    assert first.done.wait(120)  # a bound on the test, not a timing
    assert first.ids == greedy(generator, _prompt(4, 3).ids, 3)[0].tolist()
    scheduler.close()
    scheduler.submit(_prompt(4, 3), waiting)  # after close: nothing runs it, close's sweep did not see it
    scheduler.close()
    assert waiting.error == "the model is being unloaded; send the request again once it is loaded"


def test_max_sequences_is_checked_and_has_no_effect_where_the_generator_cannot_batch():
    with pytest.raises(UsageError, match="--max-sequences 0: a streaming model decodes at least one") as refused:
        check_max_sequences(0)
    assert refused.value.exit_code == 2 and "Give 1" in refused.value.hint
    assert check_max_sequences(1) == 1
    note = unused_note("torch-static-cache", 4, "--instances adds instances")
    assert note is not None and note.startswith("--max-sequences 4 has no effect: the torch-static-cache generator")
    assert "one request at a time per instance; --instances adds instances" in note
    assert unused_note("torch-static-cache", 1, "") is None and unused_note("torch-static-cache", None, "") is None
    from sextant.plugins import load_catalog

    batching = {c.name: c.spec.sequence_batching for c in load_catalog().of("generator")}
    assert batching["torch-generate"] and not batching["torch-static-cache"]
    if importlib.util.find_spec("sextant_openvino"):  # not a dependency of sextant-triton's own tests
        assert batching["openvino-genai"]  # what deploy's notes say before loading


class Pipeline:
    """A backend that owns its loop (a ``StreamBatcher``), to isolate the scheduler's side: each step
    gives every sequence added its next id (its handle's number), one sequence is dropped."""

    def __init__(self, drop: int) -> None:
        self.held: dict[int, int] = {}
        self.drop = drop
        self.cancelled: list[int] = []
        self.added = 0

    def add(self, input_ids, max_new_tokens):
        handle, self.added = self.added, self.added + 1
        self.held[handle] = max_new_tokens
        return handle

    def step(self):
        new = {}
        for handle in list(self.held):
            new[handle] = RuntimeError("dropped by the backend") if handle == self.drop else np.array([handle])
            self.held[handle] -= 1
            if handle == self.drop or not self.held[handle]:
                del self.held[handle]
        return new

    def cancel(self, handle):
        if self.held.pop(handle, None) is not None:
            self.cancelled.append(handle)


def test_a_backend_that_owns_its_loop_runs_the_requests_together_and_one_it_drops_is_answered_alone():
    pipeline = Pipeline(drop=1)
    scheduler = Scheduler(pipeline, max_sequences=8, log=lambda _: None)
    sinks = [Sink(), Sink(), Sink(cancel_after=1)]
    for tokens, sink in zip((3, 3, 9), sinks):
        scheduler.submit(_prompt(4, tokens), sink)
    _drain(scheduler, sinks)
    assert sinks[0].ids == [0, 0, 0] and sinks[0].replies[-1] == ([0], True)
    assert sinks[1].error == "generation failed: RuntimeError: dropped by the backend" and sinks[1].ids == []
    assert sinks[2].closed and sinks[2].ids == [2] and pipeline.cancelled == [2]
    assert scheduler.steps == {2: 1, 1: 2}  # the first step gave two requests a token (it dropped the second)
    with pytest.raises(TypeError, match="neither joins"):
        Scheduler(object(), max_sequences=1, log=print)
