"""Triton Model Analyzer 1.58 ``--model-type LLM`` (which drives GenAI-Perf) against ``sextant analyze
--model-type llm`` on one streaming model: the tiny random Llama of the triton plugin's tests
(``plugins/triton/tests/_causal_lm.py``: 2 layers, hidden 32, a 96-character tokenizer), optimized
with ``torch-generate`` and deployed by ``sextant deploy triton`` as a decoupled model.

    .venv-triton/bin/python benchmarks/analyze_llm_vs_model_analyzer.py [--tools VENV] [--keep]

What it needs: ``.venv-triton`` (tritonserver, perf_analyzer 2.51, torch, transformers) and a venv
of its own with ``triton-model-analyzer==1.58.0`` and ``genai-perf==0.0.16``
(``benchmarks/model_analyzer/requirements-llm.txt``; made at ``benchmarks/model_analyzer/.venv-llm``
the first time unless ``--tools`` names one: their pins clash with ours). GenAI-Perf runs the
``perf_analyzer`` it finds on ``PATH``: the script puts a wrapper for ours there.

What it does, one after the other, printing the numbers and, where a tool cannot run, why:

1. one load measured by both on one server: GenAI-Perf (``profile --endpoint-type kserve --backend
   vllm --streaming``, gRPC like sextant) and sextant's measurement (perf_analyzer ``--streaming``,
   TTFT/ITL from its per-response timestamps, :mod:`sextant_triton.llmperf`), at each concurrency;
2. the searches over the same ranges (instances 1..N, concurrency 1..C, powers of two): Model
   Analyzer ``profile --model-type LLM`` (local launch mode, the bundled tritonserver) and ``sextant
   analyze --model-type llm``, each timed, with the configurations and measurements each spent;
3. the best configuration each found, re-measured by both GenAI-Perf and sextant's measurement.

The deployed model is used as ``sextant deploy triton`` writes it: its config declares the optional
``exclude_input_in_output`` input (BOOL [1], as vLLM's and TensorRT-LLM's models do), which
GenAI-Perf 0.0.16's Triton path sends with every request (true: the prompt is left out of the
output, as the model answers anyway); Triton refuses a request with an input the model does not
declare, and before the config declared it GenAI-Perf only ran against Triton's HTTP
``generate_stream`` endpoint, which Model Analyzer cannot select.

Model Analyzer 1.58 does not run with GenAI-Perf 0.0.16 (its flags are the old names, so prompts are
GenAI-Perf's default 550 tokens: the model is built with 1024 positions and sextant's search uses
that load too; then it reads ``profile_export_genai_perf.csv`` from its working directory, which
0.0.16 writes under ``artifacts/``): the script prints the error it stops with, and what it spent.
``benchmarks/model_analyzer/README.md`` has the details.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from _run import cpu
from _triton import install_venv, local_server, perf_analyzer_wrapper, profile

ROOT = Path(__file__).resolve().parents[1]
TOOLS_DEFAULT = ROOT / "benchmarks" / "model_analyzer" / ".venv-llm"
REQUIREMENTS = ROOT / "benchmarks" / "model_analyzer" / "requirements-llm.txt"
MODEL = "lm"
POSITIONS = 1024
#: the prompt length GenAI-Perf 0.0.16 sends when not told (Model Analyzer 1.58 cannot tell it)
GENAI_DEFAULT_INPUT = 550
INPUT_MEAN, INPUT_STDDEV, OUTPUT_TOKENS, PROMPTS = 32, 8, 16, 16

sys.path.insert(0, str(ROOT / "plugins" / "triton" / "tests"))


@dataclass(frozen=True)
class Search:
    """One tool's search: its cost and its best (``config``: the winner's config.pbtxt)."""

    tool: str
    wall_s: float
    configurations: int = 0
    measurements: int = 0
    config: Path | None = None
    concurrency: int = 0
    metrics: dict = field(default_factory=dict)
    failure: str | None = None


def describe(m: dict | None) -> str:
    if not m:
        return "-"
    return (
        f"{m['throughput']:7.1f} tok/s  TTFT p50 {m['ttft_p50_ms']:7.1f} p99 {m['ttft_ms']:7.1f} ms  "
        f"ITL p50 {m.get('p50_ms', float('nan')):6.2f} p99 {m.get('p99_ms', float('nan')):6.2f} ms  "
        f"{m['requests_per_s']:5.2f} req/s"
    )


# -- the model ------------------------------------------------------------------------------------


def deploy(work: Path) -> tuple[Path, Path]:
    """The package built and deployed as ``lm`` (``--new-tokens`` 16): ``(repository, tokenizer folder)``."""
    import _causal_lm
    from sextant_triton.repository import deploy_package

    # Model Analyzer cannot give GenAI-Perf 0.0.16 a prompt length (its genai_perf_flags still say
    # input-tokens-mean, which 0.0.16 renamed), so GenAI-Perf sends its default 550-token prompts:
    # the tests' 512 positions would refuse every one of them
    _causal_lm.POSITIONS = POSITIONS

    os.environ["SEXTANT_CACHE_DIR"] = str(work / "cache")
    package = _causal_lm.generation_package(work, new_tokens=OUTPUT_TOKENS)
    repository = work / "models"
    deploy_package(package.path, repository, name=MODEL)  # declares exclude_input_in_output, which GenAI-Perf sends
    return repository, repository / MODEL / "1" / "tokenizer"


def tool_path(tools: Path, wrapper_dir: Path) -> dict[str, str]:
    """The environment GenAI-Perf and Model Analyzer run in: our perf_analyzer and the tools on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{wrapper_dir}{os.pathsep}{tools / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    return env


# -- one measurement by each tool -----------------------------------------------------------------


def genai_perf(
    env: dict, url: str, tokenizer: Path, concurrency: int, interval_ms: int, out: Path, model: str = MODEL
) -> tuple[dict | None, float, str | None]:
    """GenAI-Perf on the running server: ``(metrics, wall seconds, failure)``, metrics in sextant's names."""
    command = [
        "genai-perf", "profile", "-m", model, "--endpoint-type", "kserve", "--backend", "vllm", "--streaming",
        "-u", url, "--tokenizer", str(tokenizer),
        "--synthetic-input-tokens-mean", str(INPUT_MEAN), "--synthetic-input-tokens-stddev", str(INPUT_STDDEV),
        "--extra-inputs", f"max_tokens:{OUTPUT_TOKENS}",  # --output-tokens-mean sends vLLM's sampling_parameters
        "--num-dataset-entries", str(PROMPTS), "--random-seed", "0",
        "--concurrency", str(concurrency), "--measurement-interval", str(interval_ms), "--artifact-dir", str(out),
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - start
    found = sorted(out.glob("*/profile_export_genai_perf.json"))
    if done.returncode != 0 or not found:
        said = (done.stdout + done.stderr).splitlines()
        errors = [ln.strip() for ln in said if re.search(r"error|Error|not found", ln)] or said[-5:]
        return None, wall, f"exit {done.returncode}: {' | '.join(dict.fromkeys(errors))[:600]}"
    d = json.loads(found[-1].read_text())
    metrics = {
        "throughput": d["output_token_throughput"]["avg"],
        "requests_per_s": d["request_throughput"]["avg"],
        "ttft_ms": d["time_to_first_token"]["p99"],
        "ttft_p50_ms": d["time_to_first_token"]["p50"],
        "p50_ms": d["inter_token_latency"]["p50"],
        "p99_ms": d["inter_token_latency"]["p99"],
        "requests": d["request_count"]["avg"],
        "output_tokens_avg": d["output_sequence_length"]["avg"],
    }
    return metrics, wall, None


def sextant_measure(url: str, concurrency: int, interval_ms: int, work: Path, model: str = MODEL) -> tuple[dict, float]:
    """sextant's measurement (perf_analyzer ``--streaming``, its profile export) of the same load shape."""
    from sextant_triton import llmperf
    from sextant_triton.analyze.llm import LlmLoad
    from sextant_triton.perf import Load, Windows

    load = LlmLoad(INPUT_MEAN, INPUT_STDDEV, OUTPUT_TOKENS, PROMPTS, seed=0)
    rows = [
        {"input_ids": {"content": ids, "shape": [len(ids)]}, "max_tokens": {"content": [OUTPUT_TOKENS], "shape": [1]}}
        for ids in load.prompts_ids(96)
    ]
    data = work / "prompts.json"
    work.mkdir(parents=True, exist_ok=True)
    data.write_text(json.dumps({"data": rows}))
    start = time.perf_counter()
    # windows taken as they come, as GenAI-Perf has perf_analyzer take them (--stability-percentage 999)
    metrics = llmperf.measure(
        model, url, Load(concurrency), windows=Windows(interval_ms, 999.0, 10), input_data=data, workdir=work
    )
    return metrics, time.perf_counter() - start


# -- the searches ---------------------------------------------------------------------------------


def model_analyzer(tools: Path, env: dict, work: Path, repository: Path, tokenizer: Path, args) -> Search:
    """``model-analyzer profile --model-type LLM``, local launch mode on the bundled tritonserver."""
    work.mkdir(parents=True)
    config = {
        "model_repository": str(repository),
        "profile_models": {MODEL: {"cpu_only": True}},
        "model_type": "LLM",
        "client_protocol": "grpc",
        "genai_perf_flags": {"backend": "vllm", "streaming": "true", "tokenizer": str(tokenizer)},
        "output_model_repository_path": str(work / "output_repository"),
        "override_output_model_repository": True,
        "checkpoint_directory": str(work / "checkpoints"),
        "export_path": str(work / "export"),
        **local_server(work, env["PATH"]),
        "perf_analyzer_path": str(Path(env["PATH"].split(os.pathsep)[0]) / "perf_analyzer"),
        "perf_analyzer_flags": {"measurement-interval": str(args.interval_ms)},
        "collect_cpu_metrics": True,
        "run_config_search_mode": args.search,
        "run_config_search_max_instance_count": args.max_instances,
        "run_config_search_max_concurrency": args.max_concurrency,
        "constraints": {"time_to_first_token_p99": {"max": args.max_ttft_ms}},
        "objectives": {"output_token_throughput": 1},
    }
    (work / "profile.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    log = work / "model-analyzer.log"
    code, wall = profile(tools / "bin" / "model-analyzer", work / "profile.yaml", work, log, args.timeout_s, env)
    said = log.read_text().splitlines()
    checkpoint = work / "checkpoints" / "0.ckpt"
    measured = 0
    if checkpoint.is_file():  # every measurement, whatever happened next
        text = checkpoint.read_text()
        measured = text.count('"perf_throughput"')
    table = work / "export" / "results" / "metrics-model-inference.csv"
    if code != 0 or not table.is_file():
        keep = [ln for ln in said if re.search(r"rror|failed|No .*found|Traceback|not supported", ln)] or said[-6:]
        why = f"timed out after {args.timeout_s:g} s" if code is None else f"exit code {code}"
        return Search(
            "model-analyzer LLM", wall, measurements=measured,
            failure=f"{why}: {' | '.join(dict.fromkeys(ln.strip() for ln in keep))[:900]} (log {log})",
        )  # fmt: skip
    rows = list(csv.DictReader(table.open()))
    feasible = [r for r in rows if r.get("Satisfies Constraints", "Yes").lower() in ("yes", "true")] or rows
    best = max(feasible, key=lambda r: float(r.get("Output Token Throughput (tokens/sec)") or 0))
    name = best["Model Config Path"]
    return Search(
        "model-analyzer LLM", wall, len({r["Model Config Path"] for r in rows}), len(rows),
        work / "output_repository" / name / "config.pbtxt", int(float(best["Concurrency"])),
        {"throughput": float(best.get("Output Token Throughput (tokens/sec)") or 0)},
    )  # fmt: skip


def sextant_analyze(work: Path, repository: Path, args) -> Search:
    settings = work / "analyze.yaml"
    settings.write_text(
        yaml.safe_dump(
            {
                "models": [MODEL],
                "model_type": "llm",
                "llm": {  # the load Model Analyzer's GenAI-Perf sends (it cannot be told another)
                    "input_tokens_mean": GENAI_DEFAULT_INPUT,
                    "input_tokens_stddev": 0,
                    "output_tokens": OUTPUT_TOKENS,
                    "prompts": PROMPTS,
                    "seed": 0,
                },
                "instance_count": {"min": 1, "max": args.max_instances},
                # powers of two, as Model Analyzer sweeps it ({min, max} would step by one)
                "concurrency": [2**i for i in range(args.max_concurrency.bit_length()) if 2**i <= args.max_concurrency],
                "search": args.search,
                "measurement": {"interval_ms": args.interval_ms, "stability": 50, "max_trials": 4},
            }
        )
    )
    out = work / "sextant"
    command = [sys.executable, "-m", "sextant.cli", "analyze", str(repository), "-f", str(settings)]
    command += ["--objective", "tokens-per-second", "--max-ttft-ms", f"{args.max_ttft_ms:g}", "-o", str(out), "--json"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return Search(f"sextant {args.search}", wall, failure=done.stderr[-800:])
    (group,) = json.loads(done.stdout)["groups"]
    rows = list(csv.DictReader((out / "metrics-model-inference.csv").open()))
    configs = len({r["Model Config Path"] for r in rows})
    best = group.get("best_metrics")
    if not best:
        return Search(f"sextant {args.search}", wall, configs, group["measurements"], failure=group.get("summary"))
    return Search(
        f"sextant {args.search}", wall, configs, group["measurements"], out / "best" / MODEL / "config.pbtxt",
        int(best["concurrency"]), best,
    )  # fmt: skip


def remeasure(searches: list[Search], repository: Path, tokenizer: Path, env: dict, work: Path, args) -> None:
    """Each winner as its own model on one server, measured by GenAI-Perf and by sextant in turn."""
    from sextant_triton.server import start_server

    served = work / "remeasure"
    winners = {}
    for i, s in enumerate(x for x in searches if x.config is not None and x.config.is_file()):
        name = f"winner_{i}"
        shutil.copytree(repository / MODEL / "1", served / name / "1")
        text = re.sub(r'^name:\s*".*"', f'name: "{name}"', s.config.read_text(), count=1, flags=re.M)
        (served / name / "config.pbtxt").write_text(text)
        winners[name] = s
    if not winners:
        print("no best configuration to re-measure")
        return
    with start_server(served, workdir=work / "server-again") as server:
        for name in winners:  # not shown: cold instances
            sextant_measure(server.grpc_url, 1, args.interval_ms, work / "warm-up", name)
        for name, s in winners.items():
            ours, _ = sextant_measure(server.grpc_url, s.concurrency, args.interval_ms, work / "pa-again", name)
            theirs, _, why = genai_perf(
                env, server.grpc_url, tokenizer, s.concurrency, args.interval_ms, work / f"gp-{name}", name
            )
            print(f"{s.tool:20s} best {instances(s.config)} at concurrency {s.concurrency}:")
            print(f"  {'sextant':12s} {describe(ours)}")
            print(f"  {'GenAI-Perf':12s} {describe(theirs) if theirs else 'failed: ' + str(why)}")


def instances(config: Path | None) -> str:
    if config is None or not config.is_file():
        return "-"
    count = re.search(r"count:\s*(\d+)", config.read_text())
    return f"{count.group(1) if count else 1} instance(s)"


def install(tools: Path) -> None:
    if (tools / "bin" / "genai-perf").exists() or tools != TOOLS_DEFAULT:
        return
    install_venv(tools, REQUIREMENTS, "Model Analyzer and GenAI-Perf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tools", type=Path, default=TOOLS_DEFAULT, help="venv with model-analyzer and genai-perf")
    parser.add_argument("--max-instances", type=int, default=2)
    parser.add_argument("--max-concurrency", type=int, default=4)
    parser.add_argument("--concurrencies", type=int, nargs="+", default=[1, 2, 4], help="for part 1")
    parser.add_argument("--search", default="brute", choices=("brute", "quick"))
    parser.add_argument("--max-ttft-ms", type=float, default=2000.0)
    parser.add_argument("--interval-ms", type=int, default=2000, help="measurement window, both tools")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="for Model Analyzer's run")
    parser.add_argument("--skip", nargs="*", default=[], choices=("same-load", "model-analyzer", "sextant"))
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    args = parser.parse_args()
    install(args.tools)
    tools_ok = (args.tools / "bin" / "genai-perf").exists()
    print(f"CPU: {cpu()}; load average {os.getloadavg()[0]:.1f} at start")
    print(
        f"model {MODEL!r}: tiny random Llama, torch-generate, streaming Python-backend model; prompts "
        f"{INPUT_MEAN}+-{INPUT_STDDEV} tokens, {OUTPUT_TOKENS} output tokens; instances 1..{args.max_instances}, "
        f"concurrency 1..{args.max_concurrency}; TTFT p99 <= {args.max_ttft_ms:g} ms; {args.interval_ms} ms windows"
    )
    work = Path(tempfile.mkdtemp(prefix="sextant-llm-vs-ma-"))
    keep = args.keep
    try:
        t = time.perf_counter()
        repository, tokenizer = deploy(work)
        print(f"built and deployed in {time.perf_counter() - t:.0f} s", flush=True)
        env = tool_path(args.tools, perf_analyzer_wrapper(work / "bin" / "perf_analyzer").parent)
        if not tools_ok:
            print(f"GenAI-Perf and Model Analyzer: {args.tools / 'bin' / 'genai-perf'} not found ({REQUIREMENTS})")

        if "same-load" not in args.skip:
            from sextant_triton.server import start_server

            print("\n1. the same model, server and concurrency, measured by each (perf_analyzer's windows taken as they come by both: stability 999 %)")
            with start_server(repository, workdir=work / "server") as server:
                sextant_measure(server.grpc_url, 1, args.interval_ms, work / "warm-up")  # not shown: a cold instance
                for c in args.concurrencies:
                    ours, wall = sextant_measure(server.grpc_url, c, args.interval_ms, work / "pa")
                    print(f"  c={c}  {'sextant':11s} {describe(ours)}  ({wall:.0f} s)", flush=True)
                    if tools_ok:
                        theirs, wall, why = genai_perf(env, server.grpc_url, tokenizer, c, args.interval_ms, work / f"gp{c}")
                        print(f"  c={c}  {'GenAI-Perf':11s} {describe(theirs) if theirs else 'failed: ' + str(why)}"
                              f"  ({wall:.0f} s)", flush=True)  # fmt: skip

        searches: list[Search] = []
        if "model-analyzer" not in args.skip:
            if tools_ok:
                print(f"\n2. running Model Analyzer --model-type LLM ({args.search}) ...", flush=True)
                searches.append(model_analyzer(args.tools, env, work / "ma", repository, tokenizer, args))
                keep = keep or searches[-1].failure is not None
            else:
                searches.append(Search("model-analyzer LLM", 0.0, failure="not installed"))
        if "sextant" not in args.skip:
            print(f"   running sextant analyze --model-type llm --search {args.search} ...", flush=True)
            searches.append(sextant_analyze(work, repository, args))
        print(f"\n{'tool':22s} {'wall s':>7s} {'configs':>7s} {'measured':>8s}  best")
        for s in searches:
            best = f"{instances(s.config)} at concurrency {s.concurrency}: {describe(s.metrics) if 'ttft_ms' in s.metrics else s.metrics}"
            print(f"{s.tool:22s} {s.wall_s:7.0f} {s.configurations:7d} {s.measurements:8d}  "
                  + (f"failed: {s.failure}" if s.failure else best))  # fmt: skip
        if tools_ok and searches:
            print("\n3. each best configuration re-measured by both (one server, in turn)")
            remeasure(searches, repository, tokenizer, env, work, args)
        print(f"\nload average {os.getloadavg()[0]:.1f} at the end" + (f"; working folder {work}" if keep else ""))
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
