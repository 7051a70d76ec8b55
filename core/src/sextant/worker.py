"""Jobs that run inside isolated children: one export/convert step, or one candidate.

Each job takes a JSON-able payload (so it can be written next to the step's log and replayed with
``python -m sextant.worker JOB.json``) and a :class:`~sextant.isolation.Channel` to the parent.
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

from sextant.isolation import Channel
from sextant.profiler import Point, ProfilerConfig, sweep
from sextant.runtime import RunnerRequest, StageTimer, StepRequest
from sextant.samples import load_batches, resize_batch, save_batches
from sextant.signature import Signature
from sextant.specs import resolve


def run_step(payload: Mapping[str, Any], channel: Channel) -> str:
    """Run an exporter or converter; returns the artifact's path."""
    request = StepRequest(
        input=Path(payload["input"]),
        output_dir=Path(payload["output_dir"]),
        signature=Signature.from_dict(payload["signature"]),
        samples=Path(payload["samples"]),
        device=payload.get("device", "cpu"),
        max_batch=payload.get("max_batch", 1),
        options=payload.get("options", {}),
    )
    request.output_dir.mkdir(parents=True, exist_ok=True)
    artifact = resolve(payload["run"])(request)
    if artifact is None or not Path(artifact).exists():
        raise RuntimeError(f"{payload['run']} returned {artifact!r}, which does not exist")
    return str(artifact)


def _set_threads(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = str(threads)


def run_candidate(payload: Mapping[str, Any], channel: Channel) -> dict[str, Any]:
    """Load a runner, run the correctness inputs, ask the parent, then profile if told to.

    Events: ``loaded`` (seconds), ``point`` (one profile point). Ask ``outputs`` (path of the
    saved outputs) is answered with ``{"profile": bool, "config": ..., "rivals": {batch: tput}}``.
    """
    threads = int(payload["threads"])
    _set_threads(threads)
    signature = Signature.from_dict(payload["signature"])
    request = RunnerRequest(
        artifact=Path(payload["artifact"]),
        signature=signature,
        device=payload["device"],
        precision=payload["precision"],
        threads=threads,
        options=payload.get("options", {}),
    )
    started = time.perf_counter()
    runner = resolve(payload["load"])(request)
    channel.emit("loaded", time.perf_counter() - started)
    try:
        outputs = []
        for batch in load_batches(Path(payload["inputs"])):
            result = runner.infer(batch)
            outputs.append({name: np.asarray(value) for name, value in result.items()})
        save_batches(Path(payload["outputs"]), outputs)
        decision = channel.ask("outputs", payload["outputs"]) or {}
        if not decision.get("profile"):
            return {"profiled": False}
        config = ProfilerConfig(**decision.get("config", {}))
        rivals = {int(k): v for k, v in decision.get("rivals", {}).items()}
        cutoff = float(decision.get("cutoff", 0.5))
        base = load_batches(Path(payload["inputs"]))[0]

        def make_infer(size: int):
            batch = resize_batch(base, size, signature)
            return lambda: runner.infer(batch)

        def keep_going(point: Point) -> str | None:
            rival = rivals.get(point.batch)
            if point.batch >= 2 and rival and point.throughput < cutoff * rival:
                return (
                    f"stopped early: cannot win ({point.throughput:.0f}/s at batch {point.batch} "
                    f"is under {cutoff:.0%} of the best so far, {rival:.0f}/s)"
                )
            return None

        stages = runner.stage_times if isinstance(runner, StageTimer) else None
        stopped = sweep(make_infer, config, lambda p: channel.emit("point", p.to_dict()), keep_going, stages)
        return {"profiled": True, "stopped": stopped, "threads": threads}
    finally:
        runner.close()


def main(argv: list[str] | None = None) -> int:
    """Replay a job file written next to a step's log, in this process, printing what it reports."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m sextant.worker JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(args[0]).read_text())

    def answer(kind: str, data: Any) -> Any:
        print(f"{kind}: {data}")
        return {"profile": True, "config": job.get("profiler", {})}

    result = resolve(job["target"])(job["payload"], Channel(answer=answer))
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
