"""The strategies on a synthetic surface with a known optimum, and on the results store."""

from __future__ import annotations

import importlib.metadata
import json
import math
import subprocess
import sys
import textwrap

import optuna
import pytest
from sextant.objective import Objective
from sextant.optimizer.budget import Budget
from sextant.plugins import search_strategy_factory
from sextant.search import ResultsStore, rerank, run_search
from sextant.specs import Param
from sextant.testing.contracts import check_plugin
from sextant_search.strategies import Brute, OptunaSearch, Quick
from sextant_search.synthetic import SPACE, metrics, optimum

GRID = math.prod(len(p.grid()) for p in SPACE)
THROUGHPUT = Objective()


def search(strategy, tmp_path, name="s", objective=THROUGHPUT, max_measurements=None):
    store = ResultsStore(tmp_path / f"{name}.sqlite")
    measure = lambda config: (metrics(config), None)  # noqa: E731
    try:
        budget = Budget(measurements=max_measurements)
        return run_search(strategy, measure, objective, store, budget, key="synthetic", hardware="test")
    finally:
        store.close()


def test_entry_point_and_contracts():
    (ep,) = [e for e in importlib.metadata.entry_points(group="sextant") if e.name == "search"]
    assert ep.load().__name__ == "sextant_search"
    assert {c.name for c in check_plugin("sextant_search")} == {"brute", "quick", "optuna"}


def test_brute_finds_the_optimum_and_skips_what_stopped_paying(tmp_path):
    best, best_metrics = optimum()
    result = search(Brute(SPACE), tmp_path)
    assert result.best == best
    assert result.measured < GRID  # threads past the peak were skipped after two losing doublings
    measured_threads = {c["threads"] for c, _ in result.history}
    assert 64 not in measured_threads


def test_brute_stops_at_a_constraint_edge(tmp_path):
    best, _ = optimum(max_p99_ms=8.0)
    result = search(Brute(SPACE), tmp_path, objective=Objective(max_p99_ms=8.0))
    assert result.best == best
    assert metrics(result.best)["p99_ms"] <= 8.0


def test_quick_reaches_95_percent_of_the_optimum_measuring_a_small_share(tmp_path):
    _, best = optimum()
    result = search(Quick(SPACE), tmp_path)
    assert result.best_metrics["throughput"] >= 0.95 * best["throughput"]
    assert result.measured <= 0.1 * GRID


def test_optuna_is_repeatable_with_a_seed_and_close_to_the_optimum(tmp_path):
    _, best = optimum()
    first = search(OptunaSearch(SPACE, seed=3, trials=80), tmp_path, name="a")
    second = search(OptunaSearch(SPACE, seed=3, trials=80), tmp_path, name="b")
    assert [c for c, _ in first.history] == [c for c, _ in second.history]
    assert first.best_metrics["throughput"] >= 0.9 * best["throughput"]
    assert first.measured <= 80


def test_a_killed_search_resumes_from_its_store(tmp_path):
    full = search(Quick(SPACE), tmp_path, name="full")
    partial = search(Quick(SPACE), tmp_path, name="resumed", max_measurements=4)
    assert partial.measured == 4 and "ran out" in partial.stopped
    resumed = search(Quick(SPACE), tmp_path, name="resumed")
    assert resumed.best == full.best
    assert resumed.measured == full.measured - 4  # the four stored ones were not measured again


def test_changing_the_objective_reranks_without_measuring(tmp_path):
    search(Brute(SPACE), tmp_path, name="store")
    store = ResultsStore(tmp_path / "store.sqlite")
    try:
        best, best_metrics = rerank(store, key="synthetic", hardware="test", objective=Objective(max_p99_ms=8.0))
    finally:
        store.close()
    assert best == optimum(max_p99_ms=8.0)[0]
    assert best_metrics["p99_ms"] <= 8.0


def test_the_default_point_is_recorded_in_the_study_where_it_is(tmp_path):
    # exponential and linear dimensions are searched by grid index: the default configuration,
    # measured before any trial, must enter the study at its own index, not at its value
    strategy = OptunaSearch(SPACE, seed=0, trials=5)
    default = {p.name: p.default for p in SPACE}
    strategy.ask([(default, 0.0)])
    first = strategy.study.trials[0]
    assert strategy._config(first.params) == default
    assert first.value == 0.0


