"""``sextant analyze --model-type llm`` on a tiny streaming LM (``_llm_model``) served by the real
tritonserver and measured by the real perf_analyzer (``--streaming``, ``--profile-export-file``):
the metrics computed from a hand-built export (exact values) and from a real one (what must hold
whatever the timings), a quick search under a time-to-first-token budget, resuming an interrupted
run, and bad input. Windows are 200 ms; no test asserts a timing."""

from __future__ import annotations

import csv
import json
import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest
from _llm_model import CONTEXT, write_llm
from _processes import alive
from sextant.api import Objective, UsageError
from sextant_triton import llmperf
from sextant_triton.analyze import analyze
from sextant_triton.analyze.llm import LlmLoad, NotStreaming
from sextant_triton.analyze.settings import AnalyzeSettings, ModelSettings, Range, from_mapping
from sextant_triton.perf import Load, Windows
from sextant_triton.testing import needs_triton

pytestmark = needs_triton(perf_analyzer=True)


def real_lm(test):
    """A test on the real deployed model (a torch Llama in the Python backend): needs torch and transformers."""
    for mark in needs_triton(perf_analyzer=True, modules=("torch", "transformers")):
        test = mark(test)
    return test

MS = 1_000_000  # nanoseconds
LOAD = LlmLoad(input_tokens_mean=8, input_tokens_stddev=3, output_tokens=4, prompts=8, seed=1)
SETTINGS = AnalyzeSettings(
    models=(ModelSettings("tiny_lm"),),
    model_type="llm",
    llm=LOAD,
    instance_count=Range(1, 2),
    top_n=0,
    paired_rounds=0,
    windows=Windows(interval_ms=200, stability=50.0, max_trials=8),
)


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm") / "models"
    write_llm(root)
    write_llm(root, "not_streaming", decoupled=False)
    return root


def _rows(output: Path) -> list[dict[str, str]]:
    with (output / "metrics-model-inference.csv").open() as f:
        return list(csv.DictReader(f))


# -- the metrics, from perf_analyzer's profile export ---------------------------------------------


def test_metrics_from_a_hand_built_export_are_exact():
    export = {
        "experiments": [
            {
                "experiment": {"mode": "concurrency", "value": 2},
                "requests": [
                    {  # 3 tokens: TTFT 10 ms, latency 16 ms, ITL (16 - 10) / 2 = 3 ms
                        "timestamp": 0,
                        "request_inputs": {"input_ids": [1, 2, 3], "max_tokens": 3},
                        "response_timestamps": [10 * MS, 12 * MS, 16 * MS],
                        "response_outputs": [  # a tokenizer's text beside the ids: not counted again
                            {"output_ids": 5, "text_output": "a"},
                            {"output_ids": 6, "text_output": "b"},
                            {"output_ids": 7, "text_output": "c"},
                        ],
                    },
                    {  # 2 tokens then an empty final response (dropped): TTFT 20, latency 30, ITL 10
                        "timestamp": 5 * MS,
                        "request_inputs": {"input_ids": [1, 2, 3, 4, 5], "max_tokens": 2},
                        "response_timestamps": [25 * MS, 35 * MS, 36 * MS],
                        "response_outputs": [{"output_ids": 5}, {"output_ids": [6]}, {"output_ids": []}],
                    },
                ],
            }
        ]
    }
    m = llmperf.parse_export(export)
    assert m["requests"] == 2 and m["output_tokens"] == 5 and m["input_tokens_avg"] == 4
    assert m["ttft_p50_ms"] == pytest.approx(15.0) and m["ttft_avg_ms"] == pytest.approx(15.0)
    assert m["ttft_ms"] == m["ttft_p99_ms"] == pytest.approx(10 + 10 * 0.99)
    assert m["p50_ms"] == pytest.approx(6.5) and m["p99_ms"] == pytest.approx(3 + 7 * 0.99)
    assert m["itl_avg_ms"] == pytest.approx(6.5)
    assert m["request_p50_ms"] == pytest.approx(23.0) and m["request_avg_ms"] == pytest.approx(23.0)
    # from the first request sent (0) to the last token received (35 ms), not the empty response
    assert m["throughput"] == pytest.approx(5 / 0.035) and m["requests_per_s"] == pytest.approx(2 / 0.035)
    with pytest.raises(Exception, match="no request that received a token"):
        llmperf.parse_export({"experiments": [{"requests": [{"timestamp": 0, "response_timestamps": []}]}]})


