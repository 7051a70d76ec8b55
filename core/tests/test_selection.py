"""Selection over typed records: the fastest correct candidate wins, and 'none' says why."""

from sextant.objective import Objective
from sextant.records import CandidateRecord, Correctness, Point, Profile, Status
from sextant.selection import select


def record(status=Status.OK, *throughputs: float) -> CandidateRecord:
    points = tuple(
        Point(batch=2**i, throughput=t, p50_ms=1000.0 * 2**i / t, p99_ms=2000.0 * 2**i / t)
        for i, t in enumerate(throughputs)
    )
    return CandidateRecord(
        "source", "f", "r", "p", "cpu", "fp32", status=status, profile=Profile(points, 2) if points else None
    )


def test_the_fastest_wins_and_the_ranking_is_best_first():
    candidates = {
        "base": record(Status.OK, 100.0, 150.0),
        "slow": record(Status.OK, 50.0, 60.0),
        "fast": record(Status.OK, 300.0, 500.0),
        "mid": record(Status.OK, 200.0, 250.0),
    }
    selection, ranked = select(candidates, Objective(), "base")
    assert selection.ranking == ("fast", "mid", "base", "slow")
    assert selection.best == "fast"
    assert ranked["fast"].best_point.throughput == 500.0
    assert ranked["fast"].speedup == 500.0 / 150.0
    assert ranked["slow"].speedup == 60.0 / 150.0


def test_only_correct_profiled_competing_candidates_are_selected():
    candidates = {
        "base": record(Status.OK, 100.0),
        "wrong": record(Status.INCORRECT, 900.0),
        "rejected": record(Status.REJECTED, 800.0),
        "failed": record(Status.FAILED),
        "other": record(Status.OK, 120.0),
    }
    selection, _ = select(candidates, Objective(), "base", competing={"wrong", "rejected", "failed", "other"})
    assert selection.ranking == ("other",)


def test_why_none_counts_rejected_as_judged_wrong():
    candidates = {"a": record(Status.REJECTED, 100.0), "b": record(Status.INCORRECT, 100.0)}
    selection, _ = select(candidates, Objective(), None)
    assert selection.best is None
    assert selection.reason == "every candidate that ran failed correctness or verification"
    only_rejected, _ = select({"a": record(Status.REJECTED, 100.0), "c": record(Status.FAILED)}, Objective(), None)
    assert only_rejected.reason == "every candidate that ran failed correctness or verification"


def test_a_constraint_no_candidate_meets_is_named():
    selection, _ = select({"a": record(Status.OK, 100.0)}, Objective(max_p99_ms=1e-6), "a")
    assert selection.best is None and "latency budget of 1e-06 ms p99" in selection.reason


def test_selection_json_keeps_schema_1_keys():
    selection, _ = select({"a": record(Status.OK, 100.0)}, Objective.named("throughput", max_batch=8), "a")
    document = selection.to_json()
    assert {"objective", "latency_budget_ms", "max_batch", "baseline", "ranking", "best"} <= set(document)
    assert document["best"] == "a" and document["objective"] == "throughput"


def test_correctness_record_reports_the_worst_output():
    correctness = Correctness(True, ({"max_abs_error": 1e-7}, {"max_abs_error": 3e-6}), 1e-4, 1e-3, "ok")
    assert correctness.max_abs_error == 3e-6
