"""This machine's history (:mod:`sextant.history`, :mod:`sextant.optimizer.learned`): what won on
similar models is measured first, a slow build is started only when it can pay, and a corrupt
history is set aside, never an error. Runs on the fake plugins; nothing depends on timings (the
winners are written into the history by hand, the estimate's gain is set)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import sextant
import sextant.history as history_module
from sextant.history import Descriptor, History, Outcome, history_path
from sextant.optimizer import learned
from sextant.testing.fake import NumpyMLP

MLP = Descriptor.of("numpy-mlp", 1500, [("x", "float32", (8,))])
FP16_GRAPH = "fake-graph+fake-fp16:fake-graph@cpu"
COMPILED = "source:fault-compiled@cpu"
ENGINE = "fake-graph+fault-engine"


def test_scores_weigh_wins_over_close_finishes_by_how_similar_the_model_was(tmp_path, monkeypatch):
    monkeypatch.setattr(history_module, "KEEP", 5)
    other_size = Descriptor.of("numpy-mlp", 150_000, [("x", "float32", (8,))])
    other_inputs = Descriptor.of("numpy-mlp", 150_000, [("ids", "int64", (16, 4))])
    history = History(tmp_path / "h.json")
    for model, won, close in (
        (MLP, "a", ("b",)),
        (other_size, "b", ()),
        (other_inputs, "c", ("a",)),
        (Descriptor.of("onnx", 1500, [("x", "float32", (8,))]), "d", ()),  # another format: no say
    ):
        history = history.learn(Outcome(model, "throughput", won, close))
    history = history.learn(Outcome(MLP, "latency", "e"))  # another objective: no say
    assert history.scores(MLP, "throughput") == {"a": 2 * 3 + 1 * 1, "b": 1 * 3 + 2 * 2, "c": 2 * 1}
    assert history.similar(MLP, "throughput") == 3
    reread = History.open(history.path)
    assert reread.outcomes == history.outcomes and reread.note is None
    for _ in range(5):
        reread = reread.learn(Outcome(MLP, "throughput", "z"))
    assert [o.won for o in History.open(history.path).outcomes] == ["z"] * 5  # the oldest are dropped


def test_a_corrupt_history_is_set_aside_with_a_note_and_the_run_starts_a_new_one(tmp_path):
    path = history_path("some cpu", {"numpy": "2.0"}, tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text('{"schema": 1, "runs": [{"model": ')
    history = History.open(path)
    assert history.outcomes == () and not path.exists()
    assert path.with_name(path.name + ".unreadable").exists()
    assert "could not be read" in history.note and ".unreadable" in history.note
    history.learn(Outcome(MLP, "throughput", "a"))
    assert [o.won for o in History.open(path).outcomes] == ["a"]
    assert history_path("some cpu", {"numpy": "2.1"}, tmp_path) != path  # other libraries: another file


def test_a_slow_build_pays_only_when_its_estimate_beats_the_best_by_more_than_the_margin_and_the_noise():
    """The margin (30 % at --cutoff 0.7) and the sweeps' 10 % on top: 1.43x the best so far."""
    assert learned.can_pay(1.45, cutoff=0.7) and not learned.can_pay(1.4, cutoff=0.7)
    assert not learned.can_pay(1.35, cutoff=0.7)  # over the margin alone: within the sweeps' noise of it
    assert learned.can_pay(1.25, cutoff=0.9) and not learned.can_pay(1.25, cutoff=0.8)


@pytest.fixture
def compiled_run(fault_catalog, options, samples, monkeypatch):
    """A run of the fake plugins plus a slow-to-build runner, with the screen on, whose estimate
    never pays (gain 0): only the history or --runners gets it built. Returns (package, order)."""
    monkeypatch.setattr(learned, "SLOW_BUILD_GAIN", 0.0)
    catalog = fault_catalog("compiled", "engine")

    def run(**changes):
        opts = replace(options, precisions=("fp32", "fp16"), cutoff=0.7, paired_rounds=0, **changes)
        return run_in_order(catalog, samples, opts)

    return catalog, run


def run_in_order(catalog, samples, options):
    """A run of the numpy MLP: its package, and the candidates in the order they started."""
    started: list[str] = []
    package = sextant.optimize(
        NumpyMLP(seed=5),
        samples,
        options=options,
        catalog=catalog,
        on_event=lambda event: event.kind == "candidate_start" and started.append(event.id),
    )
    return package, started


