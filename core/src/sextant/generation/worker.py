"""The job an isolated child runs for one generation candidate (:class:`sextant.jobs.GenerationJob`).

Load the generator; check the prompts against what it says it takes; run every prompt (the
reference: its greedy continuation, ids and logits; any other candidate: teacher-forced on the
reference's continuation, logits only, and a streaming generator's own greedy ids) and save the
arrays; ask the parent (``outputs``: the file), which judges them; if told to, measure: first a
screen when the order asks for one (:mod:`sextant.generation.screen`; a ``Measured`` screen point;
a candidate screened out stops there), then the time to first token of each prompt length at batch
1 (``Ttft``), then one point per batch size at the longest prompt (``Measured``). Messages are
:mod:`sextant.messages`'; the answer is ``Profiled``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from sextant.child import Channel
from sextant.generation.loop import greedy, teacher_forced
from sextant.generation.measure import measure_batch, measure_ttft
from sextant.generation.prompts import Prompts, check
from sextant.generation.screen import screen
from sextant.jobs import GenerationJob
from sextant.memory import MemoryProbe
from sextant.messages import Loaded, Measured, OutputsSaved, Profiled, ProfileOrder, Ttft
from sextant.records import Stop
from sextant.runtime import StreamingGenerator
from sextant.specs import resolve
from sextant.worker import _set_threads


def run_generation(document: Mapping[str, Any], channel: Channel) -> dict[str, Any]:
    job = GenerationJob.from_json(document)
    config = job.config
    _set_threads(job.request.threads)
    memory = MemoryProbe()
    started = time.perf_counter()
    generator = resolve(job.load)(job.request)
    channel.emit(Loaded(time.perf_counter() - started))
    loaded_mb = memory.read().rss_mb
    try:
        prompts = Prompts.load(job.prompts)
        check(prompts, config.new_tokens, generator.vocab_size, generator.max_positions)
        outputs: dict[str, np.ndarray] = {}
        reference = dict(np.load(job.reference)) if job.reference is not None else None
        for i, prompt in enumerate(prompts.ids):
            if reference is None:
                outputs[f"ids_{i}"], outputs[f"logits_{i}"] = greedy(generator, prompt, config.new_tokens)
            else:
                outputs[f"logits_{i}"] = teacher_forced(generator, prompt, reference[f"ids_{i}"])
                if isinstance(generator, StreamingGenerator):  # the ids its own loop chooses
                    steps = list(generator.stream(np.asarray(prompt, np.int64)[None], config.new_tokens))
                    outputs[f"streamed_{i}"] = np.array([int(np.asarray(ids).reshape(-1)[0]) for ids in steps])
        with open(job.outputs, "wb") as f:
            np.savez(f, **outputs)
        order = ProfileOrder.from_json(channel.ask(OutputsSaved(job.outputs)))
        if not order.profile:
            return Profiled().to_json()
        longest = prompts.first_of_length(prompts.lengths[-1])
        if order.screen is not None and order.rivals:
            point, screened = screen(generator, longest, config, order)
            channel.emit(Measured(point, screen=True))
            if screened:
                return Profiled(Stop.SCREENED, screened, job.request.threads, loaded_mb).to_json()
        ttft = {}
        for length in prompts.lengths:
            ttft[str(length)] = measure_ttft(
                generator, prompts.first_of_length(length), repeats=config.repeats, warmup=config.warmup
            )
            channel.emit(Ttft(length, ttft[str(length)]))
        for batch in config.batch_sizes:
            point = measure_batch(
                generator,
                longest,
                batch,
                config.new_tokens,
                repeats=config.repeats,
                warmup=config.warmup,
                memory=memory,
            )
            channel.emit(Measured(point))
        return Profiled(Stop.MAX_BATCH, "measured at every batch size", job.request.threads, loaded_mb, ttft).to_json()
    finally:
        generator.close()
