"""The ``model.py`` of a streaming (decoupled) Python-backend model that generates with a sextant
generation package.

``sextant deploy triton`` of a text-generation package copies this file as
``<model>/<version>/model.py``, a one-candidate package beside it (``package/``, as for any
Python-backend model, see :mod:`sextant_triton.python_model`) and, when the model was saved with a
tokenizer, its files in ``tokenizer/``. ``initialize`` loads the candidate's generator through
``sextant.api.Package`` (``best().load()``, files checked against the package's manifest);
``execute`` answers each request through its response sender: one response per generated token
(``stream`` true, the default) or one with them all (after the prompt's ids when
``exclude_input_in_output`` is false, as Triton's vLLM backend answers), the last flagged
``TRITONSERVER_RESPONSE_COMPLETE_FINAL``. The tensors are :mod:`sextant_triton.stream_protocol`'s.

Where the generator batches sequences (a :class:`sextant.api.SequenceBatcher`: ``torch-generate``;
a :class:`sextant.api.StreamBatcher`: ``openvino-genai``), the requests are batched at the decode
step (continuous batching, :mod:`sextant_triton.stream_scheduler`): ``execute`` checks each
request and hands it to the scheduler's thread, which runs every request it holds in one step, up
to the config's ``sextant_max_sequences`` (default 8), each joining and leaving between steps.
Any other generator serves one request at a time in ``execute``, as before. The log says which at
load, and each batch size the scheduler runs.

A request the model cannot run (a prompt longer than the model's positions, ids outside its
vocabulary) is answered with an error; a cancelled request stops generating at the next token,
and the next request is served as usual.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from sextant_triton import stream_protocol as sp
from sextant_triton import stream_scheduler

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL


class _Sink:
    """A :class:`~sextant_triton.stream_scheduler.Sink` over one request's response sender."""

    def __init__(self, sender: Any, texts: sp.TextDeltas | None) -> None:
        self.sender = sender
        self.texts = texts

    def send(self, ids: list[int], last: bool) -> None:
        self.sender.send(
            pb_utils.InferenceResponse(output_tensors=_outputs(ids, last, self.texts)), flags=FINAL if last else 0
        )

    def fail(self, message: str) -> None:
        self.sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(message)), flags=FINAL)

    def cancelled(self) -> bool:
        return bool(self.sender.is_cancelled())

    def close(self) -> None:
        self.sender.send(flags=FINAL)


def _outputs(ids: list[int], last: bool, texts: sp.TextDeltas | None) -> list:
    outputs = [pb_utils.Tensor(sp.OUTPUT_IDS, np.array(ids, dtype=np.int64))]
    if texts is not None:
        text = texts.push(ids, last)
        outputs.append(pb_utils.Tensor(sp.TEXT_OUTPUT, np.array([text.encode()], dtype=np.object_)))
    return outputs


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        from sextant.api import Package

        from sextant_triton.python_model import utf8_locale

        utf8_locale()
        config = json.loads(args["model_config"])
        folder = Path(args["model_repository"]) / args["model_version"]
        parameters = {k: v.get("string_value") for k, v in config.get("parameters", {}).items()}
        trusted = parameters.get("sextant_trust_source") == "true"
        view = Package(folder / "package").best()
        given = parameters.get(stream_scheduler.MAX_SEQUENCES_PARAMETER)
        most = int(given or stream_scheduler.DEFAULT_MAX_SEQUENCES)
        # a generator that batches sizes what it holds (openvino-genai's KV cache) for the cap; any
        # other serves one sequence at a time and is loaded for one (the static caches preallocate)
        self.generator = view.load(trust_source=trusted, max_batch=most if view.batches_sequences() else 1)
        inner = self.generator.generator
        self.vocab_size, self.max_positions = int(inner.vocab_size), int(inner.max_positions)
        self.default_tokens = int(parameters.get(sp.DEFAULT_TOKENS_PARAMETER) or 32)
        self.inputs = [i["name"] for i in config["input"]]
        self.tokenizer: Any = None
        if (folder / sp.TOKENIZER_FOLDER).is_dir():
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(folder / sp.TOKENIZER_FOLDER)
        self.log = pb_utils.Logger
        self.scheduler: stream_scheduler.Scheduler | None = None
        name = self.generator.name or type(inner).__name__
        if stream_scheduler.batches(inner):
            self.scheduler = stream_scheduler.Scheduler(inner, max_sequences=most, log=self.log.log_info).start()
            self.log.log_info(f"sextant: continuous batching: up to {most} sequences decoded together ({name})")
        else:
            self.log.log_info(f"sextant: {name} does not batch sequences: one request at a time per instance")

    def execute(self, requests: list) -> None:
        for request in requests:
            self._answer(request, request.get_response_sender())
        return None

    def _read(self, request: Any) -> sp.Prompt:
        inputs = {}
        for name in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            inputs[name] = None if tensor is None else tensor.as_numpy()
        encode = (lambda text: self.tokenizer(text)["input_ids"]) if self.tokenizer is not None else None
        return sp.prompt(
            inputs,
            vocab_size=self.vocab_size,
            max_positions=self.max_positions,
            default_tokens=self.default_tokens,
            encode=encode,
        )

    def _answer(self, request: Any, sender: Any) -> None:
        finished = False
        try:
            asked = self._read(request)
            texts = sp.TextDeltas(lambda ids: self.tokenizer.decode(ids)) if self.tokenizer is not None else None
            if self.scheduler is not None:  # its thread answers from here on
                self.scheduler.submit(asked, _Sink(sender, texts))
                return
            sent = 0
            tokens = self.generator.stream(asked.ids, max_new_tokens=asked.max_tokens)
            for ids, last in sp.responses(tokens, asked, sender.is_cancelled):
                response = pb_utils.InferenceResponse(output_tensors=_outputs(ids, last, texts))
                sender.send(response, flags=FINAL if last else 0)
                sent += len(ids)
                finished = last
            if not finished:  # cancelled: close the stream, nothing more is generated
                self.log.log_info(f"sextant: request cancelled after {sent} of {asked.max_tokens} tokens")
                sender.send(flags=FINAL)
                finished = True
        except Exception as exc:
            if finished:
                raise
            if isinstance(exc, sp.RequestError):
                message = f"{exc.message}. {exc.hint}" if exc.hint else exc.message
            else:
                message = f"generation failed: {type(exc).__name__}: {exc}"
            try:
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(message)), flags=FINAL)
            except Exception as unsent:  # the client is gone (a cancelled stream): say so in the log
                self.log.log_warn(f"sextant: could not answer a request with its error ({message}): {unsent}")

    def finalize(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()
        self.generator.close()