def test_what_won_on_similar_models_is_measured_first_and_the_run_adds_what_it_found(compiled_run):
    catalog, run = compiled_run
    history = learned.open_history(catalog)
    other = Descriptor.of("numpy-mlp", 10**6, [("x", "float32", (64,))])  # the same format, another model
    history.learn(Outcome(other, "throughput", FP16_GRAPH, ("fake-graph:fake-graph@cpu",)))

    package, order = run()
    assert order[:2] == ["source:numpy-eager@cpu", FP16_GRAPH]  # the reference, then the likely winner
    document = package.document
    assert document.history.first == (FP16_GRAPH, "fake-graph:fake-graph@cpu") and document.history.runs == 1
    assert any(n.startswith("measured first from this machine's history (1 earlier runs") for n in document.notes)
    compiled = document.candidates[COMPILED]  # never won here, and its estimate cannot pay
    assert compiled.status == "skipped" and COMPILED not in order
    assert "slow to build" in compiled.reason and "--runners (fault-compiled)" in compiled.reason
    engine = document.steps[ENGINE]  # a slow step: the same rule
    assert engine.status == "skipped" and "--steps (fault-engine, with the rest of its chain)" in engine.reason
    assert document.candidates[f"{ENGINE}:fake-graph@cpu"].status == "skipped"
    learnt = learned.open_history(catalog).outcomes
    assert len(learnt) == 2 and learnt[-1].won == document.best
    assert learnt[-1].model == learned.describe("numpy-mlp", package.path / document.model.source, document.signature)


def test_no_history_keeps_the_plan_order_and_naming_a_slow_build_forces_it(compiled_run):
    catalog, run = compiled_run
    history = learned.open_history(catalog)
    history.learn(Outcome(MLP, "throughput", FP16_GRAPH))
    package, order = run(
        no_history=True,
        runners=("numpy-eager", "fake-graph", "fault-compiled"),
        steps=("fake-graph", "fake-fp16", "fault-engine"),
    )
    assert package.document.steps[ENGINE].status == "ok" and f"{ENGINE}:fake-graph@cpu" in order
    assert order.index(FP16_GRAPH) > order.index("fake-graph:fake-graph@cpu")  # the plan's order
    assert package.document.history is None and not any("history" in n for n in package.document.notes)
    assert COMPILED in order and package.document.candidates[COMPILED].status == "ok"  # named: built
    assert len(learned.open_history(catalog).outcomes) == 1  # nothing written either
    assert json.loads(history.path.read_text())["runs"][0]["won"] == FP16_GRAPH


def test_the_environment_turns_the_history_off_for_every_run(compiled_run, monkeypatch):
    catalog, run = compiled_run
    learned.open_history(catalog).learn(Outcome(MLP, "throughput", FP16_GRAPH))
    monkeypatch.setenv("SEXTANT_HISTORY", "off")  # as CI and the test suites set it
    package, order = run()
    assert order.index(FP16_GRAPH) > order.index("fake-graph:fake-graph@cpu")  # the plan's order
    assert package.document.history is None
    assert len(learned.open_history(catalog).outcomes) == 1  # nothing written either


def test_with_no_history_the_steps_another_runtime_runs_are_measured_before_the_source_frameworks(
    options, samples, catalog_with
):
    # an export whose runner needs numpy, as the reference runner does (the source framework
    # running its own export: TorchScript for a torch model); fake-graph's runner needs nothing
    catalog = catalog_with(
        "same_runtime_plugin",
        """
        from sextant.hookspecs import hookimpl
        from sextant.specs import ExporterSpec, Format, RunnerSpec

        COPY = Format("numpy-copy")

        @hookimpl
        def sextant_register_exporters():
            return [ExporterSpec("numpy-copy", Format("numpy-mlp"), COPY, run="sextant.testing.fake:export_graph")]

        @hookimpl
        def sextant_register_runners():
            return [RunnerSpec("numpy-copy", COPY, load="sextant.testing.fake:load_graph", requires=("numpy",))]
        """,
    )
    opts = replace(options, no_history=True, paired_rounds=0)
    plan = sextant.optimize(NumpyMLP(seed=5), samples, options=opts, catalog=catalog, plan_only=True)
    steps = [s.id for s in plan.steps]
    assert steps.index("numpy-copy") < steps.index("fake-graph")  # the plan's order puts it first
    package, started = run_in_order(catalog, samples, opts)
    assert started[0] == "source:numpy-eager@cpu"
    assert started.index("fake-graph:fake-graph@cpu") < started.index("numpy-copy:numpy-copy@cpu")
    assert package.document.candidates["numpy-copy:numpy-copy@cpu"].status == "ok"  # measured all the same
    # fake-graph's option variant as soon as its defaults are all measured: before the reference's
    # profile (its second start) and the source framework's own export
    variant = "fake-graph:fake-graph[impl=einsum]@cpu"
    reference_profiled = started.index("source:numpy-eager@cpu", 1)
    assert started.index(variant) < reference_profiled < started.index("numpy-copy:numpy-copy@cpu")
    assert package.document.candidates[variant].status == "ok"
