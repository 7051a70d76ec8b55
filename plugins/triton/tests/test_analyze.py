"""``sextant analyze`` against the real tritonserver and the real perf_analyzer: each strategy, a
package, an ensemble and a BLS model, two models at once, resuming, re-ranking, remote mode,
a server that dies, and bad input. Measurements are short (200 ms windows); no test asserts a
timing, only what was measured, stored, written and restored."""

from __future__ import annotations

import csv
import json
import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest
from _serving import write_repository
from sextant.api import Objective, SextantError, UsageError
from sextant_triton.analyze import analyze
from sextant_triton.analyze.settings import AnalyzeSettings, ModelSettings, Range, from_mapping
from sextant_triton.analyze.store import Store
from sextant_triton.perf import Windows
from sextant_triton.testing import needs_triton

pytestmark = needs_triton(perf_analyzer=True)

FAST = Windows(interval_ms=200, stability=50.0, max_trials=8)
SMALL = AnalyzeSettings(
    max_batch_size=Range(4, 8),
    instance_count=Range(1, 2),
    dynamic_batching=(True, False),
    top_n=1,
    windows=FAST,
)


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    return write_repository(tmp_path_factory.mktemp("repo") / "models")


def _settings(**changes) -> AnalyzeSettings:
    return replace(SMALL, **changes)


def _rows(output: Path) -> list[dict[str, str]]:
    with (output / "metrics-model-inference.csv").open() as f:
        return list(csv.DictReader(f))


def test_quick_search_on_a_package_writes_the_best_repository_csv_and_report(packages, tmp_path):
    out = tmp_path / "analysis"
    result = analyze(packages["onnx"].path, _settings(search="quick"), output=out)
    (best,) = result.best
    assert result.measured >= 3 and best.point is not None
    # the summary sentence names the counts, then a gain over the default re-measured interleaved with it,
    # or says there is none above the noise, or that the default is the best (test_analyze_confirm.py)
    assert best.summary.startswith(f"classifier: in {len(result.groups[0].history)} measurements over ")
    assert (
        "better at throughput than the default configuration at concurrency" in best.summary
        and "paired rounds) re-measured interleaved with the default" in best.summary
        or "no configuration is better than the default configuration (at concurrency" in best.summary
        or "the default configuration is the best, at concurrency" in best.summary
    ), best.summary
    # the best configuration is a loadable config.pbtxt with the point's values
    from sextant_triton import config

    written = config.to_dict(config.read(out / "best" / "classifier" / "config.pbtxt"))
    assert written["max_batch_size"] == best.point["max_batch_size"]
    assert written["instance_group"][0]["kind"] == "KIND_CPU"  # no GPU here: never KIND_GPU
    rows = _rows(out)
    assert {"Model", "Concurrency", "Max Batch Size", "Throughput (infer/sec)", "p99 Latency (ms)"} <= set(rows[0])
    assert len(rows) == len(result.groups[0].history)
    assert all(float(r["Throughput (infer/sec)"]) > 0 for r in rows)
    # the server-side breakdown comes from Triton's statistics
    assert all(float(r["Server Compute Infer (ms)"]) > 0 for r in rows)
    page = (out / "report.html").read_text()
    assert "Throughput against p99 latency" in page and "Latency breakdown" in page
    # the top configuration was swept over concurrency for the curves
    swept = [p for p, _ in result.groups[0].history if "concurrency" in p]
    assert len({p["concurrency"] for p in swept}) >= 2


def test_brute_sweeps_each_configuration_over_concurrency(repository, tmp_path):
    settings = _settings(
        search="brute",
        models=(ModelSettings("scale"),),
        max_batch_size=Range(8, 8),
        instance_count=Range(1, 1),
        concurrency=Range(1, 4),
        paired_rounds=0,  # what the search measures, alone (the re-measurement: test_analyze_confirm.py)
    )
    result = analyze(repository, settings, output=tmp_path)
    history = result.groups[0].history
    configs = {(p["dynamic_batching"],) for p, _ in history}
    assert configs == {(True,), (False,)}  # the whole (small) grid
    for (dynamic,) in configs:
        loads = sorted(p["concurrency"] for p, _ in history if p["dynamic_batching"] == dynamic)
        assert loads[0] == 1 and set(loads) <= {1, 2, 3, 4}
    assert result.measured == len(history)


def test_request_rate_mode_measures_each_rate(repository, tmp_path):
    settings = _settings(
        search="quick",
        models=(ModelSettings("scale"),),
        max_batch_size=Range(8, 8),
        instance_count=Range(1, 1),
        dynamic_batching=(True,),
        request_rate=(50.0, 100.0),
        top_n=0,
    )
    result = analyze(repository, settings, output=tmp_path)
    rates = sorted(r.metrics["request_rate"] for _, r in result.groups[0].history)
    assert rates == [50.0, 100.0]
    assert {row["Request Rate"] for row in _rows(tmp_path)} == {"50.0", "100.0"}