#: a grid of 108 points over the synthetic surface's dimensions, for searches run twice
SMALL = (
    Param("threads", "exponential", (1, 8), 1),
    Param("batch", "exponential", (1, 4), 1),
    Param("mode", "categorical", ("a", "b", "c"), "a"),
    Param("level", "linear", (1, 3), 1),
)


@pytest.mark.parametrize(
    "make",
    [  # brute re-derives its walk as quick does (a re-run with brute: tests/test_end_to_end.py)
        lambda ws: Quick(SMALL),
        lambda ws: OptunaSearch(SMALL, seed=0, workspace=ws, name="n", trials=8),  # the study kept in ws
    ],
    ids=["quick", "optuna"],
)
def test_a_rerun_reports_what_the_first_run_searched_measuring_nothing(tmp_path, make):
    first = search(make(tmp_path), tmp_path)
    again = search(make(tmp_path), tmp_path)
    assert first.measured == len(first.history) > 2
    assert again.measured == 0  # every configuration found in the store
    assert [c for c, _ in again.history] == [c for c, _ in first.history]
    assert again.best == first.best and again.best_metrics == first.best_metrics
    assert again.best != {p.name: p.default for p in SMALL}  # the search found better than the defaults


def test_a_rerun_with_more_trials_goes_on_with_the_study(tmp_path):
    first = search(OptunaSearch(SMALL, seed=0, workspace=tmp_path, name="n", trials=6), tmp_path)
    more = search(OptunaSearch(SMALL, seed=0, workspace=tmp_path, name="n", trials=10), tmp_path)
    earlier = [c for c, _ in first.history]
    assert [c for c, _ in more.history][: len(earlier)] == earlier  # reported again, not measured
    assert more.measured == len(more.history) - len(earlier) > 0  # only the new trials' configurations
    assert len(optuna.load_study(study_name="n", storage=f"sqlite:///{tmp_path / 'optuna.sqlite'}").trials) == 10


def test_a_study_holding_another_spaces_trials_does_not_spend_this_searchs_budget(tmp_path):
    # the same study name over a narrower space (a re-run with fewer threads, say): the earlier
    # trials are neither replayed nor counted, so this search still measures its own
    search(OptunaSearch(SMALL, seed=0, workspace=tmp_path, name="n", trials=6), tmp_path)
    narrower = (Param("threads", "exponential", (1, 4), 1), *SMALL[1:])
    again = search(OptunaSearch(narrower, seed=0, workspace=tmp_path, name="n", trials=6), tmp_path, name="s2")
    assert again.measured == len(again.history) > 1
    assert all(c["threads"] <= 4 for c, _ in again.history)


BUDGET = 30
WORKER = textwrap.dedent(
    f"""
    import json
    import sys
    from pathlib import Path
    from sextant.objective import Objective
    from sextant.optimizer.budget import Budget
    from sextant.search import ResultsStore, run_search
    from sextant_search.strategies import OptunaSearch
    from sextant_search.synthetic import SPACE, metrics

    folder = Path(sys.argv[1])
    # patience past the budget: the workers stop on the shared trial budget only
    strategy = OptunaSearch(SPACE, seed=int(sys.argv[2]), storage=f"sqlite:///{{folder / 'study.sqlite'}}",
                            study_name="shared", trials={BUDGET}, patience=10_000)
    measured = []

    def measure(config):
        measured.append(config)
        return metrics(config), None

    store = ResultsStore(folder / "results.sqlite")
    result = run_search(strategy, measure, Objective(), store, Budget(), key="synthetic", hardware="test")
    print(json.dumps({{"measured": result.measured, "configs": measured, "stopped": result.stopped}}))
    """
)


def _key(config):
    return json.dumps(config, sort_keys=True)