def test_metrics_from_a_real_perf_analyzer_export(repository, tmp_path, triton_server):
    from sextant_triton.analyze.llm import write_prompts
    from sextant_triton.analyze.model import read_model

    data = write_prompts(read_model(repository, "tiny_lm"), LOAD, tmp_path / "prompts.json")
    server = triton_server(repository)
    kept = tmp_path / "export.json"
    metrics = llmperf.measure(
        "tiny_lm", server.grpc_url, Load(2), windows=SETTINGS.windows, input_data=data, workdir=tmp_path, export=kept
    )
    export = json.loads(kept.read_text())
    assert llmperf.parse_export(export) == {k: v for k, v in metrics.items() if k != "stable"}
    requests = export["experiments"][-1]["requests"]
    assert len(requests) == metrics["requests"] > 0
    sent = {tuple(r["input_ids"]["content"]) for r in json.loads(data.read_text())["data"]}
    for request in requests:
        stamps = request["response_timestamps"]
        assert len(stamps) == LOAD.output_tokens  # one response per token, the last one final
        assert request["timestamp"] < stamps[0] and stamps == sorted(stamps)
        assert tuple(request["request_inputs"]["input_ids"]) in sent
    assert metrics["output_tokens_avg"] == LOAD.output_tokens
    first = min(r["timestamp"] for r in requests)
    last = max(r["response_timestamps"][-1] for r in requests)
    assert metrics["throughput"] == pytest.approx(len(requests) * LOAD.output_tokens / ((last - first) / 1e9))
    ttfts = sorted((r["response_timestamps"][0] - r["timestamp"]) / MS for r in requests)
    assert ttfts[0] <= metrics["ttft_p50_ms"] <= metrics["ttft_p99_ms"] <= ttfts[-1]
    assert 0 < metrics["p50_ms"] <= metrics["p90_ms"] <= metrics["p99_ms"] < metrics["request_p99_ms"]


# -- the analysis ---------------------------------------------------------------------------------


def _cli():
    from sextant.cli import State, with_plugin_commands
    from sextant.plugins import load_catalog
    from typer.testing import CliRunner

    catalog = load_catalog()
    app, state = with_plugin_commands(catalog), State(catalog)
    return lambda *args: CliRunner().invoke(app, ["analyze", *map(str, args)], obj=state)


#: the real model's analysis: ``sextant deploy triton``'s streaming model ``lm`` (its config says its
#: context and vocabulary, read by the analyzer); one instance (each instance's stub imports torch
#: when a configuration loads: one load per server start) at concurrency 1, 2 and 4
REAL = replace(
    SETTINGS,
    models=(ModelSettings("lm"),),
    llm=replace(LOAD, vocab=None),
    instance_count=Range(1, 1),
    concurrency=Range(1, 4),
    search="quick",
    objective=Objective.named("tokens-per-second", max_ttft_ms=60_000.0),
)
#: REAL as an analyze.yaml (the same keys: the CLI's run finds what the Python run stored)
YAML = """models: [lm]
model_type: llm
llm: {input_tokens_mean: 8, input_tokens_stddev: 3, output_tokens: 4, prompts: 8, seed: 1}
instance_count: {min: 1, max: 1}
concurrency: {min: 1, max: 4}
top_n: 0
paired_rounds: 0
measurement: {interval_ms: 200, stability: 50.0, max_trials: 8}
"""


