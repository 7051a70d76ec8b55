"""Planning steps that build for a device (a TensorRT engine): no GPU needed to plan them."""

import sys
import textwrap

import pytest
from sextant import planner, plugins
from sextant.plugins import load_catalog
from sextant.testing.fake import SOURCE

ENGINE_PLUGIN = """
from sextant import hookimpl
from sextant.specs import ConverterSpec, Format, RunnerSpec

ENGINE = Format("fake-engine")

@hookimpl
def sextant_register_converters():
    return [ConverterSpec("fake-build", Format("fake-graph"), ENGINE, run="x:y", device="cuda")]

@hookimpl
def sextant_register_runners():
    return [RunnerSpec("fake-engine", ENGINE, load="x:y", devices=("cpu", "cuda"))]
"""


@pytest.fixture
def engine_catalog(tmp_path, monkeypatch):
    (tmp_path / "engine_plugin.py").write_text(textwrap.dedent(ENGINE_PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield load_catalog(extra_modules=["sextant.testing.fake", "engine_plugin"], entry_points=False)
    sys.modules.pop("engine_plugin", None)


def _plan(catalog, devices):
    return planner.make_plan(catalog, SOURCE, devices=devices, precisions=("fp32",))


def test_a_device_step_is_skipped_with_the_fix_when_the_run_does_not_target_its_device(engine_catalog):
    plan = _plan(engine_catalog, ["cpu"])
    assert ("fake-graph+fake-build", "builds for cuda (add --device cuda)") in plan.skipped
    assert not any("fake-build" in s.id for s in plan.steps)


def test_a_device_step_needs_the_device_present(engine_catalog, monkeypatch):
    monkeypatch.setattr(plugins, "unavailable_reason", lambda device: None if device == "cpu" else "no GPU here")
    plan = _plan(engine_catalog, ["cpu", "cuda"])
    assert ("fake-graph+fake-build", "no GPU here") in plan.skipped


def test_the_artifact_of_a_device_step_runs_only_on_that_device(engine_catalog, monkeypatch):
    monkeypatch.setattr(plugins, "unavailable_reason", lambda device: None)
    plan = _plan(engine_catalog, ["cpu", "cuda"])
    step = plan.step("fake-graph+fake-build")
    assert step.device == "cuda"
    on_engine = [c for c in plan.candidates if c.step == step.id]
    assert [c.device for c in on_engine] == ["cuda"]
    # the engine's parent chain is device-free: its runners still get the CPU
    assert any(c.step == "fake-graph" and c.device == "cpu" for c in plan.candidates)


def test_a_cuda_only_run_still_plans_the_steps_that_run_on_the_cpu(engine_catalog, monkeypatch):
    monkeypatch.setattr(plugins, "unavailable_reason", lambda device: None)
    plan = _plan(engine_catalog, ["cuda"])
    assert {s.id: s.device for s in plan.steps} == {"fake-graph": "cpu", "fake-graph+fake-build": "cuda"}
