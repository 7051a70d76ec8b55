"""Typed jobs and the messages of their children: serialized once, replayable (the early stop they
order: test_earlystop.py)."""

import json
from dataclasses import replace
from pathlib import Path

from sextant.jobs import CandidateJob, StepJob, job_document, parse_job
from sextant.messages import Built, Loaded, Measured, OutputsSaved, Profiled, ProfileOrder, Ttft, Windows, parse_event
from sextant.profiler import ProfilerConfig
from sextant.records import Point, Stop
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
    dense = replace(candidate, profiler=ProfilerConfig(sparse=False, min_batch=2))  # not the defaults: they travel too
    for job in (step, candidate, dense):
        document = json.loads(json.dumps(job_document(job)))
        assert parse_job(document) == job


def test_profile_order_round_trip_keeps_integer_batches():
    order = ProfileOrder(True, 0.7, {1: 100.0, 2: 250.0}, "throughput")
    again = ProfileOrder.from_json(json.loads(json.dumps(order.to_json())))
    assert again == order and list(again.rivals) == [1, 2]


def test_child_messages_and_answers_round_trip_through_json():
    def again(message):
        return json.loads(json.dumps(message.to_json()))

    for event in (Loaded(0.25), OutputsSaved(Path("/out.npz")), Measured(Point(batch=4, p50_ms=0.5, p99_ms=0.9, throughput=8000.0, calls=40), screen=True), Ttft(16, 3.5)):
        assert parse_event(event.kind, again(event)) == event
    answers = (
        Profiled(),
        Profiled(Stop.SCREENED, "screened out: estimate 9/s", 2, 120.5),
        Profiled(Stop.MAX_BATCH, "measured at every batch size", 1, None, {"16": 4.0}),
        Built(Path("/art/model.onnx")),
        Built(Path("/art/model.onnx"), "sha256:0f"),
        Windows((({"throughput": 1.0}, {"throughput": 2.0}),)),
    )
    for answer in answers:
        assert type(answer).from_json(again(answer)) == answer


def build(request):
    artifact = request.output_dir / "model.txt"
    artifact.write_text("built")
    return artifact


def test_a_job_file_replays_in_this_process_and_prints_the_typed_answer(tmp_path, capsys):
    from sextant.worker import main

    request = StepRequest(tmp_path / "in", tmp_path / "out", SIGNATURE, tmp_path / "s.npz", "cpu", 8, {})
    path = tmp_path / "step.job.json"
    path.write_text(json.dumps(job_document(StepJob("test_jobs:build", request))))
    assert main([str(path)]) == 0
    assert Built.from_json(json.loads(capsys.readouterr().out)) == Built(tmp_path / "out" / "model.txt")
