"""Issue 30: a gain over the default is claimed only when it exceeds the measurement's own spread,
"the default" means one thing everywhere, and ``--max-measurements`` caps every measurement.

The search runs for real (the quick strategy, the store, the top sweeps, the re-measurement) on a
real model's space; only the server and perf_analyzer are replaced by a scripted stand-in whose
numbers depend on the configuration loaded and the load, so nothing here depends on timing."""

from __future__ import annotations

import json

import pytest
import sextant.search
from _serving import write_repository
from sextant.api import Budget
from sextant_triton import perf
from sextant_triton.analyze import confirm, explore, outputs
from sextant_triton.analyze.inputs import Target
from sextant_triton.analyze.job import search_group
from sextant_triton.analyze.settings import AnalyzeSettings, ModelSettings, Range
from sextant_triton.analyze.space import Space, read_served_model
from sextant_triton.analyze.store import Store


class Scripted:
    """The server and perf_analyzer: throughput 100 x concurrency for every configuration. The
    first measurement of a point with 2 instances is ``spike`` times that (a burst of luck in the
    search); its later ones (the re-measurement) are multiplied by ``again`` in turn."""

    grpc_url = "scripted:0"

    def __init__(self, spike: float = 1.5, again: tuple[float, ...] = ()) -> None:
        self.spike, self.again = spike, list(again)
        self.loaded: dict = {}
        self.calls: list[tuple[int, int]] = []  # (instances, concurrency) of every measurement

    def apply(self, configs) -> None:
        self.loaded = configs[0]

    def alive(self) -> bool:
        return True

    def restart(self) -> None:
        raise AssertionError("not expected")

    def memory_mb(self):
        return None

    def close(self) -> None:
        pass

    def measure(self, model, url, load, **kwargs) -> dict[str, float]:
        instances = self.loaded["instance_group"][0]["count"]
        seen = self.calls.count((instances, load.concurrency))
        self.calls.append((instances, load.concurrency))
        factor = 1.0
        if instances == 2:
            factor = self.spike if seen == 0 else self.again.pop(0)
        throughput = 100.0 * load.concurrency * factor
        return {"throughput": throughput, "p50_ms": 1.0, "p99_ms": 2.0, "stable": 1.0}


@pytest.fixture
def group(tmp_path, monkeypatch):
    """Runs one group's search on ``scripted`` and writes the outputs; returns what it measured."""
    repository = write_repository(tmp_path / "models")
    runs = []

    def run(scripted: Scripted, **changes):
        runs.append(scripted)
        n = len(runs)  # each run its own store and output folder
        monkeypatch.setattr(perf, "measure", scripted.measure)
        given = {
            "models": (ModelSettings("scale"),),
            "max_batch_size": Range(8, 8, (8,)),
            "instance_count": Range(1, 2),
            "dynamic_batching": (True,),
            "concurrency": Range(1, 8),
            "top_n": 1,
        }
        settings = AnalyzeSettings(**{**given, **changes})
        space = Space([read_served_model(repository, ModelSettings("scale"))], settings, "KIND_CPU")
        counters = explore.Counters()
        budget = Budget(measurements=settings.max_measurements)
        store = Store(f"sqlite:///{tmp_path / f'm{n}.sqlite'}")
        session = explore.Session(
            space, scripted, store, key="scale", hardware="hw", windows=perf.Windows(),
            inputs={"scale": ("random", {})}, workdir=tmp_path / "perf", counters=counters,
            give_up=lambda: budget.stop(counters.measured),
        )
        result = search_group(settings, space, session, budget, tmp_path, "scale", None)
        target = Target(repository, settings.models, tmp_path / f"out{n}")
        target.output.mkdir()
        analysis = outputs.write(target, settings, [result], counters, "hw")
        store.close()
        return result, analysis, json.loads((target.output / "analysis.json").read_text())["groups"][0], counters

    return run


