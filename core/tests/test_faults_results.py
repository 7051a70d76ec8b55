"""Results that must not look better than they are (issue 20): an interrupted run, NaN in the
reference, a cache that outlives a plugin's code, and measurements taken under load.

Each end-to-end test runs the pipeline on the fake numpy plugin; the profiler's tests script its
clock, and the load average is injected, so nothing here depends on timing."""

from __future__ import annotations

import json
import os
import re
import textwrap
import warnings
from dataclasses import replace
from html import escape

import numpy as np
import pytest
import sextant
from sextant.cache import code_fingerprint
from sextant.cli import State, app
from sextant.compare import Tolerance, compare, nonfinite
from sextant.devices import busy_reason
from sextant.errors import IncompleteRunWarning, SampleError
from sextant.htmlreport import write_report
from sextant.package import Package
from sextant.plugins import load_catalog
from sextant.profiler import Point, ProfilerConfig, off_trend, sweep
from sextant.samples import load_batches
from sextant.testing.fake import NumpyMLP, nan_mlp
from typer.testing import CliRunner

BASELINE = "source:numpy-eager@cpu"
GRAPH = "fake-graph:fake-graph@cpu"
EINSUM = "fake-graph:fake-graph[impl=einsum]@cpu"  # its option variant, measured right after it


def optimize(catalog, options, samples, model=None, **kw):
    return sextant.optimize(model or NumpyMLP(), samples, options=options, catalog=catalog, **kw)


def cli(catalog, *args: str):
    return CliRunner().invoke(app, list(args), obj=State(catalog=catalog))


def html(folder) -> str:
    return write_report(folder).read_text()


# -- 1. an interrupted run says so everywhere -------------------------------------------------------


@pytest.fixture
def interrupted(fake_catalog, options, samples):
    """A run stopped by Ctrl-C while the reference was being profiled, after the first candidate
    (its outputs are the reference from the start; its profile comes after another runtime's)."""

    def stop(event):
        if event.kind == "candidate_point" and event.id == BASELINE:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        optimize(fake_catalog, options, samples, on_event=stop)
    return options.workspace


def test_an_interrupted_run_records_what_it_did_not_measure(interrupted):
    status = json.loads((interrupted / "status.json").read_text())
    run = status["run"]
    assert run["complete"] is False and status["interrupted"] == BASELINE
    assert status["selection"]["best"] in (GRAPH, EINSUM)  # picked from what was measured: the ★ of the issue
    assert BASELINE in run["unmeasured"] and GRAPH not in run["unmeasured"]  # the reference is correct, unprofiled
    assert status["candidates"][BASELINE]["status"] == "ok" and "profile" not in status["candidates"][BASELINE]
    assert run["unmeasured"] == [BASELINE]  # fake-graph's candidates (its defaults, then its variant) were measured
    assert run["planned"] == 3


def test_package_best_warns_that_the_run_was_interrupted(interrupted):
    status = json.loads((interrupted / "status.json").read_text())
    missing, planned = len(status["run"]["unmeasured"]), status["run"]["planned"]
    with pytest.warns(IncompleteRunWarning) as caught:
        best = Package(interrupted).best()
    assert best.id == status["selection"]["best"] in (GRAPH, EINSUM)
    assert str(caught[0].message) == (
        f"{interrupted}: the run was interrupted during {BASELINE}: {missing} of {planned} planned candidates "
        "were not measured; the selection is only among those measured before it stopped. "
        "Run the same command again to resume."
    )


def test_a_finished_run_does_not_warn(fake_catalog, options, samples):
    package = optimize(fake_catalog, options, samples)
    assert package.status["run"]["unmeasured"] == [] and package.incomplete is None
    with warnings.catch_warnings():
        warnings.simplefilter("error", IncompleteRunWarning)
        package.best()
    assert "Incomplete results" not in html(package.path)


def test_inspect_json_and_report_say_the_run_was_interrupted(fake_catalog, interrupted):
    status = json.loads((interrupted / "status.json").read_text())
    missing, best = len(status["run"]["unmeasured"]), status["selection"]["best"]
    shown = cli(fake_catalog, "inspect", str(interrupted))
    assert shown.exit_code == 0
    assert f"warning: the run was interrupted during {BASELINE}: {missing} of" in shown.stderr
    assert best in (GRAPH, EINSUM) and f"best so far ({missing} candidates not measured): {best}" in shown.stderr
    assert "incomplete run" in shown.stdout
    document = json.loads(cli(fake_catalog, "inspect", str(interrupted), "--json").stdout)
    assert document["incomplete"].startswith(f"the run was interrupted during {BASELINE}: {missing} of")
    page = html(interrupted)
    assert f"Incomplete results: the run was interrupted during {BASELINE}: {missing} of" in page
    assert "Best so far (the run did not finish)" in page


