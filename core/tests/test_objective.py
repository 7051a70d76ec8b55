"""The one objective value object: constraints, gains, which point represents a candidate, ranking."""

import pytest
from sextant.errors import UsageError
from sextant.objective import Objective
from sextant.records import Point

POINTS = [
    Point(batch=1, throughput=1000.0, p50_ms=1.0, p99_ms=1.5, memory_mb=100.0),
    Point(batch=8, throughput=4000.0, p50_ms=2.0, p99_ms=3.0, memory_mb=120.0),
    Point(batch=32, throughput=6000.0, p50_ms=5.3, p99_ms=9.0, memory_mb=300.0),
]


def test_presets_pick_their_point():
    assert Objective.named("throughput").best_point(POINTS).batch == 32
    assert Objective.named("latency").best_point(POINTS).batch == 1  # single-request latency
    assert Objective.named("memory").best_point(POINTS).batch == 1


def test_constraints_and_max_batch_narrow_the_points():
    assert Objective.named("throughput", max_p99_ms=5.0).best_point(POINTS).batch == 8
    assert Objective.named("throughput", max_memory_mb=150.0).best_point(POINTS).batch == 8
    assert Objective.named("throughput", max_batch=8).best_point(POINTS).batch == 8
    assert Objective.named("throughput", max_p99_ms=1.0).best_point(POINTS) is None
    assert Objective.named("throughput", min_throughput=5000.0).best_point(POINTS).batch == 32


def test_a_metric_not_measured_fails_no_constraint():
    # a point without that metric (a serving measurement with no memory reading, a screen) is judged
    # on what was measured: an unmeasured throughput is not a throughput of 0
    unmeasured = {"batch": 1, "p50_ms": 1.0}
    assert Objective(min_throughput=100.0).feasible(unmeasured)
    assert Objective(max_p99_ms=5.0).feasible(unmeasured)
    assert Objective(max_memory_mb=50.0).feasible({**unmeasured, "memory_mb": None})
    assert not Objective(min_throughput=100.0).feasible({**unmeasured, "throughput": 99.0})
    assert Objective.named("latency", min_throughput=100.0).fits(unmeasured)
    assert Objective(max_memory_mb=50.0).feasible(Point(1, 1.0, 1.0, 10.0))  # a point without memory_mb


def test_gain_speedup_and_score():
    throughput, latency = Objective(), Objective(weights={"p50_ms": 1.0})
    assert throughput.gain({"throughput": 150.0}, {"throughput": 100.0}) == pytest.approx(0.5)
    assert latency.gain({"p50_ms": 1.0}, {"p50_ms": 2.0}) == pytest.approx(1.0)  # half the latency: 100 % better
    assert throughput.speedup({"throughput": 300.0}, {"throughput": 100.0}) == pytest.approx(3.0)
    assert latency.speedup({"p50_ms": 0.5}, {"p50_ms": 2.0}) == pytest.approx(4.0)
    budget = Objective(max_p99_ms=5.0)
    assert budget.score(None, {}) is None and budget.score({"p99_ms": 9.0}, {}) is None
    assert budget.feasible({"p99_ms": 5.0}) and not budget.feasible({"p99_ms": 5.1})


def test_rank_puts_the_best_first_feasible_before_infeasible_and_ties_to_lower_latency():
    objective = Objective(max_p99_ms=10.0)
    measured = [
        {"throughput": 100.0, "p50_ms": 1.0, "p99_ms": 2.0},
        {"throughput": 900.0, "p50_ms": 1.0, "p99_ms": 20.0},  # fastest, but over the budget
        {"throughput": 300.0, "p50_ms": 2.0, "p99_ms": 3.0},
        {"throughput": 300.0, "p50_ms": 1.5, "p99_ms": 3.0},  # ties on throughput, lower p50
    ]
    assert objective.rank(measured) == [3, 2, 0, 1]


def test_bad_objectives_are_usage_errors():
    with pytest.raises(UsageError, match="unknown objective"):
        Objective.named("fastest")
    with pytest.raises(UsageError, match="must be positive"):
        Objective.named("throughput", max_p99_ms=-1.0)
    with pytest.raises(UsageError, match="unknown metric"):
        Objective(weights={"speed": 1.0})


def test_json_round_trip():
    objective = Objective.named("latency", max_p99_ms=3.0, max_memory_mb=512.0, max_batch=16)
    assert Objective.from_json(objective.to_json()) == objective