def test_a_lucky_measurement_within_the_noise_is_not_claimed(group):
    scripted = Scripted(spike=1.5, again=(1.05, 0.95, 1.02))  # 2 instances: as fast as 1, give or take
    result, analysis, saved, _ = group(scripted)
    first = result.confirmation.contenders[0][0]
    assert first["instances"] == 2 and first["concurrency"] == 8  # the search's best: its lucky first measurement
    best = analysis.best[0]
    assert "no configuration is better than the default configuration (at concurrency 8" in best.summary
    assert "1.02× (0.95–1.05 over 3 paired rounds)" in best.summary
    assert best.point == {"max_batch_size": 8, "instances": 1, "concurrency": 8} and best.gain == 0.0
    assert saved["paired"]["claimed"] is False and saved["paired"]["ratio"]["low"] == pytest.approx(0.95)
    assert (analysis.output / "best" / "scale" / "config.pbtxt").read_text().count("count: 1") == 1


def test_a_gain_above_the_spread_is_claimed_with_its_range(group):
    scripted = Scripted(spike=1.5, again=(1.3, 1.25, 1.35))
    result, analysis, saved, _ = group(scripted)
    best = analysis.best[0]
    assert best.point == {"max_batch_size": 8, "instances": 2, "concurrency": 8}
    assert best.gain == pytest.approx(0.30)
    assert "is 30 % better at throughput than the default configuration at concurrency 8" in best.summary
    assert "1.30× (1.25–1.35 over 3 paired rounds)" in best.summary
    # A B, B A, A B: the re-measurement is the last six calls, the order rotating each round
    assert scripted.calls[-6:] == [(2, 8), (1, 8), (1, 8), (2, 8), (2, 8), (1, 8)]
    assert saved["paired"]["claimed"] is True and saved["gain"] == pytest.approx(0.30)


def test_default_metrics_are_the_default_the_summary_names(group):
    _, analysis, saved, _ = group(Scripted(spike=1.5, again=(1.3, 1.25, 1.35)))
    # the search's first point (concurrency 1, 100 infer/s) is not what the summary calls the default
    assert saved["default"]["concurrency"] == 8
    assert saved["default_metrics"]["throughput"] == 800.0
    assert "vs 800 infer/s" in analysis.best[0].summary


@pytest.mark.parametrize(
    ("cap", "measured", "said"),
    [  # uncapped, the search and the top sweeps measure 8 points, then 3 rounds of 2 re-measurements
        (1, 1, "the default configuration is the best, at concurrency 1"),
        (4, 4, "not re-measured against the default (the budget of 4 measurements ran out): the gain may be noise"),
        (9, 8, "not re-measured against the default (a round would not fit in the budget)"),
        (11, 10, "not re-measured against the default (only 1 paired round done: a round would not fit"),
        (13, 12, "1.30× (1.30–1.30 over 2 paired rounds)"),
    ],
)
def test_max_measurements_caps_every_measurement(group, cap, measured, said):
    scripted = Scripted(spike=1.5, again=(1.3,) * 6)
    result, analysis, saved, counters = group(scripted, max_measurements=cap)
    # the search, the top sweeps and the re-measurement together: never past the cap, and a round of
    # re-measurement that would not fit is not started
    assert len(scripted.calls) == counters.measured == measured
    assert all(r.metrics is not None for _, r in result.history)  # nothing "not measured" is listed
    assert said in analysis.best[0].summary


def test_the_top_sweeps_stop_at_the_cap(group):
    """The quick search starts at concurrency 2; the top sweeps start at 1, a load not measured yet:
    each sweep's first load was measured whatever the budget said (4 allowed, 6 measured)."""
    scripted = Scripted(spike=1.5, again=(1.3,) * 6)
    result, _, _, counters = group(scripted, concurrency=Range(2, 8), top_n=3, max_measurements=4)
    assert len(scripted.calls) == counters.measured == 4
    assert [p["concurrency"] for p, _ in result.history] == [2, 2, 4, 4]


