"""A text-generation package deployed as a streaming (decoupled) model on the real tritonserver,
asked over gRPC's bidirectional stream: one response per token, the ids of eager ``generate``; all
tokens in one response with ``stream`` false; text in and out through the saved tokenizer; a
cancelled request stops and the next one is answered; a prompt the model cannot take is an error.

One package (a tiny random Llama with a character tokenizer), deployed once per session (conftest's
``generation_deployment``, shared with test_analyze_llm), one server start.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _causal_lm import GENERATION_NEW_TOKENS, POSITIONS, eager, llama, tokenizer
from _processes import GONE_POLLS, POLL_S
from sextant.api import UsageError
from sextant_triton import config
from sextant_triton.repository import deploy_package
from sextant_triton.testing import needs_triton

pytestmark = [*needs_triton(modules=("torch", "transformers")), pytest.mark.slow]

GOLDEN = Path(__file__).with_name("golden") / "python_generation.pbtxt"
UPDATE = os.environ.get("SEXTANT_UPDATE_GOLDEN") == "1"
NEW_TOKENS = GENERATION_NEW_TOKENS  # the package's --new-tokens: max_tokens' default
PROMPT = [5, 7, 11, 13, 17, 19]
#: responses a request waits for at most (a bound on the test, not a timing)
WAIT_S = 120


@pytest.fixture(scope="module")
def deployed(generation_deployment):
    return generation_deployment


@pytest.fixture(scope="module")
def server(deployed, triton_server):
    return triton_server(deployed[0])


@pytest.fixture(scope="module")
def model():
    return llama()


class Stream:
    """One gRPC stream: requests sent with ``ask``, each response as ``(request id, ids, text,
    final, error, arrival)`` in arrival order."""

    def __init__(self, url: str) -> None:
        import tritonclient.grpc as client

        self.client = client
        self.triton = client.InferenceServerClient(url)
        self.arrived: queue.Queue = queue.Queue()
        self.triton.start_stream(callback=self._arrive)
        self.open = True

    def _arrive(self, result, error) -> None:
        stamp = time.monotonic_ns()
        if error is not None:
            self.arrived.put((None, None, None, True, str(error), stamp))
            return
        response = result.get_response()
        final = response.parameters["triton_final_response"].bool_param
        ids = result.as_numpy("output_ids")
        text = result.as_numpy("text_output")
        text = None if text is None else b"".join(text.tolist()).decode()
        self.arrived.put((response.id, None if ids is None else ids.tolist(), text, final, None, stamp))

    def ask(self, request_id: str, ids=None, *, text=None, max_tokens=None, stream=None, exclude=None) -> None:
        inputs = []
        for name, array, kind in (
            ("input_ids", None if ids is None else np.array(ids, np.int64), "INT64"),
            ("text_input", None if text is None else np.array([text.encode()], np.object_), "BYTES"),
            ("max_tokens", None if max_tokens is None else np.array([max_tokens], np.int32), "INT32"),
            ("stream", None if stream is None else np.array([stream], bool), "BOOL"),
            ("exclude_input_in_output", None if exclude is None else np.array([exclude], bool), "BOOL"),
        ):
            if array is not None:
                tensor = self.client.InferInput(name, list(array.shape), kind)
                tensor.set_data_from_numpy(array)
                inputs.append(tensor)
        self.triton.async_stream_infer("lm", inputs, request_id=request_id, enable_empty_final_response=True)

    def until_final(self) -> list[tuple]:
        got = []
        while not got or not got[-1][3]:
            got.append(self.arrived.get(timeout=WAIT_S))
        return got

    def close(self, cancel: bool = False) -> None:
        """Stop the stream (cancelling what it asked for, with ``cancel``); again: nothing."""
        if self.open:
            self.open = False
            self.triton.stop_stream(cancel_requests=cancel)
            self.triton.close()


@pytest.fixture
def stream(server):
    opened = Stream(server.grpc_url)
    yield opened
    opened.close()


def test_the_config_is_decoupled_with_the_llm_tensor_names(deployed):
    repository, deployment = deployed
    text = (repository / "lm" / "config.pbtxt").read_text()
    if UPDATE:
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
    parsed = config.read(repository / "lm" / "config.pbtxt")
    assert parsed.model_transaction_policy.decoupled and parsed.max_batch_size == 0
    assert parsed.parameters["context_length"].string_value == str(POSITIONS)  # read by analyze --model-type llm
    assert [(i.name, i.optional) for i in parsed.input] == [
        ("input_ids", True),  # optional: text_input can be the prompt instead
        ("max_tokens", True),
        ("stream", True),
        ("text_input", True),
        ("exclude_input_in_output", True),  # as the vLLM backend's: GenAI-Perf's gRPC path sends it
    ]
    assert [o.name for o in parsed.output] == ["output_ids", "text_output"]
    assert (repository / "lm" / "1" / "tokenizer" / "tokenizer.json").is_file()
    assert any("tokenizer: from" in note for note in deployment.notes)


def test_tokens_stream_one_response_each_and_equal_eager_generate(stream, model):
    stream.ask("a", PROMPT, max_tokens=6)
    got = stream.until_final()
    assert [error for *_, error, _ in got] == [None] * 6
    assert [len(ids) for _, ids, *_ in got] == [1] * 6  # one token per response
    assert [final for *_, final, _, _ in got] == [False] * 5 + [True]
    stamps = [stamp for *_, stamp in got]
    assert all(a < b for a, b in zip(stamps, stamps[1:]))  # arrived one after the other
    assert [ids[0] for _, ids, *_ in got] == eager(model, PROMPT, 6)
    assert {rid for rid, *_ in got} == {"a"}


def test_stream_false_answers_all_tokens_in_one_response_and_max_tokens_defaults(stream, model):
    stream.ask("all", PROMPT, stream=False)
    (only,) = stream.until_final()
    assert only[4] is None and only[3]
    assert only[1] == eager(model, PROMPT, NEW_TOKENS)  # max_tokens left out: the package's --new-tokens
    stream.ask("echo", PROMPT, max_tokens=3, stream=False, exclude=False)  # vLLM's: the prompt, then the new ones
    (echoed,) = stream.until_final()
    assert echoed[4] is None and echoed[1] == PROMPT + eager(model, PROMPT, 3)
    stream.ask("streamed", PROMPT, max_tokens=3, exclude=False)  # refused when streaming, as vLLM refuses it
    assert "exclude_input_in_output false with stream true" in stream.until_final()[-1][4]
    stream.ask("excluded", PROMPT, max_tokens=3, stream=False, exclude=True)  # what GenAI-Perf sends
    assert stream.until_final()[0][1] == eager(model, PROMPT, 3)


def test_text_in_and_text_out_through_the_saved_tokenizer(stream, model):
    chars = tokenizer()
    stream.ask("text", text="Hello", max_tokens=5)
    got = stream.until_final()
    ids = [i for _, step, *_ in got for i in step]
    assert ids == eager(model, chars("Hello")["input_ids"], 5)
    assert "".join(text for _, _, text, *_ in got) == chars.decode(ids)


def _cancellations(server, before: int, count: int) -> str:
    """The server's log since ``before`` once it holds ``count`` cancellations (it is written as it comes)."""
    for _ in range(GONE_POLLS):
        logs = server.logs()[before:]
        if logs.count("request cancelled after") >= count:
            break
        time.sleep(POLL_S)
    return logs


