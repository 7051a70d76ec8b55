"""Jobs that run inside isolated children: one export/convert step, or one candidate.

Each job arrives as the JSON document of a :mod:`sextant.jobs` job (the same document is written
next to the step's log, so ``python -m sextant.worker JOB.json`` replays it in-process) together
with a :class:`~sextant.child.Channel` to the parent.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sextant.child import Channel
from sextant.jobs import CandidateJob, PairedJob, StepJob, read_job
from sextant.memory import MemoryProbe
from sextant.messages import Built, Loaded, Measured, OutputsSaved, Profiled, ProfileOrder, Windows
from sextant.runtime import Fingerprinted, StageTimer, Synchronizer
from sextant.samples import load_batches, resize_batch, save_batches
from sextant.screening import profile_candidate
from sextant.specs import resolve


def run_step(document: Mapping[str, Any], channel: Channel) -> dict[str, Any]:
    """Run an exporter or converter; answers :class:`~sextant.messages.Built`: the artifact and, when
    the job names its format's ``canonical_hash``, the artifact's fingerprint (``None``, with the
    error in the log, when the fingerprint failed: then only its bytes count)."""
    job = StepJob.from_json(document)
    job.request.output_dir.mkdir(parents=True, exist_ok=True)
    artifact = resolve(job.run)(job.request)
    if artifact is None or not Path(artifact).exists():
        raise RuntimeError(f"{job.run} returned {artifact!r}, which does not exist")
    canonical = None
    if job.canonical_hash is not None:
        try:
            canonical = str(resolve(job.canonical_hash)(Path(artifact)))
        except Exception as exc:  # a fingerprint is an optimisation: the artifact stands without it
            print(f"{job.canonical_hash} failed on {artifact}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return Built(Path(artifact), canonical).to_json()


def _set_threads(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = str(threads)


def run_candidate(document: Mapping[str, Any], channel: Channel) -> dict[str, Any]:
    """Load a runner, run the correctness inputs, ask the parent, then profile if told to.

    Messages (:mod:`sextant.messages`): ``Loaded``; the ask ``OutputsSaved``, answered with a
    ``ProfileOrder``; a ``Measured`` for each point of the screen or of the full sweep, with the
    peak resident memory while it was measured (see :mod:`sextant.screening`). Answers ``Profiled``.
    """
    job = CandidateJob.from_json(document)
    _set_threads(job.request.threads)
    memory = MemoryProbe()
    started = time.perf_counter()
    runner = resolve(job.load)(job.request)
    seconds = time.perf_counter() - started
    channel.emit(Loaded(seconds, runner.fingerprint() if isinstance(runner, Fingerprinted) else None))
    loaded_mb = memory.read().rss_mb
    try:
        outputs = []
        checks = load_batches(job.inputs)
        for batch in checks:
            result = runner.infer(batch)
            outputs.append({name: np.asarray(value) for name, value in result.items()})
        save_batches(job.outputs, outputs)
        order = ProfileOrder.from_json(channel.ask(OutputsSaved(job.outputs)))
        if not order.profile:
            return Profiled().to_json()
        base = load_batches(job.inputs)[0]

        def make_batch(size: int) -> dict[str, Any]:
            return resize_batch(base, size, job.request.signature)

        def make_infer(size: int):
            batch = make_batch(size)
            return lambda: runner.infer(batch)

        stages = runner.stage_times if isinstance(runner, StageTimer) else None
        shapes = [{name: np.shape(value) for name, value in batch.items()} for batch in checks]
        outcome = profile_candidate(
            make_infer,
            job.profiler,
            order,
            lambda p: channel.emit(Measured(p)),
            lambda p: channel.emit(Measured(p, screen=True)),
            stages,
            memory=memory,
            synchronize=runner.synchronize if isinstance(runner, Synchronizer) else None,
            # a size the correctness inputs ran at, in the same shapes, needs no warm-up before its screen
            warm=lambda size: {n: np.shape(v) for n, v in make_batch(size).items()} in shapes,
        )
        return Profiled(outcome.stop, outcome.stopped, job.request.threads, loaded_mb).to_json()
    finally:
        runner.close()


def _nothing() -> None:
    return None


def run_paired(document: Mapping[str, Any], channel: Channel) -> dict[str, Any]:
    """Load every contender's runner and measure them in interleaved rounds (:mod:`sextant.pairing`);
    answers :class:`~sextant.messages.Windows`."""
    from sextant.pairing import interleave, settled

    job = PairedJob.from_json(document)
    _set_threads(job.requests[0].threads)
    base = load_batches(job.inputs)[0]
    runners: list[Any] = []
    try:
        infers = []
        for load, request, size in zip(job.loads, job.requests, job.batches):
            runner = resolve(load)(request)
            runners.append(runner)
            batch = resize_batch(base, size, request.signature)
            sync = runner.synchronize if isinstance(runner, Synchronizer) else _nothing
            # a device runner's call ends when its device work does, as in the profiler
            infers.append(lambda runner=runner, batch=batch, sync=sync: (runner.infer(batch), sync()))
        objective = job.objective
        stop = (lambda rows: settled(rows, job.rounds, job.runners_up, objective)) if objective else None
        windows = interleave(infers, job.batches, job.rounds, job.window_s, job.min_calls, stop=stop)
        return Windows(tuple(tuple(row) for row in windows)).to_json()
    finally:
        for runner in runners:
            runner.close()


def main(argv: list[str] | None = None) -> int:
    """Replay a job file written next to a step's log, in this process, printing what it reports."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m sextant.worker JOB.json", file=sys.stderr)
        return 2
    path = Path(args[0])
    job = read_job(path)

    def answer(kind: str, data: Any) -> Any:
        print(f"{kind}: {data}")
        return ProfileOrder(profile=True).to_json()  # replayed alone: profile in full, no rivals

    document = json.loads(path.read_text())["job"]
    result = resolve(job.target)(document, Channel(answer=answer))
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
