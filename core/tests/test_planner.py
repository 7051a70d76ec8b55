"""Planning steps that build for a device (a TensorRT engine): no GPU needed to plan them."""

import sys
import textwrap

import pytest
from sextant import planner, plugins
from sextant.plugins import load_catalog
from sextant.testing.fake import SOURCE

ENGINE_PLUGIN = """
from sextant import hookimpl
from sextant.specs import ConverterSpec, Format, Param, RunnerSpec

ENGINE = Format("fake-engine")
BIND = Param("bind", "categorical", (False, True), False, devices=("cuda",))

@hookimpl
def sextant_register_converters():
    return [ConverterSpec("fake-build", Format("fake-graph"), ENGINE, run="x:y", device="cuda")]

@hookimpl
def sextant_register_runners():
    return [
        RunnerSpec("fake-engine", ENGINE, load="x:y", devices=("cpu", "cuda")),
        RunnerSpec("fake-bound", Format("fake-graph"), load="x:y", devices=("cpu", "cuda"), options=(BIND,),
                   variants=({"bind": True},)),
    ]
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


def test_a_cpu_candidate_records_no_option_that_matters_only_on_cuda(engine_catalog, monkeypatch):
    monkeypatch.setattr(plugins, "unavailable_reason", lambda device: None)
    plan = _plan(engine_catalog, ["cpu", "cuda"])
    bound = {c.id: c.options for c in plan.candidates if c.runner.name == "fake-bound"}
    assert bound == {
        "fake-graph:fake-bound@cpu": {},  # its variant sets a CUDA option only: on the CPU, the defaults again
        "fake-graph:fake-bound@cuda": {"bind": False},
        "fake-graph:fake-bound[bind=True]@cuda": {"bind": True},
    }
    cpu = next(c for c in plan.candidates if c.id == "fake-graph:fake-bound@cpu")
    assert cpu.default_options and planner.with_options(cpu, {"bind": True}) == cpu


def test_precision_auto_plans_a_reduced_precision_only_where_the_hardware_computes_it(fake_catalog):
    from sextant.devices import precision_unavailable_reason

    def native(flags):
        return lambda precision, device: precision_unavailable_reason(precision, device, frozenset(flags))

    avx2 = planner.make_plan(
        fake_catalog, SOURCE, devices=["cpu"], precisions=("fp32", "fp16"), native=native({"avx2"})
    )
    assert not any("fake-fp16" in s.id for s in avx2.steps)
    ((what, reason),) = [s for s in avx2.skipped if "fake-fp16" in s[0]]
    assert "has no native fp16 (AMX_FP16 or AVX512_FP16)" in reason and "name it in --precision" in reason
    sapphire = planner.make_plan(
        fake_catalog, SOURCE, devices=["cpu"], precisions=("fp32", "fp16"), native=native({"avx2", "avx512_fp16"})
    )
    assert any("fake-fp16" in s.id for s in sapphire.steps)
    named = planner.make_plan(fake_catalog, SOURCE, devices=["cpu"], precisions=("fp32", "fp16"))  # no auto
    assert any("fake-fp16" in s.id for s in named.steps)


def test_native_precision_reasons():
    from sextant.devices import precision_unavailable_reason as why

    assert why("bf16", "cpu", frozenset({"avx2", "avx512f"})) is not None
    assert (
        why("bf16", "cpu", frozenset({"amx_bf16"})) is None and why("bf16", "cpu", frozenset({"avx512_bf16"})) is None
    )
    assert why("bf16", "cuda", frozenset()) is None and why("fp32", "cpu", frozenset()) is None
    assert "GPU format" in why("tf32", "cpu", frozenset())
    assert why("int8", "cpu", frozenset({"avx2"})) is None  # left to measurement


def test_precision_auto_is_remembered_through_replace():
    from dataclasses import replace

    from sextant.options import OptimizeOptions

    options = OptimizeOptions(precisions="auto")
    assert options.precision_auto and "bf16" in options.precisions
    assert replace(options, max_batch_size=4).precision_auto
    assert not OptimizeOptions(precisions=("fp32", "bf16")).precision_auto


def test_steps_keep_only_the_chains_they_name_and_the_sources_candidates(fake_catalog):
    every = planner.make_plan(fake_catalog, SOURCE, devices=["cpu"], precisions=("fp32", "fp16"))
    assert {"fake-graph", "fake-graph+fake-fp16"} <= {s.id for s in every.steps}
    plan = planner.make_plan(fake_catalog, SOURCE, devices=["cpu"], precisions=("fp32", "fp16"), steps=("fake-graph",))
    assert [s.id for s in plan.steps] == ["fake-graph"]
    assert {c.step for c in plan.candidates} == {None, "fake-graph"}  # the source's own stay


MIXED_PLUGIN = """
from sextant import hookimpl
from sextant.specs import Format, RunnerSpec

@hookimpl
def sextant_register_runners():
    return [RunnerSpec("fake-mixed", Format("fake-graph"), load="x:y", precisions=("fp32", "bf16"))]
"""


def test_a_runners_reduced_precision_is_planned_on_full_precision_artifacts_only(tmp_path, monkeypatch):
    """One precision reduction per chain, for runners as for steps: bf16 on the fp16 artifact would
    be recorded as fp16, the same candidate as the runner's fp32 there, measured twice."""
    (tmp_path / "mixed_plugin.py").write_text(textwrap.dedent(MIXED_PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        catalog = load_catalog(extra_modules=["sextant.testing.fake", "mixed_plugin"], entry_points=False)
    finally:
        sys.modules.pop("mixed_plugin", None)
    plan = planner.make_plan(catalog, SOURCE, devices=["cpu"], precisions=("fp32", "bf16", "fp16"))
    mixed = {c.id: c.precision for c in plan.candidates if c.runner.name == "fake-mixed"}
    assert mixed == {
        "fake-graph:fake-mixed@cpu": "fp32",
        "fake-graph:fake-mixed/bf16@cpu": "bf16",
        "fake-graph+fake-fp16:fake-mixed@cpu": "fp16",
    }
