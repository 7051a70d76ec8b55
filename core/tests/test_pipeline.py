"""The whole pipeline on the fake numpy framework: no torch needed."""

from dataclasses import replace

import numpy as np
import pytest
import sextant
from sextant.errors import CorrectnessError, ModelLoadError, SampleError, UsageError
from sextant.package import Package
from sextant.cli.tables import reasons
from sextant.testing.fake import NumpyMLP


def run(catalog, options, samples, model=None, **kw):
    return sextant.optimize(model or NumpyMLP(), samples, options=options, catalog=catalog, **kw)


def test_end_to_end_selects_a_correct_candidate_and_loads_it(fake_catalog, options, samples):
    package = run(fake_catalog, options, samples)
    status = package.status
    assert status["baseline"] == "source:numpy-eager@cpu"
    assert {"source:numpy-eager@cpu", "fake-graph:fake-graph@cpu", "fake-graph:fake-graph[impl=einsum]@cpu"} <= set(
        status["candidates"]
    )
    for record in status["candidates"].values():
        assert record["status"] == "ok"
        assert record["correctness"]["passed"]
        assert record["profile"]["points"][0]["batch"] == 1
    # correctness ran at the samples' own batch sizes, at 1, and at the largest
    assert sorted(status["correctness_batches"]) == [1, 2, 4, 8]
    best = package.best()
    runner = best.load(fake_catalog)
    x = samples[0]["x"]
    np.testing.assert_allclose(runner.infer({"x": x})["output_0"], NumpyMLP()(x), rtol=1e-5, atol=1e-6)
    reopened = sextant.load(options.workspace)
    assert reopened.best().id == best.id
    assert (options.workspace / best.record.log).read_text().startswith("# ")


def test_option_variants_run_on_the_best_artifact_only(fake_catalog, options, samples):
    status = run(fake_catalog, replace(options, precisions=("fp32", "fp16")), samples).status
    variants = {c: r for c, r in status["candidates"].items() if "impl=einsum" in c}
    measured = [c for c, r in variants.items() if r["status"] != "skipped"]
    assert len(measured) == 1 and len(variants) == 2
    (skipped,) = [r for r in variants.values() if r["status"] == "skipped"]
    assert "where the defaults did best" in skipped["reason"]


def test_reduced_precision_only_when_allowed(fake_catalog, options, samples):
    status = run(fake_catalog, options, samples).status
    assert not any(r["precision"] == "fp16" for r in status["candidates"].values())
    assert any("fp16 not allowed" in s["reason"] for s in status["skipped"])
    status = run(fake_catalog, replace(options, precisions=("fp32", "fp16")), samples).status
    half = [r for r in status["candidates"].values() if r["precision"] == "fp16" and r["status"] != "skipped"]
    assert half and all(r["correctness"]["atol"] == 1e-2 for r in half)


def test_cached_rerun_reuses_everything_and_an_option_change_redoes_only_dependents(fake_catalog, options, samples):
    run(fake_catalog, options, samples)
    again = run(fake_catalog, options, samples).status
    assert all(r.get("cached") for r in again["steps"].values())
    assert all(r.get("cached") for r in again["candidates"].values())
    assert again["run"]["cached"] == len(again["steps"]) + len(again["candidates"]) and again["run"]["ran"] == 0
    assert again["run"]["complete"] and again["run"]["seconds"] > 0 and again["host"]["cpu"]
    # allowing fp16 adds the conversion; everything recorded before stays cached
    more = run(fake_catalog, replace(options, precisions=("fp32", "fp16")), samples).status
    assert more["steps"]["fake-graph"].get("cached")
    assert not more["steps"]["fake-graph+fake-fp16"].get("cached")
    # --fresh ignores the records
    fresh = run(fake_catalog, replace(options, fresh=True), samples).status
    assert not any(r.get("cached") for r in fresh["candidates"].values())


def test_another_thread_count_measures_again_and_another_max_batch_builds_again(fake_catalog, options, samples):
    first = run(fake_catalog, replace(options, threads=1), samples).status
    assert first["run"]["ran"] == len(first["steps"]) + len(first["candidates"])
    # threads change what a runner measures, not what a step builds
    threads = run(fake_catalog, replace(options, threads=2), samples).status
    assert all(r.get("cached") for r in threads["steps"].values())
    assert not any(r.get("cached") for r in threads["candidates"].values())
    assert {c["profile"]["threads"] for c in threads["candidates"].values()} == {2}
    # the largest batch is what a step may build for (an engine's optimization profile)
    larger = run(fake_catalog, replace(options, threads=2, max_batch_size=16), samples).status
    assert larger["steps"] and not any(r.get("cached") for r in larger["steps"].values())
    assert not any(r.get("cached") for r in larger["candidates"].values())