def _answers_after(server, model) -> None:
    """A new stream's request is answered with eager's tokens: the server goes on."""
    after = Stream(server.grpc_url)
    try:
        after.ask("after", PROMPT, max_tokens=3)
        assert [step[0] for _, step, *_ in after.until_final()] == eager(model, PROMPT, 3)
    finally:
        after.close()


def test_a_cancelled_request_stops_and_the_next_one_is_answered(server, model):
    asked = POSITIONS - len(PROMPT)  # far more tokens than arrive before the cancellation does
    before = len(server.logs())
    first = Stream(server.grpc_url)
    first.ask("long", PROMPT, max_tokens=asked)
    for _ in range(2):
        assert first.arrived.get(timeout=WAIT_S)[4] is None
    first.close(cancel=True)
    logs = _cancellations(server, before, 1)
    found = re.search(rf"request cancelled after (\d+) of {asked} tokens", logs)
    assert found, logs[-2000:]
    assert 2 <= int(found[1]) < asked
    _answers_after(server, model)


def _more_tokens(stream: Stream, got: dict[str, list[int]], at_least: int, ended: set[str]) -> None:
    """Read ``stream``'s responses into ``got`` until each request there has ``at_least`` tokens or
    has ended (its final response, added to ``ended``: it had every token it asked for)."""
    while any(len(ids) < at_least and rid not in ended for rid, ids in got.items()):
        rid, ids, _, final, error, _ = stream.arrived.get(timeout=WAIT_S)
        assert error is None, f"{rid}: {error}"
        got[rid] += ids or []
        if final:
            ended.add(rid)


