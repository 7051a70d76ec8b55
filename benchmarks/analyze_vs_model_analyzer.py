"""Triton Model Analyzer against `sextant analyze`: one model, one repository, the same search bounds,
p99 budget and perf_analyzer windows. Wall time, configurations and measurements spent, the best
configuration each found, and then the winners measured again side by side on one server.

    .venv-triton/bin/python benchmarks/analyze_vs_model_analyzer.py [--model-analyzer PATH] [--keep]

The model is the test suite's ``scale`` (Python backend, y = 2x, max_batch_size 8, dynamic
batching). Model Analyzer lives in an environment of its own (model_analyzer/.venv, made from
model_analyzer/requirements.txt the first time; its pins clash with ours); where it cannot be
installed only sextant's side runs. What Model Analyzer needs here (no Docker, no GPU, the
tritonserver of the nvidia-pytriton wheel) is in :func:`model_analyzer_config`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import yaml
from _run import cpu
from _triton import install_venv, local_server, perf_analyzer_wrapper, profile
from sextant_triton import perf
from sextant_triton.perf import Load, Windows
from sextant_triton.server import start_server

ROOT = Path(__file__).resolve().parents[1]
MA_DEFAULT = ROOT / "benchmarks" / "model_analyzer" / ".venv" / "bin" / "model-analyzer"
MODEL = "scale"
ROUNDS = 3

sys.path.insert(0, str(ROOT / "plugins" / "triton" / "tests"))
from _serving import write_repository  # noqa: E402


@dataclass(frozen=True)
class Bounds:
    max_instances: int
    max_batch: int
    max_concurrency: int
    max_p99_ms: float
    windows: Windows


@dataclass(frozen=True)
class Outcome:
    """One tool's run: its cost and its winner (``config``: the winner's config.pbtxt)."""

    tool: str
    wall_s: float
    configurations: int
    measurements: int
    config: Path | None
    throughput: float
    p99_ms: float
    concurrency: int
    failure: str | None = None


def describe(config: Path | None) -> str:
    """``instances x max batch, dynamic batching`` from a config.pbtxt."""
    if config is None or not config.is_file():
        return "-"
    text = config.read_text()
    batch = re.search(r"max_batch_size:\s*(\d+)", text)
    count = re.search(r"instance_group\s*\{[^}]*count:\s*(\d+)", text) or re.search(r"count:\s*(\d+)", text)
    dynamic = "dynamic" if "dynamic_batching" in text else "no dynamic"
    return f"{count.group(1) if count else 1} inst, max batch {batch.group(1) if batch else 0}, {dynamic}"


def from_csv(tool: str, wall_s: float, table: Path, config_of, max_p99_ms: float) -> Outcome:
    """An outcome from a ``metrics-model-inference.csv`` (Model Analyzer's columns, which sextant
    also writes): the highest throughput within the p99 budget."""
    rows = list(csv.DictReader(table.open()))
    configurations = {row["Model Config Path"] for row in rows}
    feasible = [r for r in rows if r.get("Throughput (infer/sec)") and float(r["p99 Latency (ms)"]) <= max_p99_ms]
    if not feasible:
        return Outcome(tool, wall_s, len(configurations), len(rows), None, 0.0, 0.0, 0, "nothing met the p99 budget")
    best = max(feasible, key=lambda r: float(r["Throughput (infer/sec)"]))
    return Outcome(
        tool,
        wall_s,
        len(configurations),
        len(rows),
        config_of(best["Model Config Path"]),
        float(best["Throughput (infer/sec)"]),
        float(best["p99 Latency (ms)"]),
        int(float(best["Concurrency"])),
    )


def model_analyzer_config(work: Path, repository: Path, bounds: Bounds) -> Path:
    """Model Analyzer's profile config for a local tritonserver without a GPU. What it takes (the
    first three from :mod:`_triton`, which the LLM benchmark shares):

    - ``triton_server_path``: the wheel's binary, with ``backend-directory`` pointing at a copy of the
      Python backend plus the stub for this interpreter (``make_backends``), and
      ``triton_server_environment`` carrying ``LD_LIBRARY_PATH``/``PATH`` the stub needs;
    - ``perf_analyzer_path``: a wrapper that sets ``LD_LIBRARY_PATH`` for perf_analyzer's libraries;
    - free ports in ``triton_*_endpoint``/``triton_metrics_url`` (the defaults are 8000-8002);
    - ``cpu_only`` per model and ``collect_cpu_metrics`` (the RAM column; GPU metrics stay empty);
    - ``perf_analyzer_flags`` giving sextant's windows (its default is ``count_windows`` of 50
      requests, raised by 50 and run again each time a window is too short);
    - ``constraints.perf_latency_p99`` is an object: ``{max: MS}``.
    """
    wrapper = perf_analyzer_wrapper(work / "perf_analyzer.sh")
    config = {
        "model_repository": str(repository),
        "profile_models": {MODEL: {"cpu_only": True}},
        "output_model_repository_path": str(work / "output_repository"),
        "override_output_model_repository": True,
        "checkpoint_directory": str(work / "checkpoints"),
        "export_path": str(work / "export"),
        **local_server(work, os.environ.get("PATH", "/usr/bin:/bin")),
        "perf_analyzer_path": str(wrapper),
        "perf_analyzer_flags": {
            "measurement-mode": "time_windows",
            "measurement-interval": str(bounds.windows.interval_ms),
            "stability-percentage": f"{bounds.windows.stability:g}",
            "max-trials": str(bounds.windows.max_trials),
        },
        "collect_cpu_metrics": True,
        "run_config_search_mode": "brute",
        "run_config_search_max_instance_count": bounds.max_instances,
        "run_config_search_max_model_batch_size": bounds.max_batch,
        "run_config_search_max_concurrency": bounds.max_concurrency,
        "constraints": {"perf_latency_p99": {"max": bounds.max_p99_ms}},
    }
    path = work / "profile.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_model_analyzer(binary: Path, work: Path, repository: Path, bounds: Bounds, timeout_s: float) -> Outcome:
    work.mkdir(parents=True)
    config = model_analyzer_config(work, repository, bounds)
    log = work / "model-analyzer.log"
    code, wall = profile(binary, config, work, log, timeout_s)
    table = work / "export" / "results" / "metrics-model-inference.csv"
    if code != 0 or not table.is_file():
        said = log.read_text().splitlines()
        errors = [ln for ln in said if "rror" in ln] or said[-5:]
        why = f"timed out after {timeout_s:g} s" if code is None else f"exit code {code}"
        return Outcome(
            "model-analyzer", wall, 0, 0, None, 0.0, 0.0, 0, f"{why}: {' | '.join(errors)[:600]} (log {log})"
        )
    configs = work / "output_repository"
    return from_csv(
        "model-analyzer brute", wall, table, lambda name: configs / name / "config.pbtxt", bounds.max_p99_ms
    )


def run_sextant(search: str, work: Path, repository: Path, bounds: Bounds) -> Outcome:
    settings = work / f"analyze-{search}.yaml"
    settings.write_text(
        yaml.safe_dump(
            {
                "models": [MODEL],
                "max_batch_size": {"min": 1, "max": bounds.max_batch},
                "instance_count": {"min": 1, "max": bounds.max_instances},
                "dynamic_batching": [True],  # Model Analyzer's automatic search always enables it
                "concurrency": {"min": 1, "max": bounds.max_concurrency},
                "constraints": {"max_p99_ms": bounds.max_p99_ms},
                "measurement": {
                    "interval_ms": bounds.windows.interval_ms,
                    "stability": bounds.windows.stability,
                    "max_trials": bounds.windows.max_trials,
                },
            }
        )
    )
    out = work / f"sextant-{search}"
    command = [sys.executable, "-m", "sextant.cli", "analyze", str(repository), "-m", MODEL, "-f", str(settings)]
    start = time.perf_counter()
    done = subprocess.run(
        [*command, "--search", search, "-o", str(out), "--json"], cwd=ROOT, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"sextant analyze --search {search} failed:\n{done.stderr[-3000:]}")
    (group,) = json.loads(done.stdout)["groups"]
    counted = from_csv(
        f"sextant {search}", wall, out / "metrics-model-inference.csv", lambda _: None, bounds.max_p99_ms
    )
    best = group.get("best_metrics")
    if not best:
        return replace(counted, failure=group.get("summary", "no best configuration"))
    return replace(  # its own pick (the same rule: the highest throughput within the p99 budget)
        counted,
        measurements=group["measurements"],
        config=out / "best" / MODEL / "config.pbtxt",
        throughput=best["throughput"],
        p99_ms=best["p99_ms"],
        concurrency=int(best["concurrency"]),
        failure=None,
    )


def remeasure(
    outcomes: list[Outcome], repository: Path, work: Path, windows: Windows
) -> tuple[dict[str, list[dict]], int]:
    """Each winner as its own model in one repository on one server, measured in turn (A B C, A B C,
    ...) at one concurrency: the highest any winner was picked at. ``windows``: sextant's default
    (1 s, within 10 %) unless the search used longer or stricter ones."""
    served = work / "remeasure"
    names = {}
    for i, outcome in enumerate(o for o in outcomes if o.config is not None):
        name = f"winner_{i}"
        (served / name / "1").mkdir(parents=True)
        shutil.copy2(repository / MODEL / "1" / "model.py", served / name / "1" / "model.py")
        text = re.sub(r'^name:\s*".*"', f'name: "{name}"', outcome.config.read_text(), count=1, flags=re.M)
        (served / name / "config.pbtxt").write_text(text)
        names[outcome.tool] = name
    if not names:
        return {}, 0
    concurrency = max(o.concurrency for o in outcomes if o.tool in names)
    results: dict[str, list[dict]] = {tool: [] for tool in names}
    with start_server(served, workdir=work / "server") as server:
        for _ in range(ROUNDS):
            for tool, name in names.items():
                metrics = perf.measure(name, server.grpc_url, Load(concurrency), windows=windows, workdir=work / "pa")
                results[tool].append(metrics)
    return results, concurrency


def install_model_analyzer(binary: Path) -> None:
    """Make ``benchmarks/model_analyzer/.venv`` with ``triton-model-analyzer==1.58.0`` when missing."""
    if binary.exists() or binary != MA_DEFAULT:
        return
    install_venv(MA_DEFAULT.parents[1], ROOT / "benchmarks" / "model_analyzer" / "requirements.txt", "Model Analyzer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-analyzer", type=Path, default=MA_DEFAULT, help="the model-analyzer executable")
    parser.add_argument("--max-instances", type=int, default=2)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-concurrency", type=int, default=16)
    parser.add_argument("--max-p99-ms", type=float, default=50.0)
    parser.add_argument("--interval-ms", type=int, default=500, help="perf_analyzer window, both tools")
    parser.add_argument("--stability", type=float, default=20.0, help="percent, both tools")
    parser.add_argument("--max-trials", type=int, default=10)
    parser.add_argument("--timeout-s", type=float, default=1200.0, help="for Model Analyzer's run")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    args = parser.parse_args()
    install_model_analyzer(args.model_analyzer)
    windows = Windows(args.interval_ms, args.stability, args.max_trials)
    bounds = Bounds(args.max_instances, args.max_batch, args.max_concurrency, args.max_p99_ms, windows)

    print(f"CPU: {cpu()}; load average {os.getloadavg()[0]:.1f} at start")
    print(
        f"model {MODEL!r} (Python backend); instances 1..{bounds.max_instances}, max batch 1..{bounds.max_batch} "
        f"(powers of 2), dynamic batching on, concurrency 1..{bounds.max_concurrency} (powers of 2); "
        f"p99 <= {bounds.max_p99_ms:g} ms; perf_analyzer time windows of {windows.interval_ms} ms, "
        f"stable within {windows.stability:g} %, at most {windows.max_trials}"
    )
    work = Path(tempfile.mkdtemp(prefix="sextant-vs-ma-"))
    keep = args.keep
    try:
        repository = write_repository(work / "repository")
        outcomes: list[Outcome] = []
        if args.model_analyzer.is_file():
            print("running Model Analyzer (brute) ...", flush=True)
            outcomes.append(run_model_analyzer(args.model_analyzer, work / "ma", repository, bounds, args.timeout_s))
            keep = keep or outcomes[-1].config is None  # its log, to read
        else:
            why = f"{args.model_analyzer} not found; see benchmarks/model_analyzer/requirements.txt"
            outcomes.append(Outcome("model-analyzer", 0.0, 0, 0, None, 0.0, 0.0, 0, why))
        for search in ("brute", "quick"):
            print(f"running sextant analyze --search {search} ...", flush=True)
            outcomes.append(run_sextant(search, work, repository, bounds))
        steady = Windows(max(windows.interval_ms, 1000), min(windows.stability, 10.0), windows.max_trials)
        print(
            f"measuring the winners again, {ROUNDS} rounds in turn ({steady.interval_ms} ms windows, "
            f"within {steady.stability:g} %) ...",
            flush=True,
        )
        again, concurrency = remeasure(outcomes, repository, work, steady)

        header = (
            f"{'tool':20s} {'wall s':>7s} {'configs':>7s} {'measured':>8s}  {'best configuration':32s} "
            f"{'its throughput / p99 (conc.)':>30s}  {f'again at conc. {concurrency}: median /s, p99':>34s}"
        )
        print()
        print(header)
        print("-" * len(header))
        for o in outcomes:
            if o.failure and o.config is None:
                print(f"{o.tool:20s} {o.wall_s:7.0f} {o.configurations:7d} {o.measurements:8d}  failed: {o.failure}")
                continue
            found = f"{o.throughput:,.0f}/s / {o.p99_ms:.1f} ms ({o.concurrency})"
            runs = again.get(o.tool, [])
            if runs:
                thr = [m["throughput"] for m in runs]
                p99 = statistics.median(m["p99_ms"] for m in runs)
                measured = f"{statistics.median(thr):,.0f} ({min(thr):,.0f}-{max(thr):,.0f}) / {p99:.1f} ms"
            else:
                measured = "-"
            print(
                f"{o.tool:20s} {o.wall_s:7.0f} {o.configurations:7d} {o.measurements:8d}  {describe(o.config):32s} "
                f"{found:>30s}  {measured:>34s}"
            )
        print(f"\nload average {os.getloadavg()[0]:.1f} at the end" + (f"; working folder {work}" if keep else ""))
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