def test_optuna_spends_its_trials_and_keeps_the_study(repository, tmp_path):
    settings = _settings(
        search="optuna",
        models=(ModelSettings("scale"),),
        optuna={"min_trials": 3, "max_trials": 3},
        top_n=0,
        paired_rounds=0,  # the trials alone (the re-measurement: test_analyze_confirm.py)
    )
    result = analyze(repository, settings, output=tmp_path)
    assert 1 <= result.measured <= 3 + 1  # the default, then at most the trials
    assert (tmp_path / "optuna.sqlite").is_file()


def test_interrupted_run_resumes_and_rerank_measures_nothing(repository, tmp_path):
    # paired_rounds=0: the stored measurements alone (a re-measurement is never stored: test_analyze_confirm.py)
    settings = _settings(search="quick", models=(ModelSettings("scale"),), top_n=0, paired_rounds=0)
    seen = []

    def interrupt(point, record):
        seen.append(point)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        analyze(repository, settings, output=tmp_path, on_measured=interrupt)
    store = Store(f"sqlite:///{tmp_path / 'measurements.sqlite'}")
    with store.engine.connect() as db:
        rows = db.execute(store.table.select()).all()
    assert len(rows) == 2 and all(r.done for r in rows)  # both kept; no claim left behind
    store.close()

    again = analyze(repository, settings, output=tmp_path)
    assert again.reused == 2
    history = again.groups[0].history
    assert again.measured == len(history) - 2

    strict = replace(settings, objective=Objective(max_p99_ms=0.001))
    ranked = analyze(repository, strict, output=tmp_path, rerank=True)
    assert ranked.measured == 0
    (best,) = ranked.best
    assert best.point is None and "none met the constraints" in best.summary and "the closest is" in best.summary


def test_two_models_concurrently_search_the_joint_space(repository, tmp_path):
    settings = _settings(
        search="quick",
        models=(ModelSettings("scale"), ModelSettings("prep")),
        concurrent=True,
        max_batch_size=Range(8, 8),
        dynamic_batching=(True,),
        top_n=0,
        max_measurements=3,
    )
    result = analyze(repository, settings, output=tmp_path)
    (group,) = result.groups
    assert {p.name for p in group.space.params} == {
        "scale.max_batch_size",
        "scale.instances",
        "prep.max_batch_size",
        "prep.dynamic_batching",
        "prep.instances",
    }
    metrics = group.history[0][1].metrics
    assert metrics["scale/throughput"] > 0 and metrics["prep/throughput"] > 0
    assert metrics["throughput"] == pytest.approx(metrics["scale/throughput"] + metrics["prep/throughput"])


def test_ensemble_and_bls_are_analyzed_with_their_composing_models(repository, tmp_path):
    settings = _settings(
        search="quick",
        models=(ModelSettings("pipeline"), ModelSettings("bls", composing_models=("scale",))),
        max_batch_size=Range(8, 8),
        dynamic_batching=(True,),
        top_n=0,
        max_measurements=4,
    )
    result = analyze(repository, settings, output=tmp_path)
    ensemble, bls = result.groups
    assert {p.name for p in ensemble.space.params} >= {"prep.instances", "scale.instances"}
    assert {p.name for p in bls.space.params} >= {"instances", "scale.instances"}
    assert all(r.metrics for _, r in ensemble.history) and all(r.metrics for _, r in bls.history)
    assert (tmp_path / "best" / "prep" / "config.pbtxt").is_file()
    assert (tmp_path / "best" / "pipeline" / "config.pbtxt").is_file()


def test_remote_mode_touches_only_its_models_and_restores_them(repository, tmp_path, triton_server):
    import tritonclient.grpc as grpcclient

    server = triton_server(
        repository, extra_args=("--model-control-mode=explicit", "--load-model=scale", "--load-model=prep")
    )
    settings = _settings(
        search="quick",
        models=(ModelSettings("scale"),),
        url=server.grpc_url,
        launch_mode="remote",
        top_n=0,
        max_measurements=3,
    )
    result = analyze(repository, settings, output=tmp_path)
    assert result.measured == 3
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        config = client.get_model_config("scale", as_json=True)["config"]
        assert int(config["instance_group"][0]["count"]) == 1 and config["max_batch_size"] == 8  # the repository's own
        ready = {
            m["name"] for m in client.get_model_repository_index(as_json=True)["models"] if m.get("state") == "READY"
        }
        assert ready == {"scale", "prep"}
    finally:
        client.close()