def test_concurrent_requests_are_decoded_together_and_each_gets_its_own_tokens(server, model):
    """Continuous batching on the real server: a long request is streaming when three more arrive
    on another stream; the four are decoded together (the server's log, counted, not timed), each
    gets its own greedy tokens, and cancelling the long one mid-batch leaves the three served.
    Every request asks for all the positions the model has, so each is held until it is cancelled
    (or has every token it asked for), however far apart the requests arrive."""
    long, others = Stream(server.grpc_url), Stream(server.grpc_url)
    prompts = {"c0": [40, 41, 42], "c1": list(range(20, 31)), "c2": [9, 8, 7, 6, 5, 4, 3, 2]}
    tokens = 12
    try:
        before = len(server.logs())
        long.ask("long", PROMPT, max_tokens=POSITIONS - len(PROMPT))
        first = long.arrived.get(timeout=WAIT_S)
        assert first[4] is None  # it is being decoded
        for rid, prompt in prompts.items():
            others.ask(rid, prompt, max_tokens=POSITIONS - len(prompt))
        got: dict[str, list[int]] = {rid: [] for rid in prompts}
        ended: set[str] = set()  # none, unless the test stalls for hundreds of decode steps
        _more_tokens(others, got, tokens, ended)  # c2's tokens after its first were decoded beside the other three
        assert not ended, f"{ended} ended before c2 had {tokens} tokens"
        long.close(cancel=True)
        generated = re.search(r"request cancelled after (\d+) of", _cancellations(server, before, 1))
        assert generated and int(generated[1]) >= tokens  # decoded beside c2 all along its tokens
        _more_tokens(others, got, max(map(len, got.values())) + 2, ended)  # the three go on without it
        others.close(cancel=True)
        logs = _cancellations(server, before, 4 - len(ended))
        sizes = [int(n) for n in re.findall(r"decoding (\d+) sequence\(s\) together", logs)]
        assert sizes and max(sizes) == 4, logs[-2000:]  # the long one and the three
        assert logs.count("request cancelled after") == 4 - len(ended), logs[-2000:]
        assert all(len(got[rid]) == POSITIONS - len(prompts[rid]) for rid in ended)  # all it asked for
        assert got == {rid: eager(model, prompt, len(got[rid])) for rid, prompt in prompts.items()}
        arrived = [first]
        while not long.arrived.empty():
            arrived.append(long.arrived.get_nowait())
        streamed = [ids[0] for _, ids, _, _, error, _ in arrived if error is None and ids]
        assert streamed == eager(model, PROMPT, len(streamed))  # its own tokens too, while batched
        _answers_after(server, model)
    finally:
        long.close(cancel=True)
        others.close(cancel=True)
    assert "continuous batching: up to 8 sequences decoded together" in server.logs()