# -- 2. NaN and Inf in the reference ----------------------------------------------------------------


@pytest.fixture
def nan_samples():
    """Inputs on which :func:`nan_mlp` returns NaN for some rows (a positive first feature) only."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 8)).astype(np.float32)
    x[:, 0] = [1.0, -1.0, 2.0, -2.0]
    return [{"x": x}]


def test_a_reference_with_nan_stops_the_run_naming_the_output(fake_catalog, options, nan_samples):
    with pytest.raises(SampleError) as stopped:
        optimize(fake_catalog, options, nan_samples, model=nan_mlp())
    reference = load_batches(options.workspace / "reference.npz")
    nans = sum(int(np.isnan(b["output_0"]).sum()) for b in reference)
    values = sum(b["output_0"].size for b in reference)
    assert 0 < nans < values
    assert stopped.value.message == (
        f"the source model returns NaN/Inf on the correctness inputs: 'output_0' has {nans} NaN of {values} values"
    )
    assert "--allow-nan" in stopped.value.hint and "allow_nan=True" in stopped.value.hint
    status = json.loads((options.workspace / "status.json").read_text())
    assert (
        status["candidates"][BASELINE]["reason"]
        == f"the reference holds NaN/Inf: 'output_0' has {nans} NaN of {values} values"
    )
    assert status["run"]["complete"] is False


def test_allow_nan_compares_nan_positions_and_says_so(fake_catalog, options, nan_samples):
    package = optimize(fake_catalog, replace(options, allow_nan=True), nan_samples, model=nan_mlp())
    status = package.status
    assert all(r["status"] == "ok" for r in status["candidates"].values())
    (note,) = [n for n in status["notes"] if "NaN" in n]
    assert re.fullmatch(
        r"the reference outputs hold NaN/Inf \('output_0' has \d+ NaN of \d+ values\); with --allow-nan each "
        r"candidate must have them at the same positions, and its finite values are compared as usual",
        note,
    )
    assert escape(note, quote=True) in html(package.path)


def test_a_candidate_with_inf_where_the_reference_is_finite_fails(fake_catalog, options, samples):
    # fp32 outputs near 1e5 are finite; the fp16 candidate's inputs overflow to Inf
    large = [{"x": (b["x"] * 4e4).astype(np.float32)} for b in samples]
    status = optimize(fake_catalog, replace(options, precisions=("fp32", "fp16")), large).status
    fp16 = [r for r in status["candidates"].values() if r["precision"] == "fp16" and r["status"] != "skipped"]
    assert fp16 and all(r["status"] == "incorrect" for r in fp16)
    assert all(
        r["reason"].startswith("correctness: output 'output_0': NaN/Inf positions differ from the reference's: ")
        for r in fp16
    )
    assert any(r["status"] == "ok" for r in status["candidates"].values() if r["precision"] == "fp32")


def test_the_comparator_names_how_nan_and_inf_positions_differ():
    tolerance = Tolerance(1e-4, 1e-3)
    ref = {"y": np.array([np.nan, 1.0, 2.0, np.inf, -np.inf, 5.0])}
    same = compare(ref, {"y": ref["y"].copy()}, tolerance)
    assert same.passed
    moved = compare(ref, {"y": np.array([1.0, np.nan, np.nan, -np.inf, -np.inf, np.inf])}, tolerance)
    assert not moved.passed
    assert moved.summary() == (
        "output 'y': NaN/Inf positions differ from the reference's: NaN at 2 positions where the reference is not; "
        "not NaN at 1 positions where the reference is NaN; Inf differs from the reference at 2 positions"
    )
    assert moved.outputs[0].mismatched == 5


def test_nonfinite_counts_nan_and_inf_per_output():
    batches = [{"a": np.array([np.nan, np.inf, 0.0]), "b": np.ones(2), "i": np.arange(3)}, {"a": np.array([np.nan])}]
    (found,) = nonfinite(batches)
    assert (found.output, found.nan, found.inf, found.elements) == ("a", 2, 1, 4)
    assert found.describe() == "'a' has 2 NaN and 1 Inf of 4 values"


# -- 3. the cache follows a plugin's source files ---------------------------------------------------

PLUGIN = "sextant_cachetest_plugin"


@pytest.fixture
def plugin_package(tmp_path, monkeypatch):
    """A plugin outside any distribution, as an editable install would be: an exporter and a
    runner of its own format, whose code lives in its ``steps`` module."""
    folder = tmp_path / "plugin" / PLUGIN
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(
        textwrap.dedent(
            f"""
            from sextant.hookspecs import hookimpl
            from sextant.specs import ExporterSpec, Format, RunnerSpec
            from sextant.testing.fake import SOURCE

            GRAPH = Format("cachetest-graph")

            @hookimpl
            def sextant_register_exporters():
                return [ExporterSpec("cachetest", SOURCE, GRAPH, run="{PLUGIN}.steps:export")]

            @hookimpl
            def sextant_register_runners():
                return [RunnerSpec("cachetest", GRAPH, load="{PLUGIN}.steps:load")]
            """
        )
    )
    (folder / "steps.py").write_text("from sextant.testing.fake import export_graph as export, load_graph as load\n")
    monkeypatch.syspath_prepend(str(folder.parent))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(folder.parent), os.environ.get("PYTHONPATH")])))
    return folder


def _touch(path, text=""):
    info = path.stat()
    path.write_text(path.read_text() + text)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 5_000_000_000))


def test_code_fingerprint_follows_the_files_of_the_package(plugin_package):
    ref = f"{PLUGIN}.steps:load"
    first = code_fingerprint(ref)
    assert code_fingerprint(ref) == first  # an unchanged tree
    assert code_fingerprint(f"{PLUGIN}:other") == first  # the whole top-level package
    _touch(plugin_package / "steps.py")
    touched = code_fingerprint(ref)
    assert touched != first
    _touch(plugin_package / "steps.py", "# changed\n")
    assert code_fingerprint(ref) not in (first, touched)
    (plugin_package / "__pycache__").mkdir(exist_ok=True)
    (plugin_package / "__pycache__" / "steps.cpython.pyc").write_bytes(b"x")
    assert code_fingerprint(ref) == code_fingerprint(ref)
    assert code_fingerprint("no_such_package_here:x") == "unknown"


def test_a_changed_plugin_file_is_run_again_and_an_unchanged_one_reused(plugin_package, options, samples):
    catalog = load_catalog(extra_modules=["sextant.testing.fake", PLUGIN], entry_points=False)
    options = replace(options, formats=("cachetest-graph",))
    step, candidate = "cachetest", "cachetest:cachetest@cpu"

    first = optimize(catalog, options, samples).status
    again = optimize(catalog, options, samples).status
    assert again["steps"][step]["key"] == first["steps"][step]["key"]
    assert again["steps"][step].get("cached") and again["candidates"][candidate].get("cached")

    _touch(plugin_package / "steps.py", "# edited\n")
    edited = optimize(catalog, options, samples).status
    assert edited["steps"][step]["key"] != first["steps"][step]["key"]
    assert edited["candidates"][candidate]["keys"] != first["candidates"][candidate]["keys"]
    assert not edited["steps"][step].get("cached") and not edited["candidates"][candidate].get("cached")
    assert edited["candidates"][BASELINE].get("cached")  # the fake plugin's code did not change


# -- 4. measurements under load --------------------------------------------------------------------

MS = 1_000_000
#: one call per window, two per warm-up: a point's latency is exactly the scripted cost
ONE_CALL = ProfilerConfig(window_s=1e-9, warmup_s=1e-9, min_calls=1, stability=0.1, max_batch=4, sparse=False)


class ScriptedModel:
    """A clock that stands still but for model calls, and a model whose cost per call is scripted
    per measurement of each batch size: ``costs[batch][n]`` nanoseconds for its n-th measurement
    (the last one repeats)."""

    def __init__(self, costs: dict[int, list[float]]) -> None:
        self.now = 0
        self.costs = costs
        self.measured: dict[int, int] = {}

    def clock(self) -> int:
        return self.now

    def make_infer(self, batch: int):
        n = self.measured.get(batch, 0)
        self.measured[batch] = n + 1
        cost = round(self.costs[batch][min(n, len(self.costs[batch]) - 1)] * MS)

        def infer() -> None:
            self.now += cost

        return infer


def _sweep(model: ScriptedModel, **kw):
    points = []
    reason = sweep(model.make_infer, ONE_CALL, points.append, clock=model.clock, **kw)
    return reason, points


def test_a_point_far_off_its_neighbours_is_measured_again():
    # the issue: batch 2 at 16 ms under a burst of load, against 0.05 ms at batch 1
    model = ScriptedModel({1: [0.05], 2: [16.0, 0.08], 4: [0.15]})
    _, points = _sweep(model)
    assert [p.batch for p in points] == [1, 2, 4]
    assert model.measured == {1: 1, 2: 2, 4: 1}
    assert points[1].p50_ms == pytest.approx(0.08) and points[1].remeasured == 1 and points[1].stable


def test_a_point_that_stays_off_is_marked_unstable_after_a_bounded_number_of_tries():
    model = ScriptedModel({1: [0.05], 2: [16.0], 4: [0.15]})
    _, points = _sweep(model)
    assert model.measured[2] == 1 + ONE_CALL.remeasure
    assert points[1].p50_ms == pytest.approx(16.0)
    assert points[1].remeasured == ONE_CALL.remeasure and not points[1].stable
    assert points[0].stable and points[2].stable and points[0].remeasured == points[2].remeasured == 0


def test_batch_1_is_checked_against_batch_2_before_it_is_reported():
    model = ScriptedModel({1: [5.0, 0.05], 2: [0.08], 4: [0.15]})
    _, points = _sweep(model)
    assert [p.batch for p in points] == [1, 2, 4]
    assert points[0].p50_ms == pytest.approx(0.05) and points[0].remeasured == 1


def test_a_smooth_curve_is_measured_once_and_decisions_see_the_measured_again_point():
    smooth = ScriptedModel({1: [0.05], 2: [0.09], 4: [0.3]})  # batch 4: 1.7x per item, a real slowdown
    _, points = _sweep(smooth)
    assert smooth.measured == {1: 1, 2: 1, 4: 1} and all(p.stable for p in points)
    seen = []
    spiky = ScriptedModel({1: [0.05], 2: [16.0, 0.08], 4: [0.15]})
    _sweep(spiky, keep_going=lambda p: seen.append((p.batch, p.p50_ms)))
    assert seen == [(1, pytest.approx(0.05)), (2, pytest.approx(0.08)), (4, pytest.approx(0.15))]


def _point(batch: int, per_item_ms: float) -> Point:
    ms = per_item_ms * batch
    return Point(batch, ms, ms, 1000 / per_item_ms, mean_ms=ms, calls=1, windows=1, stable=True)


def test_a_point_is_off_the_trend_only_when_it_is_far_off_every_measured_neighbour():
    # batch 2 at 1 ms per item: 20x batch 1's, but only 5x batch 4's: a real step in the curve
    # (a model whose batch 2 takes a slow path), not a slow reading: measured once, kept
    step = [_point(1, 0.05), _point(2, 1.0), _point(4, 0.2)]
    assert not off_trend(step, 1, 10.0)
    assert off_trend([_point(1, 0.05), _point(2, 1.0), _point(4, 0.05)], 1, 10.0)  # far off both
    assert off_trend(step[:2], 1, 10.0) and not off_trend(step[:2], 0, 10.0)  # one measured neighbour
    assert not off_trend(step[:1], 0, 10.0)  # none: nothing to be off from


def test_a_busy_machine_is_named():
    assert busy_reason(9.5, 2) == (
        "the machine was busy when the run started (1-minute load average 9.5 on 2 cores): timings may be slower "
        "and noisier than on an idle machine; points far off their neighbours were measured again or marked unstable"
    )
    assert busy_reason(2.0, 2) is None and busy_reason(None, 2) is None


def test_a_run_on_a_busy_machine_says_so_in_its_notes_and_report(fake_catalog, options, samples, monkeypatch):
    cores = os.cpu_count() or 1
    monkeypatch.setattr(os, "getloadavg", lambda: (cores * 4.0, 1.0, 1.0))
    package = optimize(fake_catalog, options, samples)
    assert package.status["host"]["load_1min"] == cores * 4.0
    assert busy_reason(cores * 4.0, cores) in package.status["notes"]
    assert f"Timings may be off: the machine was busy when the run started (1-minute load average {cores * 4.0:g}" in (
        html(package.path)
    )
