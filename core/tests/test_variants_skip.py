"""Why an option variant is skipped, when its runner's defaults are not profiled in full anywhere
(issue 30: a variant was said to follow defaults that "did not succeed" when they were correct and
screened out)."""

from __future__ import annotations

from types import SimpleNamespace

import sextant
from sextant.objective import Objective
from sextant.optimizer.variants import run_variants
from sextant.records import CandidateRecord, Point, Profile, Status, Stop
from sextant.testing.fake import NumpyMLP


def _variant_skipped_after(fake_catalog, options, samples, record: CandidateRecord | None) -> str:
    plan = sextant.optimize(NumpyMLP(), samples, options=options, catalog=fake_catalog, plan_only=True)
    default = next(c for c in plan.candidates if c.id == "fake-graph:fake-graph@cpu")
    variant = next(c for c in plan.candidates if c.id == "fake-graph:fake-graph[impl=einsum]@cpu")
    recorded: dict[str, CandidateRecord] = {}
    ledger = SimpleNamespace(
        candidates={default.id: record} if record is not None else {},
        record_candidate=lambda cid, rec: recorded.__setitem__(cid, rec),
    )
    run = SimpleNamespace(ledger=ledger, objective=Objective(), options=SimpleNamespace(cutoff=0.7))
    run_variants(run, plan, [variant], evaluate=lambda c: None)
    assert recorded[variant.id].status == Status.SKIPPED
    return recorded[variant.id].reason


def _record(status: Status, stop: Stop | None, **fields) -> CandidateRecord:
    point = Point(batch=1, throughput=10.0, p50_ms=1.0, p99_ms=1.0)
    return CandidateRecord("fake-graph", "fake-graph", "fake-graph", "fake", "cpu", "fp32", status=status,
                           profile=Profile(points=(point,), stop=stop), **fields)


def test_defaults_screened_out_everywhere_are_said_to_be(fake_catalog, options, samples):
    reason = _variant_skipped_after(fake_catalog, options, samples, _record(Status.OK, Stop.SCREENED))
    assert reason == (
        "fake-graph with default options was screened out on every artifact (correct, but under 70% of the "
        "best measured so far), so its variants were not tried"
    )


def test_defaults_that_failed_everywhere_did_not_succeed(fake_catalog, options, samples):
    for record in (_record(Status.FAILED, None), None):
        reason = _variant_skipped_after(fake_catalog, options, samples, record)
        assert reason == "fake-graph with default options did not succeed on any artifact"


def test_defaults_that_were_duplicates_everywhere_say_what_was_measured_in_their_place(fake_catalog, options, samples):
    """``make demo``'s run said the torch.export IR's throughput variant was skipped because OpenVINO's
    IR runner "did not succeed on any artifact", where it had compiled the same graph as another
    candidate and was recorded as its duplicate."""
    twin = "torch-onnx:openvino@cpu"
    duplicate = _record(Status.DUPLICATE, None, duplicate_of=twin)
    reason = _variant_skipped_after(fake_catalog, options, samples, duplicate)
    assert reason == (
        f"fake-graph with default options was a duplicate wherever it ran correct (the same file or compiled graph "
        f"as {twin}, measured in its place), so its variants were not tried"
    )