@real_lm
def test_quick_search_on_the_deployed_lm_survives_a_killed_server_and_resumes(generation_deployment, tmp_path):
    """The tiny random Llama as ``sextant deploy triton`` writes it: the server is killed (SIGKILL, by
    PID) after the first measurement, restarted by the analysis, which measures the next point and is
    then interrupted; the CLI resumes it from the store, nothing measured lost."""
    from _processes import servers_of

    repository, _ = generation_deployment
    seen, killed = [], []

    def kill_then_interrupt(point, record):
        seen.append((dict(point), record.metrics, record.error))
        if len(seen) == 1:
            killed.extend(servers_of(tmp_path / "server"))
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
        else:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        analyze(repository, REAL, output=tmp_path, on_measured=kill_then_interrupt)
    assert len(killed) == 1 and not alive(killed[0])
    assert len(seen) == 2 and [error for *_, error in seen] == [None, None]  # measured again after the restart
    assert all(metrics for _, metrics, _ in seen)
    # the same analysis from the command line resumes it: the two measurements found, whatever else the
    # climb goes on to (the third concurrency, or none when it already climbed away from it) measured
    (tmp_path / "analyze.yaml").write_text(YAML)
    done = _cli()(
        repository, "-f", tmp_path / "analyze.yaml", "--objective", "tokens-per-second", "--max-ttft-ms", "60000",
        "-o", tmp_path,
    )
    assert done.exit_code == 0, done.output
    assert "found stored 2" in done.output, done.output
    assert "tokens/s, TTFT p99" in done.output and "time to first token p99 of at most 60000 ms" in done.output
    document = json.loads((tmp_path / "analysis.json").read_text())
    assert document["model_type"] == "llm" and document["llm"]["load"] == REAL.llm.describe()
    assert document["reused"] == 2 and document["measured"] == done.output.count("  measured {") <= 1
    (group,) = document["groups"]
    assert group["best"] is not None and group["best_metrics"]["ttft_ms"] <= 60_000
    every = _rows(tmp_path)
    assert len(every) == group["measurements"] == 2 + document["measured"]
    assert {r["Instance Group"] for r in every} == {"1:CPU"}
    # the resumed run's own measurement (the third concurrency) may fail on a loaded machine (a
    # clean-clone run once had it so); a failure is a row that names its error, never a silent one
    rows = [r for r in every if not r["Error"]]
    assert len(every) - len(rows) <= document["measured"] and len(rows) >= 2, every
    assert all(r["Concurrency"] for r in rows), every
    concurrencies = sorted(int(r["Concurrency"]) for r in rows)
    assert set(concurrencies) <= {1, 2, 4} and len(set(concurrencies)) == len(rows)
    assert {(p["concurrency"], p.get("instances", 1)) for p, *_ in seen} <= {(c, 1) for c in concurrencies}
    for row in rows:  # every one measured, the two of the killed run's included
        assert float(row["Output Token Throughput (tokens/sec)"]) > 0
        assert float(row["p99 Time To First Token (ms)"]) >= float(row["p50 Time To First Token (ms)"]) > 0
        assert float(row["Avg Output Tokens"]) == LOAD.output_tokens
        assert row["Satisfies Constraints"] == "true"
    page = (tmp_path / "report.html").read_text()
    assert "TTFT p99 ms" in page and "ITL p99 ms" in page and "output tokens/s" in page
    assert "Time to first token (p99) against client concurrency" in page and "Inter-token latency (p99)" in page
    assert "per-response timestamps of its profile export" in page
    # a budget no measurement meets, ranked again from the store: nothing measured, none fits
    strict = replace(REAL, objective=Objective.named("ttft", max_ttft_ms=0.001))
    again = analyze(repository, strict, output=tmp_path, rerank=True)
    assert again.measured == 0 and again.best[0].point is None
    assert "none met the constraints (time to first token p99 of at most 0.001 ms)" in again.best[0].summary