def test_a_prompt_the_model_cannot_take_is_a_clear_error(stream):
    prompt = list(range(2, 90)) * (POSITIONS // 88 + 1)  # a few tokens more than the model's positions
    stream.ask("long", prompt)
    ((_, _, _, final, error, _),) = stream.until_final()
    need = f"need {len(prompt) + 4} positions, more than the model's {POSITIONS}"
    assert final and f"a prompt of {len(prompt)} tokens and max_tokens 4 {need}" in error
    stream.ask("vocab", [3, 500, 4])
    ((*_, error, _),) = stream.until_final()
    assert "token id(s) [500] outside the model's vocabulary of 96" in error
    stream.ask("fine", PROMPT, max_tokens=1)  # and the model still answers
    ((_, ids, _, final, error, _),) = stream.until_final()
    assert error is None and final and len(ids) == 1


def test_the_client_example_streams_tokens_as_they_arrive(server, deployed, model):
    repository, _ = deployed
    script = repository.parent / "lm_client.py"
    with np.load(repository.parent / "lm_client_inputs.npz") as data:
        prompt = data["input_ids"].tolist()
    args = [sys.executable, str(script), "--url", server.grpc_url, "--max-tokens", "3"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=WAIT_S)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [re.fullmatch(r"token \[(\d+)\] '.*'", line)[1] for line in lines] == [
        str(i) for i in eager(model, prompt, 3)
    ]


def test_a_redeploy_changes_nothing_and_batching_options_are_refused(server, deployed, tmp_path):
    repository, first = deployed
    package = repository.parent / "ws"
    again = deploy_package(package, repository, name="lm")  # after the server loaded it (its __pycache__)
    assert again.notes[-1].startswith("unchanged") and again.files == first.files
    with pytest.raises(UsageError, match="Triton does not batch"):
        deploy_package(package, tmp_path / "models", max_batch_size=4)
    with pytest.raises(UsageError, match="no native Triton backend runs a sextant generator"):
        deploy_package(package, tmp_path / "models", backend="native")
    capped = deploy_package(package, tmp_path / "capped", name="lm", max_sequences=3)
    written = config.read(tmp_path / "capped" / "lm" / "config.pbtxt").parameters
    assert written["sextant_max_sequences"].string_value == "3"
    assert any("each instance decodes up to 3 requests together" in note for note in capped.notes)
    with pytest.raises(UsageError, match="--max-sequences 0: a streaming model decodes at least one") as refused:
        deploy_package(package, tmp_path / "models", max_sequences=0)
    assert refused.value.exit_code == 2 and "Give 1" in refused.value.hint
    assert not (tmp_path / "models").exists()  # refused before anything was written


def test_sextant_serve_streams_the_same_tokens_through_pytriton(deployed, model, caplog):
    """``sextant serve`` of the package: a decoupled PyTriton model with the deployed model's tensors,
    the requests in flight decoded together (the batch sizes counted from its log records)."""
    from sextant_triton.serve import serving

    caplog.set_level(logging.INFO, logger="sextant_triton.serve_stream")
    package = deployed[0].parent / "ws"
    with pytest.raises(UsageError, match="--max-sequences 0"):
        with serving(package, name="lm", max_sequences=0):
            pass
    with serving(package, name="lm", http_port=0, grpc_port=0, metrics_port=0, max_sequences=3) as served:
        assert served.settings.max_batch_size == 0 and served.settings.instances == 1
        assert "decoded together, up to 3 (continuous batching)" in served.settings.reasons[0]
        first_stream = Stream(served.grpc_url)
        try:
            # the first asks for every position, so it is held while the others come however late they are
            asked = {"p0": (PROMPT, POSITIONS - len(PROMPT)), "p1": ([40, 41, 42], 8), "p2": (list(range(20, 31)), 8)}
            got: dict[str, list[int]] = {rid: [] for rid in asked}
            finals = 0
            for rid, (prompt, tokens) in asked.items():
                first_stream.ask(rid, prompt, max_tokens=tokens)
                if rid == "p0":
                    first = first_stream.arrived.get(timeout=WAIT_S)
                    assert first[4] is None, first[4]
                    got["p0"] += first[1]
            while finals < len(asked) - 1:
                rid, ids, _, final, error, _ = first_stream.arrived.get(timeout=WAIT_S)
                assert error is None, error
                assert rid != "p0" or not final, "p0 ended before the two others did"
                got[rid] += ids or []
                finals += final
        finally:
            first_stream.close(cancel=True)  # p0 with it
        assert got == {rid: eager(model, prompt, len(got[rid])) for rid, (prompt, _) in asked.items()}
        assert [len(got[rid]) for rid in ("p1", "p2")] == [8, 8]
        sizes = [int(n) for n in re.findall(r"decoding (\d+) sequence\(s\) together", caplog.text)]
        assert sizes and max(sizes) > 1, caplog.text[-2000:]  # p1's tokens after its first came beside p0's
        stream = Stream(served.grpc_url)
        try:
            stream.ask("a", PROMPT, max_tokens=5)
            got = stream.until_final()
            assert [error for *_, error, _ in got] == [None] * len(got)
            answered = [(ids, stamp) for _, ids, _, _, _, stamp in got if ids]  # PyTriton ends with an empty final
            assert [ids for ids, _ in answered] == [[token] for token in eager(model, PROMPT, 5)]
            stamps = [stamp for _, stamp in answered]
            assert all(a < b for a, b in zip(stamps, stamps[1:]))  # one after the other
            chars = tokenizer()
            stream.ask("text", text="Hello", max_tokens=3)
            got = stream.until_final()
            ids = [i for _, step, *_ in got if step for i in step]
            assert ids == eager(model, chars("Hello")["input_ids"], 3)
            assert "".join(text for _, _, text, *_ in got if text) == chars.decode(ids)
            stream.ask("vocab", [3, 500, 4])
            assert "outside the model's vocabulary of 96" in str(stream.until_final()[-1][4])
            stream.ask("echo", PROMPT, max_tokens=2, stream=False, exclude=False)
            assert [ids for _, ids, *_ in stream.until_final() if ids] == [PROMPT + eager(model, PROMPT, 2)]
        finally:
            stream.close()
