"""A YAML range of max_batch_size below the deployed preferred batch sizes: every configuration the
search loads keeps only the preferred sizes that fit (Triton refuses the others), so the whole range
is measured; and a configuration Triton refuses is reported with the reason from the server's log.
The real tritonserver and perf_analyzer; nothing here asserts a timing."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sextant.api import SextantError
from sextant_triton.analyze import analyze
from sextant_triton.analyze.settings import ModelSettings, from_mapping
from sextant_triton.analyze.space import Space, read_served_model
from sextant_triton.perf import Windows, missing
from sextant_triton.repository import deploy_package
from sextant_triton.testing import NO_SERVER

pytestmark = [
    pytest.mark.skipif(NO_SERVER is not None, reason=str(NO_SERVER)),
    pytest.mark.skipif(missing() is not None, reason=str(missing())),
]

FAST = Windows(interval_ms=200, stability=50.0, max_trials=8)


@pytest.fixture(scope="module")
def deployed(packages, tmp_path_factory):
    """The ONNX package deployed with max_batch_size 16 and preferred batch sizes [4, 16]."""
    repository = tmp_path_factory.mktemp("ranges") / "models"
    deployment = deploy_package(
        packages["onnx"].path, repository, max_batch_size=16, preferred_batch_sizes=(4, 16), name="classifier"
    )
    return repository, deployment.name


def test_each_configuration_keeps_only_the_preferred_sizes_that_fit(deployed):
    repository, name = deployed
    settings = replace(from_mapping({"max_batch_size": {"min": 1, "max": 8}}), models=(ModelSettings(name),))
    unit = read_served_model(repository, ModelSettings(name))
    space = Space([unit], settings, "KIND_CPU")
    sizes = {}
    for batch in (1, 2, 4, 8, 16):
        (config,) = space.configs({**space.defaults(), "max_batch_size": batch, "dynamic_batching": True})
        sizes[batch] = config["dynamic_batching"].get("preferred_batch_size")
    assert sizes == {1: None, 2: None, 4: [4], 8: [4], 16: [4, 16]}


def test_a_yaml_range_below_the_preferred_sizes_is_measured_in_full(deployed, tmp_path):
    repository, name = deployed
    # the batch range (with the deployed preferred sizes) is what this test is about: one load, and
    # the deployed instance count and queue delay alone (each other value would double the grid)
    deployed_config = read_served_model(repository, ModelSettings(name)).top.config
    instances = int(deployed_config["instance_group"][0]["count"])
    delay = int(deployed_config["dynamic_batching"].get("max_queue_delay_microseconds", 0))
    yaml_settings = from_mapping(
        {
            "search": "brute",
            "max_batch_size": {"min": 1, "max": 8},
            "instance_count": {"min": instances, "max": instances},
            "queue_delay_us": [delay],
            "concurrency": {"min": 1, "max": 1},
        }
    )
    settings = replace(
        yaml_settings,
        models=(ModelSettings(name),),
        dynamic_batching=(True,),
        top_n=0,
        paired_rounds=0,  # what the search loads, alone (the re-measurement: test_analyze_confirm.py)
        windows=FAST,
    )
    result = analyze(repository, settings, output=tmp_path / "out")
    history = result.groups[0].history
    failed = [(point, record.error) for point, record in history if record.metrics is None]
    assert failed == []
    in_range = {point["max_batch_size"] for point, _ in history} & {1, 2, 4, 8}
    assert in_range == {1, 2, 4, 8}, history


def test_a_refused_configuration_says_tritons_reason(deployed, tmp_path):
    from sextant_triton.analyze.control import LocalServer

    repository, name = deployed
    unit = read_served_model(repository, ModelSettings(name))
    config = {**unit.top.config, "max_batch_size": 2}  # the deployed preferred sizes 4 and 16 do not fit
    control = LocalServer(repository, tmp_path / "server")
    try:
        with pytest.raises(SextantError) as raised:
            control.apply([config])
    finally:
        control.close()
    message = raised.value.message
    assert message.startswith(f"the server could not load {name!r}")
    assert "its log says: Poll failed for model directory 'classifier': dynamic batching preferred size must be " \
        "<= max batch size" in message, message