@real_lm
def test_the_deployed_lm_says_its_context_and_vocabulary(generation_deployment, tmp_path):
    """What the deployer writes is what the analyzer checks prompts against, before a server starts."""
    from _causal_lm import POSITIONS, VOCAB
    from sextant_triton.analyze.llm import write_prompts
    from sextant_triton.analyze.model import read_model

    repository, _ = generation_deployment
    info = read_model(repository, "lm")
    data = json.loads(write_prompts(info, REAL.llm, tmp_path / "prompts.json").read_text())["data"]
    assert max(i for row in data for i in row["input_ids"]["content"]) < VOCAB  # drawn within its vocabulary
    long = replace(REAL, llm=replace(REAL.llm, input_tokens_mean=POSITIONS, input_tokens_stddev=0))
    with pytest.raises(UsageError, match=f"lm: a prompt of {POSITIONS} tokens plus 4 output tokens does not fit"):
        analyze(repository, long, output=tmp_path / "out")


# -- bad input (refused before a server starts) ---------------------------------------------------


def test_a_model_that_does_not_stream_is_refused_with_the_fix(repository, tmp_path):
    settings = replace(SETTINGS, models=(ModelSettings("not_streaming"),))
    with pytest.raises(NotStreaming, match="not_streaming is not a streaming model") as info:
        analyze(repository, settings, output=tmp_path)
    assert "sextant deploy triton" in info.value.hint and "decoupled: true" in info.value.hint


def test_a_prompt_longer_than_the_context_is_refused(repository, tmp_path):
    long = replace(SETTINGS, llm=replace(LOAD, input_tokens_mean=CONTEXT, input_tokens_stddev=0))
    with pytest.raises(UsageError, match=f"a prompt of {CONTEXT} tokens plus 4 output tokens does not fit") as info:
        analyze(repository, long, output=tmp_path)
    assert f"context of {CONTEXT} tokens" in info.value.message and "llm.output_tokens" in info.value.hint
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("1 2 3\n" + " ".join(["7"] * 200) + "\n")
    with pytest.raises(UsageError, match="a prompt of 200 tokens"):
        analyze(repository, replace(SETTINGS, llm=replace(LOAD, prompt_file=str(prompts))), output=tmp_path)
    # a context said wrongly (larger than the model's): the model refuses each request, the summary says why
    wrong = replace(long, instance_count=Range(1, 1), llm=replace(long.llm, context_length=1000))
    (best,) = analyze(repository, wrong, output=tmp_path / "wrong").best
    assert best.point is None and "every measurement failed" in best.summary
    assert f"exceeds the context of {CONTEXT} tokens" in best.summary


def test_llm_settings_and_flags_are_checked(repository, tmp_path):
    settings = from_mapping(
        {
            "model_type": "llm",
            "objective": "itl",
            "constraints": {"max_ttft_ms": 50, "max_itl_ms": 5, "min_output_tokens_per_s": 10},
            "llm": {"output_tokens": 4},
        }
    )
    o = settings.objective
    assert (o.weights, o.max_ttft_ms, o.max_p99_ms, o.min_throughput) == ({"p50_ms": 1.0}, 50, 5, 10)
    with pytest.raises(UsageError, match="llm: unknown key output_len") as info:
        from_mapping({"model_type": "llm", "llm": {"output_len": 4}})
    assert "output_tokens" in info.value.hint
    with pytest.raises(UsageError, match="unknown key max_ttft_ms"):  # not an LLM analysis: not a constraint
        from_mapping({"constraints": {"max_ttft_ms": 50}})
    with pytest.raises(UsageError, match="measure generation") as info:
        from_mapping({"objective": "ttft"})
    assert "--model-type llm" in info.value.hint

    run = _cli()
    unknown = run(repository, "--model-type", "llm", "--max-ttfb-ms", "5")
    assert unknown.exit_code == 2 and "No such option" in unknown.output and "--max-ttfb-ms" in unknown.output
    refused = run(repository, "-m", "not_streaming", "--model-type", "llm", "--max-ttft-ms", "50", "-o", tmp_path / "o")
    assert refused.exit_code == 1 and "not a streaming model" in refused.output
    plain = run(repository, "-m", "tiny_lm", "--max-itl-ms", "5")
    assert plain.exit_code == 2 and "--model-type llm" in plain.output
