"""Typed jobs: serialized once, replayable (the early stop they order: test_earlystop.py)."""

import json
from pathlib import Path

from sextant.jobs import CandidateJob, ProfileOrder, StepJob, job_document, parse_job
from sextant.profiler import ProfilerConfig
from sextant.runtime import RunnerRequest, StepRequest
from sextant.signature import Signature, TensorSpec

SIGNATURE = Signature((TensorSpec("x", "float32", (None, 8)),), call_style="keyword")


def test_jobs_round_trip_through_json():
    step = StepJob("pkg.mod:run", StepRequest(Path("/a"), Path("/b"), SIGNATURE, Path("/s.npz"), "cpu", 8, {"k": 1}))
    candidate = CandidateJob(
        "pkg.mod:load",
        RunnerRequest(Path("/art"), SIGNATURE, "cpu", "fp16", 2, {"impl": "einsum"}),
        Path("/in.npz"),
        Path("/out.npz"),
        ProfilerConfig(max_batch=8, window_s=0.01),
    )
    for job in (step, candidate):
        document = json.loads(json.dumps(job_document(job)))
        assert parse_job(document) == job


def test_profile_order_round_trip_keeps_integer_batches():
    order = ProfileOrder(True, 0.7, {1: 100.0, 2: 250.0}, "throughput")
    again = ProfileOrder.from_json(json.loads(json.dumps(order.to_json())))
    assert again == order and list(again.rivals) == [1, 2]