def test_a_crash_in_a_child_fails_that_branch_only(fault_catalog, options, samples):
    status = run(fault_catalog("crash"), options, samples).status
    crash = status["steps"]["fault-crash"]
    assert crash["status"] == "failed" and crash["cause"] == "crash"
    assert "SIGSEGV" in crash["reason"]
    assert "about to crash" in crash["log_tail"]  # the child's own output is in its log
    assert status["candidates"]["fault-crash:fake-graph@cpu"]["status"] == "skipped"
    assert status["selection"]["best"] is not None


def test_a_hang_is_killed_at_the_step_timeout(fault_catalog, options, samples):
    status = run(fault_catalog("hang"), replace(options, step_timeout=1.5), samples).status
    hang = status["steps"]["fault-hang"]
    assert hang["cause"] == "timeout" and "timed out" in hang["reason"]
    assert hang["seconds"] < 300  # killed, not waited for: it sleeps an hour (a bound, not a timing)


def test_an_exception_is_recorded_with_its_real_message(fault_catalog, options, samples):
    status = run(fault_catalog("raise"), options, samples).status
    step = status["steps"]["fault-raise"]
    assert step["reason"] == "ValueError: unsupported operator 'Frobnicate' in layer 3"
    assert "Traceback" in step["traceback"]


def test_a_wrong_candidate_is_never_selected(fault_catalog, options, samples):
    status = run(fault_catalog("wrong"), options, samples).status
    wrong = status["candidates"]["fault-wrong:fault-graph@cpu"]
    assert wrong["status"] == "incorrect"
    assert "correctness" in wrong["reason"] and "would pass with atol" in wrong["reason"]
    assert "profile" not in wrong
    assert "fault-wrong:fault-graph@cpu" not in status["selection"]["ranking"]


def test_all_candidates_incorrect_is_a_correctness_error(fault_catalog, options, samples, monkeypatch):
    with pytest.raises(CorrectnessError):
        run(fault_catalog("wrong"), replace(options, formats=("fault-graph",)), samples)
    status = Package(options.workspace).status
    assert status["reference_only"] == ["source:numpy-eager@cpu"]


def test_verify_func_can_reject(fake_catalog, options, samples):
    seen = []

    def verify(outputs, reference):
        seen.append(len(outputs))
        return False

    with pytest.raises(CorrectnessError):
        run(fake_catalog, replace(options, formats=("fake-graph",)), samples, verify_func=verify)
    status = Package(options.workspace).status
    competing = {c: r for c, r in status["candidates"].items() if c not in status["reference_only"]}
    assert competing["fake-graph:fake-graph@cpu"]["status"] == "rejected"
    # no default-options candidate succeeded, so the option variant is not measured
    variant = competing["fake-graph:fake-graph[impl=einsum]@cpu"]
    assert variant["status"] == "skipped" and "did not succeed" in variant["reason"]
    assert seen and seen[0] == len(status["correctness_batches"])


def test_declared_signature_needs_no_samples(fake_catalog, options, tmp_path):
    model_file = NumpyMLP().save(tmp_path / "tiny.npmlp")
    package = sextant.optimize(model_file, None, options=options, catalog=fake_catalog)
    assert any("random inputs" in note for note in package.status["notes"])
    assert package.status["signature"]["inputs"][0]["name"] == "x"


