"""The search loop, goals and results store, with a trivial strategy (the strategies are a plugin)."""

from sextant.objective import Objective as Goal
from sextant.optimizer.budget import Budget
from sextant.search import ResultsStore, rerank, run_search
from sextant.specs import Param

SPACE = (Param("n", "linear", (1, 5), 1),)


class Listed:
    """Proposes every value once, in order."""

    space = SPACE

    def ask(self, history):
        seen = [c["n"] for c, _ in history]
        return [{"n": n} for n in SPACE[0].grid() if n not in seen][:1]


def fake_metrics(config):
    n = config["n"]
    return (None, "failed") if n == 4 else ({"throughput": 100.0 * n, "p99_ms": 2.0 * n}, None)


def test_goal_feasibility_and_gain():
    goal = Goal(max_p99_ms=5.0)
    assert goal.feasible({"p99_ms": 5.0}) and not goal.feasible({"p99_ms": 5.1})
    assert goal.gain({"throughput": 150.0}, {"throughput": 100.0}) == 0.5
    latency = Goal(weights={"p99_ms": 1.0})
    assert latency.gain({"p99_ms": 1.0}, {"p99_ms": 2.0}) == 1.0  # half the latency: 100 % better
    assert goal.score(None, {}) is None and goal.score({"p99_ms": 9.0}, {}) is None


def test_run_search_measures_each_configuration_once_and_keeps_everything(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    calls = []

    def measure(config):
        calls.append(config["n"])
        return fake_metrics(config)

    result = run_search(Listed(), measure, Goal(max_p99_ms=7.0), store, Budget(), key="c", hardware="h")
    assert calls == [1, 2, 3, 4, 5]
    assert result.best == {"n": 3}
    assert result.baseline.metrics == {"throughput": 100.0, "p99_ms": 2.0}
    again = run_search(Listed(), measure, Goal(), store, Budget(), key="c", hardware="h")
    assert again.measured == 0 and again.best == {"n": 5}
    assert again.history[3][1].metrics is None  # a failure is stored, and not measured again
    assert rerank(store, key="c", hardware="h", objective=Goal(max_p99_ms=5.0))[0] == {"n": 2}
    assert len(store.all("c", "other-machine")) == 0  # keyed by hardware too
    store.close()


def test_budgets_stop_the_search(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    result = run_search(Listed(), fake_metrics, Goal(), store, Budget(measurements=2), key="c", hardware="h")
    assert result.measured == 2 and result.stopped == "the budget of 2 measurements ran out"
    assert [c["n"] for c, _ in result.history] == [1, 2]
    store.close()
