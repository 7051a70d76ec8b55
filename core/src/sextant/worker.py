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
from sextant.jobs import CandidateJob, PairedJob, ProfileOrder, StepJob, read_job
from sextant.memory import MemoryProbe
from sextant.runtime import StageTimer, Synchronizer
from sextant.samples import load_batches, resize_batch, save_batches
from sextant.screening import profile_candidate
from sextant.specs import resolve


def run_step(document: Mapping[str, Any], channel: Channel) -> dict[str, Any]:
    """Run an exporter or converter; returns the artifact's path (``artifact``) and, when the job
    names its format's ``canonical_hash``, the artifact's fingerprint (``canonical``; ``None``,
    with the error in the log, when the fingerprint failed: then only its bytes count)."""
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
    return {"artifact": str(artifact), "canonical": canonical}


def _set_threads(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = str(threads)


def run_candidate(document: Mapping[str, Any], channel: Channel) -> dict[str, Any]:
    """Load a runner, run the correctness inputs, ask the parent, then profile if told to.

    Events: ``loaded`` (seconds), ``screen_point`` and ``point`` (one point of the screen or of
    the full sweep as a dict, with the peak resident memory while it was measured; see
    :mod:`sextant.screening`). The ask ``outputs`` (path of the saved outputs) is answered with
    a :class:`~sextant.jobs.ProfileOrder` document.
    """
    job = CandidateJob.from_json(document)
    _set_threads(job.request.threads)
    memory = MemoryProbe()
    started = time.perf_counter()
    runner = resolve(job.load)(job.request)
    channel.emit("loaded", time.perf_counter() - started)
    loaded_mb = memory.read().rss_mb
    try:
        outputs = []
        for batch in load_batches(job.inputs):
            result = runner.infer(batch)
            outputs.append({name: np.asarray(value) for name, value in result.items()})
        save_batches(job.outputs, outputs)
        order = ProfileOrder.from_json(channel.ask("outputs", str(job.outputs)))
        if not order.profile:
            return {"profiled": False}
        base = load_batches(job.inputs)[0]

        def make_infer(size: int):
            batch = resize_batch(base, size, job.request.signature)
            return lambda: runner.infer(batch)

        stages = runner.stage_times if isinstance(runner, StageTimer) else None
        outcome = profile_candidate(
            make_infer,
            job.profiler,
            order,
            lambda p: channel.emit("point", p.to_dict()),
            lambda p: channel.emit("screen_point", p.to_dict()),
            stages,
            memory=memory,
            synchronize=runner.synchronize if isinstance(runner, Synchronizer) else None,
        )
        return {
            "profiled": True,
            "stopped": outcome.stopped,
            "stop": outcome.stop.value,
            "threads": job.request.threads,
            "loaded_memory_mb": loaded_mb,
        }
    finally:
        runner.close()


def _nothing() -> None:
    return None


def run_paired(document: Mapping[str, Any], channel: Channel) -> dict[str, Any]:
    """Load every contender's runner and measure them in interleaved rounds (:mod:`sextant.pairing`)."""
    from sextant.pairing import interleave

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
        return {"windows": interleave(infers, job.batches, job.rounds, job.window_s, job.min_calls)}
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
