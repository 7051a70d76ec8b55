"""The jobs a parent hands to an isolated child, typed, and serialized to JSON in one place.

A job is written next to its step's log (``logs/<name>.job.json``) and the same JSON document is
sent to the child, so ``python -m sextant.worker logs/<name>.job.json`` replays exactly what ran.
Every default lives on the dataclasses below or on the options they come from, never in the worker.
Each job names the :mod:`sextant.messages` type its child answers with (``answer``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sextant.generation.config import GenerationConfig
from sextant.messages import Built, Profiled, Windows
from sextant.objective import Objective
from sextant.profiler import ProfilerConfig
from sextant.runtime import GeneratorRequest, RunnerRequest, StepRequest
from sextant.signature import Signature

STEP_TARGET = "sextant.worker:run_step"
CANDIDATE_TARGET = "sextant.worker:run_candidate"
GENERATION_TARGET = "sextant.generation.worker:run_generation"
PAIRED_TARGET = "sextant.worker:run_paired"


@dataclass(frozen=True)
class StepJob:
    """Run one exporter or converter (``run`` names its callable) on ``request``; then, when the
    produced format names one (``FormatSpec.canonical_hash``), fingerprint the artifact with
    ``canonical_hash``."""

    run: str
    request: StepRequest
    canonical_hash: str | None = None

    target = STEP_TARGET
    answer = Built

    def to_json(self) -> dict[str, Any]:
        r = self.request
        out = {
            "run": self.run,
            "input": str(r.input),
            "output_dir": str(r.output_dir),
            "signature": r.signature.to_dict(),
            "samples": str(r.samples),
            "device": r.device,
            "max_batch": r.max_batch,
            "options": dict(r.options),
        }
        if self.canonical_hash is not None:
            out["canonical_hash"] = self.canonical_hash
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StepJob:
        request = StepRequest(
            input=Path(data["input"]),
            output_dir=Path(data["output_dir"]),
            signature=Signature.from_dict(data["signature"]),
            samples=Path(data["samples"]),
            device=data["device"],
            max_batch=data["max_batch"],
            options=data["options"],
        )
        return cls(data["run"], request, data.get("canonical_hash"))


@dataclass(frozen=True)
class CandidateJob:
    """Load a runner (``load`` names its callable), run ``inputs``, save the outputs to ``outputs``,
    then profile with ``profiler`` if the parent says so (:class:`~sextant.messages.ProfileOrder`)."""

    load: str
    request: RunnerRequest
    inputs: Path
    outputs: Path
    profiler: ProfilerConfig

    target = CANDIDATE_TARGET
    answer = Profiled

    def to_json(self) -> dict[str, Any]:
        return {
            "load": self.load,
            **_request_json(self.request),
            "inputs": str(self.inputs),
            "outputs": str(self.outputs),
            "profiler": self.profiler.to_dict(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CandidateJob:
        return cls(
            data["load"],
            _request(data),
            Path(data["inputs"]),
            Path(data["outputs"]),
            ProfilerConfig(**data["profiler"]),
        )


@dataclass(frozen=True)
class GenerationJob:
    """Load a generator (``load`` names its callable), run every prompt of ``prompts`` greedily (the
    reference: ``reference`` is ``None``) or teacher-forced on the reference's continuation, save the
    logits (and ids) to ``outputs``, then measure with ``config`` if the parent says so
    (:class:`~sextant.messages.ProfileOrder`; see :mod:`sextant.generation.worker`)."""

    load: str
    request: GeneratorRequest
    prompts: Path
    reference: Path | None
    outputs: Path
    config: GenerationConfig

    target = GENERATION_TARGET
    answer = Profiled

    def to_json(self) -> dict[str, Any]:
        r = self.request
        return {
            "load": self.load,
            "artifact": str(r.artifact),
            "device": r.device,
            "precision": r.precision,
            "threads": r.threads,
            "options": dict(r.options),
            "max_batch": r.max_batch,
            "max_length": r.max_length,
            "prompts": str(self.prompts),
            "reference": None if self.reference is None else str(self.reference),
            "outputs": str(self.outputs),
            "config": self.config.to_dict(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GenerationJob:
        request = GeneratorRequest(
            artifact=Path(data["artifact"]),
            device=data["device"],
            precision=data["precision"],
            threads=int(data["threads"]),
            options=data["options"],
            max_batch=int(data["max_batch"]),
            max_length=int(data["max_length"]),
        )
        reference = Path(data["reference"]) if data["reference"] else None
        config = GenerationConfig.from_dict(data["config"])
        return cls(data["load"], request, Path(data["prompts"]), reference, Path(data["outputs"]), config)


@dataclass(frozen=True)
class PairedJob:
    """Load each contender's runner (``loads[i]`` with ``requests[i]``) and measure them in
    interleaved rounds at ``batches[i]`` (see :mod:`sextant.pairing`), on the first batch of ``inputs``;
    with an ``objective``, stop once the rounds decide that no runner-up (``runners_up``: indices)
    beats the first contender (:func:`sextant.pairing.settled`)."""

    loads: tuple[str, ...]
    requests: tuple[RunnerRequest, ...]
    batches: tuple[int, ...]
    inputs: Path
    rounds: int
    window_s: float
    min_calls: int
    objective: Objective | None = None
    runners_up: tuple[int, ...] = ()

    target = PAIRED_TARGET
    answer = Windows

    def to_json(self) -> dict[str, Any]:
        return {
            "contenders": [
                {"load": load, "batch": batch, **_request_json(request)}
                for load, request, batch in zip(self.loads, self.requests, self.batches)
            ],
            "inputs": str(self.inputs),
            "rounds": self.rounds,
            "window_s": self.window_s,
            "min_calls": self.min_calls,
            "objective": self.objective.to_json() if self.objective else None,
            "runners_up": list(self.runners_up),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PairedJob:
        contenders = data["contenders"]
        return cls(
            tuple(c["load"] for c in contenders),
            tuple(_request(c) for c in contenders),
            tuple(int(c["batch"]) for c in contenders),
            Path(data["inputs"]),
            int(data["rounds"]),
            float(data["window_s"]),
            int(data["min_calls"]),
            Objective.from_json(data["objective"]) if data.get("objective") else None,
            tuple(int(i) for i in data.get("runners_up", ())),
        )


def _request_json(r: RunnerRequest) -> dict[str, Any]:
    return {
        "artifact": str(r.artifact),
        "signature": r.signature.to_dict(),
        "device": r.device,
        "precision": r.precision,
        "threads": r.threads,
        "options": dict(r.options),
    }


def _request(data: Mapping[str, Any]) -> RunnerRequest:
    return RunnerRequest(
        artifact=Path(data["artifact"]),
        signature=Signature.from_dict(data["signature"]),
        device=data["device"],
        precision=data["precision"],
        threads=int(data["threads"]),
        options=data["options"],
    )


Job = StepJob | CandidateJob | GenerationJob | PairedJob
_KINDS: dict[str, type[StepJob] | type[CandidateJob] | type[GenerationJob] | type[PairedJob]] = {
    STEP_TARGET: StepJob,
    CANDIDATE_TARGET: CandidateJob,
    GENERATION_TARGET: GenerationJob,
    PAIRED_TARGET: PairedJob,
}


def job_document(job: Job) -> dict[str, Any]:
    """The JSON document of a job: what the job file holds and what the child receives."""
    return {"target": job.target, "job": job.to_json()}


def parse_job(document: Mapping[str, Any]) -> Job:
    try:
        kind = _KINDS[document["target"]]
    except KeyError:
        raise ValueError(f"not a sextant job: target {document.get('target')!r}") from None
    return kind.from_json(document["job"])


def read_job(path: Path) -> Job:
    return parse_job(json.loads(path.read_text()))