def test_a_default_that_breaks_the_constraints_is_no_yardstick(group):
    """The default at concurrency 8 breaks a p99 budget of 1.5 ms (p99 2 ms everywhere): no gain is
    claimed over it; analysis.json's default is that same point."""
    from sextant.api import Objective

    scripted = Scripted(spike=1.5, again=(1.3,) * 6)
    result, analysis, saved, _ = group(scripted, objective=Objective(max_p99_ms=1.5))
    best = analysis.best[0]
    assert best.point is None and "none met the constraints" in best.summary
    scripted = Scripted(spike=1.5, again=(1.3,) * 6)
    scripted_p99 = scripted.measure

    def faster_with_two(model, url, load, **kwargs):  # 2 instances meet the budget, 1 does not
        metrics = scripted_p99(model, url, load, **kwargs)
        return {**metrics, "p99_ms": 1.0 if scripted.loaded["instance_group"][0]["count"] == 2 else 2.0}

    scripted.measure = faster_with_two
    result, analysis, saved, _ = group(scripted, objective=Objective(max_p99_ms=1.5))
    best = analysis.best[0]
    assert result.confirmation.not_measured == confirm.INFEASIBLE and best.gain is None
    assert "instances=2 at concurrency 8 is the best under latency budget of 1.5 ms p99" in best.summary
    assert "the default configuration met them at no load measured (its best, at concurrency 8" in best.summary
    assert saved["default_metrics"]["p99_ms"] == 2.0 and saved["default"]["concurrency"] == 8


def test_a_second_group_past_the_cap_measures_nothing(group, tmp_path):
    scripted = Scripted(spike=1.5, again=(1.3,) * 6)
    counters = explore.Counters()
    budget = Budget(measurements=2)
    counters.measured = 2  # an earlier group spent the cap
    repository = tmp_path / "models"  # written by the fixture
    settings = AnalyzeSettings(instance_count=Range(1, 2), dynamic_batching=(True,), concurrency=Range(1, 8))
    space = Space([read_served_model(repository, ModelSettings("scale"))], settings, "KIND_CPU")
    store = Store(f"sqlite:///{tmp_path / 'm2.sqlite'}")
    session = explore.Session(
        space, scripted, store, key="k", hardware="hw", windows=perf.Windows(),
        inputs={"scale": ("random", {})}, workdir=tmp_path, counters=counters,
        give_up=lambda: budget.stop(counters.measured),
    )
    result = search_group(settings, space, session, budget, tmp_path, "k", None)
    store.close()
    assert scripted.calls == [] and result.history == ()
    assert "the budget of 2 measurements ran out" in result.stopped
    assert result.confirmation.default is None


def test_the_default_being_best_is_said_plainly(group):
    scripted = Scripted(spike=0.5, again=())  # 2 instances look slower: nothing to re-measure
    result, analysis, saved, _ = group(scripted)
    assert result.confirmation.not_measured == "the default configuration is the best"
    assert "the default configuration is the best, at concurrency 8" in analysis.best[0].summary
    assert saved["default_metrics"] == analysis.best[0].record.metrics



def test_the_analysis_and_the_option_search_run_the_one_core_loop(group, monkeypatch):
    from sextant.optimizer import variants
    from sextant_triton.analyze import job

    assert job.run_search is variants.run_search is sextant.search.run_search
    seen = []

    def spy(strategy, measure, objective, store, budget, **kw):
        seen.append((store, budget, kw["tally"]))
        return sextant.search.run_search(strategy, measure, objective, store, budget, **kw)

    monkeypatch.setattr(job, "run_search", spy)
    scripted = Scripted(spike=1.5, again=(1.3,) * 6)
    result, _, _, counters = group(scripted, max_measurements=3)
    ((store, budget, tally),) = seen
    assert isinstance(store, Store) and isinstance(store, sextant.search.Claims)  # the claiming store
    assert budget.stop(3) == "the budget of 3 measurements ran out" and tally is counters
    assert len(scripted.calls) == counters.measured == 3
