"""Typed jobs: serialized once, replayable, and the worker's cut-off decision."""

import json
from pathlib import Path

from sextant.jobs import CandidateJob, ProfileOrder, StepJob, job_document, parse_job
from sextant.profiler import Point, ProfilerConfig
from sextant.runtime import RunnerRequest, StepRequest
from sextant.screening import cutoff_reason
from sextant.signature import Signature, TensorSpec

SIGNATURE = Signature((TensorSpec("x", "float32", (None, 8)),), call_style="keyword")


def point(batch: int, throughput: float) -> Point:
    return Point(batch, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, throughput, 10, 3, True, 0.01)


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


def test_cutoff_stops_a_candidate_under_the_share_of_the_best_rival():
    order = ProfileOrder(True, 0.7, {1: 1000.0, 2: 2000.0, 4: 4000.0})
    assert cutoff_reason(point(2, 1000.0), order).startswith("stopped early: cannot win (1000/s at batch 2")
    assert cutoff_reason(point(2, 1500.0), order) is None  # 75 % of the best: may still win
    assert cutoff_reason(point(1, 10.0), order) is None  # batch 1 is always measured in full
    assert cutoff_reason(point(8, 1.0), order) is None  # no rival measured there
    assert cutoff_reason(point(4, 100.0), ProfileOrder(True, 0.0, order.rivals)) is None  # cut-off 0: never