def test_two_workers_share_one_optuna_study(tmp_path):
    """Two processes on one study: what holds whatever the interleaving of their calls.

    Each worker records the default configuration as one trial, and asks for a new trial only after
    it has seen fewer than BUDGET trials; between a worker's look and its ask the other can add at most
    one trial. So together they make BUDGET or BUDGET + 1 trials, not two budgets, and measure no more
    configurations than there are trials (one per asked trial, plus the default, recorded twice where
    both measured it: a worker that begins after the other recorded it finds it in the study).
    """
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    storage = f"sqlite:///{tmp_path / 'study.sqlite'}"
    optuna.create_study(direction="maximize", storage=storage, study_name="shared")
    workers = [
        subprocess.Popen([sys.executable, str(script), str(tmp_path), str(seed)], stdout=subprocess.PIPE, text=True)
        for seed in (1, 2)
    ]
    reports = [json.loads(w.communicate(timeout=300)[0].strip().splitlines()[-1]) for w in workers]
    assert [w.returncode for w in workers] == [0, 0]
    assert all(r["stopped"] == "the strategy finished" for r in reports)

    trials = optuna.load_study(study_name="shared", storage=storage).trials
    assert BUDGET <= len(trials) <= BUDGET + 1
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)  # every asked trial was told
    grid = OptunaSearch(SPACE)  # only to map the study's grid indexes back to configurations
    trial_configs = [_key(grid._config(t.params)) for t in trials]
    default = _key({p.name: p.default for p in SPACE})
    # each worker records its baseline in the one study, unless the study held it when the worker began
    assert 1 <= trial_configs.count(default) <= 2

    store = ResultsStore(tmp_path / "results.sqlite")
    try:
        stored = {_key(r.point) for r in store.all("synthetic", "test")}
    finally:
        store.close()
    assert set(trial_configs) == stored  # the study and the shared store hold the same configurations
    measured = [_key(c) for r in reports for c in r["configs"]]
    assert [r["measured"] for r in reports] == [len(r["configs"]) for r in reports]
    assert set(measured) == stored  # whatever is stored, some worker measured
    assert len(measured) <= len(trials)  # one budget: at most one measurement per trial


def test_two_strategies_on_one_study_split_one_budget_exactly(tmp_path):
    """The same sharing with the two workers' calls interleaved in turn, in one process: exact counts."""
    storage = f"sqlite:///{tmp_path / 'study.sqlite'}"
    workers = [
        OptunaSearch(SPACE, seed=seed, storage=storage, study_name="shared", trials=BUDGET, patience=10_000)
        for seed in (1, 2)
    ]
    store = ResultsStore(tmp_path / "results.sqlite")
    default = {p.name: p.default for p in SPACE}
    baseline = metrics(default)
    histories = [[], []]
    measured = [[], []]

    def get(i, config):
        if store.get("synthetic", config, "test") is None:
            measured[i].append(_key(config))
            store.put("synthetic", config, "test", metrics(config), None)
        histories[i].append((config, store.get("synthetic", config, "test").metrics))

    try:
        for i in (0, 1):
            get(i, default)
        active = [0, 1]
        while active:
            for i in list(active):
                scored = [(c, THROUGHPUT.score(m, baseline)) for c, m in histories[i]]
                proposals = workers[i].ask(scored)
                if not proposals:
                    active.remove(i)
                for config in proposals:
                    get(i, config)
        stored = {_key(r.point) for r in store.all("synthetic", "test")}
    finally:
        store.close()

    assert len(workers[0].study.trials) == BUDGET  # one budget for both, and not one trial past it
    everything = measured[0] + measured[1]
    assert len(everything) == len(set(everything)) == len(stored)  # nothing measured twice
    # both measured points that TPE proposed to them (the first worker also measured the default)
    assert len(measured[0]) > 1 and len(measured[1]) > 0


def test_strategies_take_the_options_they_declare_and_refuse_others(tmp_path):
    from sextant.errors import UsageError

    optuna_search = search_strategy_factory("optuna", options={"min_trials": 5, "share": 0.0})
    strategy = optuna_search(SPACE, seed=0, workspace=tmp_path, name="n")
    assert strategy.trials == 5 and strategy.study.study_name == "n"
    brute = search_strategy_factory("brute", options={"patience": 4}, offered={"storage": "sqlite://"})  # not its option
    assert brute(SPACE).patience == 4
    with pytest.raises(UsageError, match="search strategy quick has no option patience"):
        search_strategy_factory("quick", options={"patience": 4})


@pytest.mark.parametrize("name", ["brute", "quick", "optuna"])
def test_strategies_are_listed_by_the_cli(name):
    result = subprocess.run([sys.executable, "-m", "sextant.cli", "search", "--list"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert any(line.startswith(name) for line in result.stdout.splitlines())