def test_bad_inputs_give_clear_errors(fake_catalog, options, samples, tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        sextant.optimize(str(tmp_path / "missing.onnx"), samples, options=options, catalog=fake_catalog)
    (tmp_path / "factory.py").write_text("def build():\n    raise RuntimeError('weights file not found')\n")
    with pytest.raises(ModelLoadError, match="raised RuntimeError: weights file not found"):
        sextant.optimize(f"{tmp_path / 'factory.py'}:build", samples, options=options, catalog=fake_catalog)
    with pytest.raises(SampleError, match="could not run the correctness inputs"):
        run(fake_catalog, options, {"x": np.zeros((2, 5), np.float32)})  # 5 features, model takes 8
    with pytest.raises(SampleError, match="does not declare its inputs"):
        run(fake_catalog, options, None)
    with pytest.raises(UsageError, match="unknown objective"):
        sextant.optimize(NumpyMLP(), samples, catalog=fake_catalog, objective="fastest")


def test_plan_only_runs_nothing(fake_catalog, options, samples):
    plan = sextant.optimize(NumpyMLP(), samples, options=options, catalog=fake_catalog, plan_only=True)
    assert plan.baseline().id == "source:numpy-eager@cpu"
    assert not options.workspace.exists()


def test_latency_objective_and_budget(fake_catalog, options, samples):
    status = run(fake_catalog, replace(options, objective="latency"), samples).status
    assert status["candidates"][status["selection"]["best"]]["best_point"]["batch"] == 1
    with pytest.raises(sextant.SextantError, match="latency budget"):
        run(fake_catalog, replace(options, latency_budget_ms=1e-9), samples)


def test_a_candidate_that_cannot_win_is_screened_out(fault_catalog, options, samples):
    package = run(fault_catalog("sleepy"), replace(options, cutoff=0.7), samples)
    status = package.status
    sleepy = status["candidates"]["fake-graph:fault-sleepy@cpu"]  # 2 ms a call: far under the others
    assert sleepy["status"] == "ok" and sleepy["correctness"]["passed"]
    profile = sleepy["profile"]
    assert profile["stop"] == "screened" and profile["stopped"].startswith("screened out: estimate ")
    assert [p["batch"] for p in profile["points"]] == [1, 8]  # the ends of the batch range only
    assert "fake-graph:fault-sleepy@cpu" not in status["selection"]["ranking"]
    best = status["candidates"][status["selection"]["best"]]["profile"]
    assert best["stop"] in ("max_batch", "plateau")  # the winner's profile is a full sweep
    assert any("screened out by a short measurement" in n for n in status["notes"])
    assert any("fake-graph:fault-sleepy@cpu" in line and "screened out" in line for line in reasons(status))
    for record in (r for r in status["candidates"].values() if r["status"] == "ok"):  # the word follows the words
        stop, words = record["profile"]["stop"], record["profile"]["stopped"]
        assert (stop == "screened") == words.startswith("screened out") and (stop == "max_batch") == words.startswith(
            "reached max batch"
        )
    again = run(fault_catalog("sleepy"), replace(options, cutoff=0.7), samples).status  # screened again, cached
    assert again["candidates"]["fake-graph:fault-sleepy@cpu"]["cached"]
    assert again["candidates"]["fake-graph:fault-sleepy@cpu"]["profile"]["stop"] == "screened"


def test_a_reference_that_cannot_be_selected_screens_nothing_out(fault_catalog, options, samples):
    """With --runners naming only the slow runner, the eager reference runs but cannot be picked:
    it is no rival, so the one competing candidate is swept in full and selected."""
    options = replace(options, cutoff=0.7, runners=("fault-sleepy",))
    status = run(fault_catalog("sleepy"), options, samples).status
    assert status["reference_only"] == ["source:numpy-eager@cpu"]
    assert status["candidates"]["fake-graph:fault-sleepy@cpu"]["profile"]["stop"] != "screened"
    assert status["selection"]["best"] == "fake-graph:fault-sleepy@cpu"


def test_the_reference_is_profiled_after_another_runtimes_candidate_and_screened_like_it(
    fake_catalog, options, samples, monkeypatch
):
    """Its outputs come first (every candidate is judged against them); its profile waits for the
    source's place in the order, after fake-graph's runtime, and the screen cuts it like any other
    (here every rival's throughput is scaled up a thousandfold, so the screen's verdict is certain)."""
    from sextant.optimizer import candidates

    real = candidates.rivals
    monkeypatch.setattr(candidates, "rivals", lambda run: {b: v * 1000 for b, v in real(run).items()})
    started: list[str] = []
    options = replace(options, cutoff=0.7)
    on_event = lambda event: event.kind == "candidate_start" and started.append(event.id)  # noqa: E731
    status = run(fake_catalog, options, samples, on_event=on_event).status
    reference, graph = "source:numpy-eager@cpu", "fake-graph:fake-graph@cpu"
    assert started[0] == reference and started.count(reference) == 2  # its outputs, then its profile
    assert started.index(graph) < len(started) - 1 - started[::-1].index(reference)
    profile = status["candidates"][reference]["profile"]
    assert profile["stop"] == "screened" and [p["batch"] for p in profile["points"]] == [1, 8]
    assert status["candidates"][graph]["profile"]["stop"] != "screened"  # the first measured: swept in full
    assert status["selection"]["best"] == graph and status["candidates"][graph]["speedup"] > 0
    assert status["run"]["unmeasured"] == []


def test_the_reference_runners_variants_are_tried_where_its_defaults_were_screened_out(
    catalog_with, options, samples, monkeypatch
):
    """They change how the framework itself runs the model (tf.function, XLA), which its defaults'
    screen does not judge (every rival's throughput scaled up a thousandfold: the screen is certain)."""
    from sextant.optimizer import candidates

    catalog = catalog_with(
        "reference_variants_plugin",
        """
        from sextant.hookspecs import hookimpl
        from sextant.specs import Format, Param, RunnerSpec

        @hookimpl
        def sextant_register_runners():
            return [
                RunnerSpec(
                    "numpy-traced",
                    Format("numpy-mlp"),
                    load="sextant.testing.fake:load_eager",
                    requires=("numpy",),
                    reference=True,
                    pickled="sextant.testing.fake:pickled",
                    options=(Param("mode", "categorical", ("eager", "traced"), "eager", "how it runs"),),
                    variants=({"mode": "traced"},),
                )
            ]
        """,
    )
    real = candidates.rivals
    monkeypatch.setattr(candidates, "rivals", lambda run: {b: v * 1000 for b, v in real(run).items()})
    status = run(catalog, replace(options, cutoff=0.7), samples).status
    assert status["baseline"] == "source:numpy-traced@cpu" and status["candidates"]["source:numpy-traced@cpu"][
        "profile"
    ]["stop"] == "screened"
    traced = status["candidates"]["source:numpy-traced[mode=traced]@cpu"]
    assert traced["status"] == "ok" and traced["profile"]["stop"] == "screened"  # tried, and screened itself
    einsum = status["candidates"]["fake-graph:fake-graph[impl=einsum]@cpu"]  # fake-graph's defaults swept: tried
    assert einsum["status"] == "ok"


def test_a_budgeted_run_profiles_the_reference_first(fake_catalog, options, samples):
    started: list[str] = []
    on_event = lambda event: event.kind == "candidate_start" and started.append(event.id)  # noqa: E731
    status = run(fake_catalog, replace(options, budget_s=600), samples, on_event=on_event).status
    assert started.count("source:numpy-eager@cpu") == 1 and started[0] == "source:numpy-eager@cpu"
    assert status["candidates"]["source:numpy-eager@cpu"]["profile"]["stop"] != "screened"


def test_a_constrained_objective_is_not_screened_but_cut_off(fault_catalog, options, samples):
    """A latency budget is not judged by a throughput screen: each candidate is swept, stopped
    early once even a bound on its larger batch sizes is under the cut-off share of the best there
    (sleepy's latency hardly grows with the batch, so the bound is throughput in proportion to it)."""
    status = run(fault_catalog("sleepy"), replace(options, cutoff=0.7, latency_budget_ms=10_000), samples).status
    sleepy = status["candidates"]["fake-graph:fault-sleepy@cpu"]
    assert sleepy["profile"]["stop"] == "cutoff" and sleepy["profile"]["stopped"].startswith(
        "stopped early: cannot win"
    )
    # the sparse sweep's sizes up to the largest (8), the fewest points a stop comes after; batch 2,
    # which the sweep measures beside its best, is not
    assert [p["batch"] for p in sleepy["profile"]["points"]] == [1, 4, 8]
    assert all(r["profile"]["stop"] != "screened" for r in status["candidates"].values() if r.get("profile"))
    assert status["selection"]["best"] != "fake-graph:fault-sleepy@cpu"


def test_changed_correctness_inputs_redo_every_candidate_but_no_step(fake_catalog, options, samples):
    run(fake_catalog, options, samples)
    other = [{name: value + 1.0 for name, value in batch.items()} for batch in samples]  # same shapes
    status = run(fake_catalog, options, other).status
    assert all(r.get("cached") for r in status["steps"].values())
    assert not any(r.get("cached") for r in status["candidates"].values() if r["status"] != "skipped")


def test_verify_func_rejecting_some_candidates_lets_another_win(fake_catalog, options, samples):
    def exact(outputs, reference):  # the fp16 graph (and einsum's rounding) differ from the reference
        return all(np.array_equal(o[k], r[k]) for o, r in zip(outputs, reference) for k in r)

    status = run(fake_catalog, replace(options, precisions=("fp32", "fp16")), samples, verify_func=exact).status
    judged = {c: r for c, r in status["candidates"].items() if r["status"] != "skipped"}
    rejected = {c for c, r in judged.items() if r["status"] == "rejected"}
    assert "fake-graph+fake-fp16:fake-graph@cpu" in rejected and "fake-graph:fake-graph@cpu" not in rejected
    for cid, record in judged.items():  # rejected exactly where the outputs differ
        assert (cid in rejected) == (record["correctness"]["outputs"][0]["max_abs_error"] > 0), cid
    assert all(judged[c]["reason"] == "rejected by verify_func" and judged[c]["verified"] is False for c in rejected)
    best = status["selection"]["best"]
    assert best is not None and best not in rejected and judged[best]["verified"] is True
    assert not set(status["selection"]["ranking"]) & rejected


def test_verify_func_that_raises_fails_that_candidate_not_the_run(fake_catalog, options, samples):
    def strict(outputs, reference):
        for o, r in zip(outputs, reference):
            if not np.array_equal(o["output_0"], r["output_0"]):
                raise ValueError("outputs drifted")
        return True

    status = run(fake_catalog, replace(options, precisions=("fp32", "fp16")), samples, verify_func=strict).status
    raised = [r for r in status["candidates"].values() if r.get("verify_error")]
    assert raised and all(r["status"] == "rejected" for r in raised)
    assert all(r["reason"] == "verify_func raised ValueError: outputs drifted" for r in raised)
    assert status["selection"]["best"] is not None
    assert status["candidates"][status["selection"]["best"]]["precision"] == "fp32"


def test_memory_is_measured_and_a_memory_budget_constrains_the_choice(fake_catalog, options, samples):
    status = run(fake_catalog, options, samples).status
    points = [p for r in status["candidates"].values() for p in r.get("profile", {}).get("points", [])]
    assert points and all(p["memory_mb"] > 0 for p in points)  # peak resident memory of the candidate's process
    assert all(r["profile"]["loaded_memory_mb"] > 0 for r in status["candidates"].values() if r["status"] == "ok")
    with pytest.raises(sextant.SextantError, match="at most 0.001 MB of memory"):
        run(fake_catalog, replace(options, max_memory_mb=0.001), samples)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"cutoff": 2.0}, "--cutoff 2 is not a share between 0 and 1"),
        ({"step_timeout": 0.0}, "--step-timeout 0 must be positive"),
        ({"latency_budget_ms": -1.0}, "the latency budget must be positive"),
        ({"formats": ("nosuchformat",)}, "--formats names nosuchformat, which no installed plugin provides"),
        ({"runners": ("nosuchrunner",)}, "--runners names nosuchrunner, which no installed plugin provides"),
    ],
)
def test_bad_settings_fail_before_any_work_naming_the_value(fake_catalog, options, samples, settings, message):
    with pytest.raises(UsageError, match=message) as error:
        run(fake_catalog, replace(options, **settings), samples)
    assert not options.workspace.exists()  # nothing was written
    if "formats" in settings:
        assert "fake-graph" in error.value.hint and "numpy-mlp" in error.value.hint


