"""Typed records read and write status.json's schema 1, including packages written before them."""

import json

from sextant.records import CandidateRecord, Cause, Status, StepRecord

OLD_CANDIDATE = {  # as the previous sextant wrote it
    "step": "torch-onnx",
    "format": "onnx",
    "runner": "onnxruntime",
    "plugin": "sextant-onnx 0.1.0",
    "device": "cpu",
    "precision": "fp32",
    "options": {"intra_op_threads": 1},
    "status": "ok",
    "artifact": "artifacts/torch-onnx-0123456789/model.onnx",
    "keys": {"outputs": "a" * 64, "profile": "b" * 64},
    "outputs": "outputs/x.npz",
    "log": "logs/x.log",
    "correctness": {"passed": True, "outputs": [{"name": "y", "max_abs_error": 1e-7}], "atol": 1e-4, "rtol": 1e-3},
    "profile": {"points": [{"batch": 1, "throughput": 10.0, "p50_ms": 0.1, "p99_ms": 0.2}], "threads": 2},
    "load_seconds": 0.5,
    "seconds": 3.25,
    "best_point": {"batch": 1, "throughput": 10.0, "p50_ms": 0.1, "p99_ms": 0.2},
    "speedup": 1.5,
}


def test_an_old_candidate_record_reads_typed_and_writes_back_the_same_keys():
    record = CandidateRecord.from_json(OLD_CANDIDATE)
    assert record.status is Status.OK
    assert record.keys.outputs == "a" * 64
    assert record.correctness.max_abs_error == 1e-7
    assert record.points[0].batch == 1 and record.profile.threads == 2
    again = record.to_json()
    assert again["correctness"]["summary"] == ""  # the one key older records lack
    del again["correctness"]["summary"]
    assert json.loads(json.dumps(again)) == OLD_CANDIDATE


def test_a_failed_step_round_trips_with_its_cause():
    step = StepRecord(
        "exporter",
        "torch-onnx",
        "p",
        "source",
        "onnx",
        "fp32",
        "cpu",
        "k" * 64,
        status=Status.FAILED,
        cause=Cause.CRASH,
        reason="child process killed by SIGSEGV",
        log_tail="boom",
    )
    data = json.loads(json.dumps(step.to_json()))
    assert data["from"] == "source" and data["status"] == "failed" and data["cause"] == "crash"
    assert StepRecord.from_json(data) == step


def test_statuses_and_causes_are_the_strings_status_json_holds():
    assert [s.value for s in Status] == [
        "ok",
        "failed",
        "incorrect",
        "rejected",
        "skipped",
        "duplicate",
        "pending",
        "profiling",
    ]
    assert Status("rejected").judged_wrong and Status("incorrect").judged_wrong and not Status("failed").judged_wrong
    retried = {Cause.TIMEOUT, Cause.LOST, Cause.INTERRUPTED, Cause.DISK_FULL, Cause.OUT_OF_MEMORY, Cause.BUDGET}
    assert {c for c in Cause if c.retried} == retried
    assert json.dumps({"s": Status.OK}) == '{"s": "ok"}'


def test_a_rejected_candidate_keeps_verified_false():
    record = CandidateRecord("source", "f", "r", "p", "cpu", "fp32", status=Status.REJECTED, verified=False)
    assert record.to_json()["verified"] is False


def test_a_profile_written_before_stop_existed_reads_its_stop_from_its_words():
    from sextant.records import Profile, Stop

    assert Profile.from_json({"points": [], "stopped": "stopped early: cannot win (5/s at batch 2 ...)"}).cut_off
    assert Profile.from_json({"points": [], "stopped": "reached max batch 64"}).stop is Stop.MAX_BATCH
    assert Profile.from_json({"points": [], "stopped": "throughput stopped improving at batch 8"}).stop is Stop.PLATEAU
    assert Profile.from_json({"points": [], "stop": "cutoff", "stopped": "anything"}).cut_off