def test_a_server_that_dies_is_restarted_and_nothing_is_lost(repository, tmp_path):
    settings = _settings(search="quick", models=(ModelSettings("scale"),), top_n=0, max_measurements=3)
    killed = []

    def kill_once(point, record):
        if not killed:
            pids = [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/cmdline") if _is_our_server(p, tmp_path)]
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed.extend(pids)

    result = analyze(repository, settings, output=tmp_path, on_measured=kill_once)
    assert killed
    assert any("the server died" in e for e in result.events)
    assert result.measured == 3 and all(r.metrics for _, r in result.groups[0].history)


def _is_our_server(cmdline: Path, output: Path) -> bool:
    try:
        text = cmdline.read_bytes().decode(errors="replace")
    except OSError:
        return False
    return "tritonserver" in text and str(output / "server") in text


def test_bad_input_is_named(repository, tmp_path):
    with pytest.raises(UsageError, match="no such package or model repository"):
        analyze(tmp_path / "nowhere", SMALL, output=tmp_path / "out")
    with pytest.raises(UsageError, match="holds 4 models") as info:
        analyze(repository, SMALL, output=tmp_path / "out")
    assert "bls" in info.value.hint
    with pytest.raises(UsageError, match="no model 'nope'"):
        analyze(repository, _settings(models=(ModelSettings("nope"),)), output=tmp_path / "out")
    with pytest.raises(UsageError, match="unknown key concurency") as info:
        from_mapping({"concurency": [1, 2]})
    assert "concurrency" in info.value.hint
    with pytest.raises(SextantError, match="cannot reach a Triton server"):
        analyze(
            repository,
            _settings(models=(ModelSettings("scale"),), url="127.0.0.1:9", launch_mode="remote"),
            output=tmp_path / "out",
        )
    assert not list((tmp_path / "out").glob("best"))


def test_cli_prints_the_summary_and_json(repository, tmp_path):
    from sextant.cli import State, with_plugin_commands
    from sextant.plugins import load_catalog
    from typer.testing import CliRunner

    catalog = load_catalog()
    app, state = with_plugin_commands(catalog), State(catalog)

    yaml_file = tmp_path / "analyze.yaml"
    yaml_file.write_text(
        "models: [scale]\nmax_batch_size: {min: 8, max: 8}\ninstance_count: {min: 1, max: 1}\n"
        "dynamic_batching: [true, false]\ntop_n: 0\nmeasurement: {interval_ms: 200, stability: 50, max_trials: 5}\n"
        # no re-measurement against the default: when the other configuration wins the timing it would
        # add its rounds to "measured" (the re-measurement: test_analyze_confirm.py)
        "paired_rounds: 0\n"
    )
    done = CliRunner().invoke(
        app, ["analyze", str(repository), "-f", str(yaml_file), "-o", str(tmp_path / "o"), "--json"], obj=state
    )
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout)
    assert document["measured"] == 2 and document["groups"][0]["units"] == ["scale"]
    bad = CliRunner().invoke(app, ["analyze", str(repository), "-m", "scale", "--search", "annealing"], obj=state)
    assert bad.exit_code != 0 and "annealing" in bad.output


def test_two_workers_share_one_optuna_study_and_store_in_postgresql(repository, tmp_path, postgres):
    """Two ``sextant analyze`` processes, each with its own server, one PostgreSQL database: they
    spend one trial budget together, and no configuration is measured by both."""
    import subprocess
    import sys

    url = postgres.create_database("analyze")
    settings = tmp_path / "analyze.yaml"
    settings.write_text(
        "models: [scale]\nmax_batch_size: {min: 2, max: 8}\ninstance_count: {min: 1, max: 2}\n"
        "dynamic_batching: [true, false]\ntop_n: 0\nmeasurement: {interval_ms: 200, stability: 50, max_trials: 5}\n"
        "optuna: {min_trials: 6, max_trials: 6, patience: 50}\npaired_rounds: 0\n"  # stored measurements only
    )
    command = [
        sys.executable,
        "-m",
        "sextant.cli",
        "analyze",
        str(repository),
        "-f",
        str(settings),
        "--search",
        "optuna",
    ]
    workers = [
        subprocess.Popen(
            [*command, "--storage", url, "-o", str(tmp_path / f"worker{i}"), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    documents = [json.loads(out) for out, _ in outputs]
    store = Store(url)
    with store.engine.connect() as db:
        rows = db.execute(store.table.select()).all()
    store.close()
    assert all(r.done for r in rows)
    # every stored measurement was made by exactly one worker
    assert sum(d["measured"] for d in documents) == len(rows)
    import optuna

    (name,) = optuna.get_all_study_names(url)
    study = optuna.load_study(study_name=name, storage=url)
    assert len(study.trials) <= 6 + 2  # the shared budget, and each worker's record of the default point
    assert len(rows) <= 6 + 1