def test_the_fork_server_preloads_the_installed_packages_the_source_imports_never_a_users_file(tmp_path, monkeypatch):
    from sextant.optimizer.run import _preload
    from sextant.planner import Plan
    from sextant.specs import Format, SourceModel

    (tmp_path / "users_model.py").write_text("raise SystemExit('a user file must not be imported')\n")
    (tmp_path / "examples").mkdir()  # a project's folder: some wheels install a package of that name
    (tmp_path / "examples" / "__init__.py").write_text("")
    (tmp_path / "examples" / "model.py").write_text("raise SystemExit('a user file must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # findable, as a user's file next to their script is
    fake = Format("fake")
    imports = ("numpy.linalg", "users_model", "examples.model", "no_such_package_xyz.module")
    source = SourceModel(fake, "m", lambda folder: folder, imports=imports)
    assert _preload(Plan(fake), source) == ["numpy.linalg"]  # installed, by module; no user's file, nothing missing


def test_the_fork_server_imports_the_modules_a_plan_names_by_their_full_names():
    from sextant.isolation import preload_for

    # a heavy module a step imports (torch._dynamo, seconds) is named so that the server imports it once
    assert preload_for(["numpy", "numpy.fft", "no_such_package_xyz.module"]) == ["numpy", "numpy.fft"]


def test_the_packages_a_model_argument_imports_are_read_without_importing_it(tmp_path):
    from sextant.references import packages_imported

    script = tmp_path / "model.py"
    script.write_text(
        "import numpy.linalg as la\nfrom json import dumps\nfrom . import sibling\n"
        "raise SystemExit('reading must not import it')\n"
        "def build():\n    import colorsys\n    return colorsys\n"
    )
    assert packages_imported(f"{script}:build") == {"numpy", "json", "colorsys"}  # not the relative import
    assert packages_imported("numpy.linalg:norm") == {"numpy"}
    assert packages_imported(str(script)) == set()  # a saved model: its loader decides
    assert packages_imported(f"{tmp_path / 'missing.py'}:build") == set()  # loading it says what is wrong

    class Mine(dict):
        pass

    assert packages_imported(Mine()) == {"test_pipeline"}  # its classes' packages, builtins aside
    made = type("Made", (Mine,), {"__module__": None})  # a class made at run time may name no module
    assert packages_imported(made()) == {"test_pipeline"}


def test_a_run_starts_its_fork_server_early_with_the_models_installed_framework(tmp_path, catalog_with):
    from sextant.options import OptimizeOptions
    from sextant.optimizer.run import _early_preload

    # a runner of the fake graph (what the numpy MLP exports to) that needs a module of its own
    # and a generator that needs a package no runner needs (as transformers is)
    catalog = catalog_with(
        "graph_reader_plugin",
        """
        from sextant.hookspecs import hookimpl
        from sextant.specs import Format, GeneratorSpec, RunnerSpec

        @hookimpl
        def sextant_register_runners():
            return [RunnerSpec("graph-reader", Format("fake-graph"), load="x:y", requires=("json.decoder",))]

        @hookimpl
        def sextant_register_generators():
            return [GeneratorSpec("wave-lm", Format("wave-lm"), load="x:y", requires=("wave", "numpy"))]
        """,
    )
    script = tmp_path / "model.py"
    script.write_text("import numpy\nimport colorsys\nimport users_helper\n")
    # numpy: installed, and the reference runner of numpy-mlp needs it, so the server also imports what
    # numpy-mlp's plan needs (json.decoder, a runner of what it exports to); colorsys: no plugin needs
    # it; users_helper: not installed
    assert _early_preload(catalog, f"{script}:build", OptimizeOptions()) == ["json.decoder", "numpy"]
    assert _early_preload(catalog, f"{script}:build", OptimizeOptions(runners=("numpy-eager",))) == ["numpy"]
    generation = OptimizeOptions(task="text-generation")  # its plan comes from the loaded model
    assert _early_preload(catalog, f"{script}:build", generation) == ["numpy"]
    (tmp_path / "lm.py").write_text("import numpy\nimport wave\n")  # may be a generative model: no plan guessed
    assert _early_preload(catalog, f"{tmp_path / 'lm.py'}:build", OptimizeOptions()) == ["numpy", "wave"]
    (tmp_path / "other.py").write_text("import colorsys\n")
    assert _early_preload(catalog, f"{tmp_path / 'other.py'}:build", OptimizeOptions()) == []


def test_a_re_run_starts_its_fork_server_only_when_a_job_needs_it(tmp_path, monkeypatch):
    from sextant.optimizer.run import _rerun
    from sextant.options import OptimizeOptions

    workspace = tmp_path / "ws"
    assert not _rerun(OptimizeOptions(workspace=workspace), "model.py:build")
    workspace.mkdir()
    (workspace / "status.json").write_text("{}")
    assert _rerun(OptimizeOptions(workspace=workspace), "model.py:build")
    assert not _rerun(OptimizeOptions(workspace=workspace, fresh=True), "model.py:build")
    monkeypatch.chdir(tmp_path)  # the default workspace, named after the model argument
    (tmp_path / "sextant-workspace" / "mlp").mkdir(parents=True)
    (tmp_path / "sextant-workspace" / "mlp" / "status.json").write_text("{}")
    assert _rerun(OptimizeOptions(), "examples/mlp.py:build") and not _rerun(OptimizeOptions(), "other.py:build")
