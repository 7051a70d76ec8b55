"""The analysis' parts without a server: the concurrency sweep's early exit and bisection (on a
deterministic stand-in for the server), the store's claims, the space's configurations, settings."""

from __future__ import annotations

import pytest
from _serving import write_repository
from sextant.api import Objective, Param, UsageError
from sextant_triton.analyze import explore
from sextant_triton.analyze.settings import AnalyzeSettings, ModelSettings, Range, from_mapping
from sextant_triton.analyze.space import Space, read_served_model
from sextant_triton.analyze.store import Record, Store


class Curve:
    """Stands in for a Session: throughput and p99 as functions of concurrency."""

    def __init__(self, throughput, p99):
        self.throughput, self.p99, self.asked = throughput, p99, []

    def measure(self, point):
        c = point["concurrency"]
        self.asked.append(c)
        return Record(dict(point), {"throughput": self.throughput(c), "p99_ms": self.p99(c), "p50_ms": 1.0}, None, 0.0)


def _budget():
    return lambda: None  # never spent


def test_sweep_stops_after_four_steps_that_gain_under_five_percent():
    values = Param("c", "exponential", (1, 1024), 1).grid()
    curve = Curve(lambda c: 100.0 * min(c, 4) + c * 0.01, lambda c: 1.0)
    explore.sweep(curve, {}, Objective(), values, _budget())  # type: ignore[arg-type]
    assert curve.asked == [1, 2, 4, 8, 16, 32, 64]  # 8..64: four doublings gaining under 5 %


def test_sweep_bisects_between_the_last_feasible_and_first_infeasible_load():
    curve = Curve(lambda c: 100.0 * c, lambda c: float(c))  # p99 grows with concurrency
    explore.sweep(curve, {}, Objective(max_p99_ms=11.0), Param("c", "exponential", (1, 64), 1).grid(), _budget())  # type: ignore[arg-type]
    assert curve.asked[:5] == [1, 2, 4, 8, 16]
    assert curve.asked[5:] == [12, 10, 11]  # 8 passes, 16 fails: bisect to the edge at 11


def test_a_claim_is_won_once_and_a_stale_one_is_taken_over(tmp_path):
    now = [1000.0]
    url = f"sqlite:///{tmp_path / 'm.sqlite'}"
    first, second = Store(url, clock=lambda: now[0]), Store(url, stale_s=60, clock=lambda: now[0])
    point = {"instances": 2}
    assert first.claim("unit", point, "hw")
    assert not second.claim("unit", point, "hw")
    now[0] += 61  # the first worker died without finishing
    assert second.claim("unit", point, "hw")
    second.put("unit", point, "hw", {"throughput": 5.0})
    assert first.get("unit", point, "hw").metrics == {"throughput": 5.0}
    assert not first.claim("unit", point, "hw")  # done: nobody measures it again
    third = Store(url, clock=lambda: now[0])
    assert third.claim("unit", {"instances": 3}, "hw")
    third.release()  # Ctrl-C: its unfinished claim goes, so the next run measures it
    assert first.claim("unit", {"instances": 3}, "hw")
    for store in (first, second, third):
        store.close()


def test_the_ensemble_space_searches_its_composing_models(tmp_path):
    repository = write_repository(tmp_path / "models")
    settings = AnalyzeSettings(instance_count=Range(1, 2), dynamic_batching=(True, False))
    unit = read_served_model(repository, ModelSettings("pipeline"))
    space = Space([unit], settings, "KIND_CPU")
    assert [p.name for p in space.params] == [
        "prep.dynamic_batching",
        "prep.instances",
        "scale.dynamic_batching",
        "scale.instances",
    ]
    point = {**space.defaults(), "prep.instances": 2, "scale.dynamic_batching": False}
    prep, scale, pipeline = space.configs(point)
    assert prep["instance_group"] == [{"kind": "KIND_CPU", "count": 2}]
    assert "dynamic_batching" not in scale and scale["max_batch_size"] == 8  # the caller's batch must fit
    assert pipeline["platform"] == "ensemble" and "instance_group" not in pipeline
    assert space.describe(point) == "prep.instances=2, scale.dynamic_batching=off"


def test_manual_model_config_parameters_are_the_cartesian_product(tmp_path):
    repository = write_repository(tmp_path / "models")
    settings = from_mapping(
        {
            "model_config_parameters": {
                "dynamic_batching": {"max_queue_delay_microseconds": [0, 100, 500]},
                "max_batch_size": [4, 8],
            }
        }
    )
    space = Space([read_served_model(repository, ModelSettings("scale"))], settings, "KIND_CPU")
    assert space.size() == 6
    config = space.configs({"config.dynamic_batching.max_queue_delay_microseconds": 500, "config.max_batch_size": 4})[0]
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 500 and config["max_batch_size"] == 4


def test_settings_name_bad_values():
    with pytest.raises(UsageError, match="unknown key concurency"):
        from_mapping({"concurency": 4})
    with pytest.raises(UsageError, match="measurement: unknown key"):
        from_mapping({"measurement": {"interval": 5}})
    with pytest.raises(UsageError, match="unknown search"):
        from_mapping({"search": "annealing"})
    with pytest.raises(UsageError, match="needs the server's gRPC address"):
        from_mapping({"launch_mode": "remote"})
    with pytest.raises(UsageError, match="min 8 and max 2"):
        from_mapping({"max_batch_size": {"min": 8, "max": 2}})


class LoadingClient:
    """Stands in for tritonclient's gRPC client: a model that is ready only after ``not_ready`` asks."""

    def __init__(self, not_ready):
        self.not_ready, self.asked = not_ready, 0

    def load_model(self, name, config):
        self.loaded = name

    def is_model_ready(self, name):
        self.asked += 1
        return self.asked > self.not_ready

    def get_model_repository_index(self, as_json):
        return {"models": [{"name": "lm", "state": "LOADING"}]}

    def close(self):
        pass


@pytest.mark.parametrize("not_ready", [0, 3, 1000])
def test_a_loaded_configuration_is_ready_before_anything_measures_it(monkeypatch, not_ready):
    import tritonclient.grpc
    from sextant.api import SextantError
    from sextant_triton.analyze import control

    client = LoadingClient(not_ready)
    monkeypatch.setattr(tritonclient.grpc, "InferenceServerClient", lambda url: client)
    paused = []
    if not_ready < control.READY_POLLS:
        control.load_configs("127.0.0.1:1", [{"name": "lm"}], sleep=paused.append)
        assert client.asked == not_ready + 1 and len(paused) == not_ready  # asked again until ready, no longer
    else:
        with pytest.raises(SextantError, match="did not call it ready after 100 polls .its state: LOADING"):
            control.load_configs("127.0.0.1:1", [{"name": "lm"}], sleep=paused.append)
        assert client.asked == len(paused) == control.READY_POLLS  # bounded by count
