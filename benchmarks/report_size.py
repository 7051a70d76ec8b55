"""How big report.html gets and how long it takes, for runs of 10 to 100+ candidates.

Each run is a made-up status.json (7 batch sizes per candidate, two outputs, memory, every tenth
candidate failed with a log tail), written as a package and reported with `sextant report` in a
subprocess (interpreter start included). With Chromium installed it also times the browser: wall
time of headless Chromium loading the page and drawing every plot, less the same browser on an
empty page (its own start-up). Medians (min-max) over --repeat runs.

    python benchmarks/report_size.py [--candidates 10,100,300] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCHES = (1, 2, 4, 8, 16, 32, 64)


def made_up_status(n: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    candidates = {}
    for i in range(n):
        cid = f"export-{i % 9}+convert-{i % 4}:runner-{i % 5}[threads={1 + i % 4}]@cpu"
        if i % 10 == 9:
            candidates[cid] = {
                "step": f"export-{i % 9}",
                "format": "onnx",
                "runner": f"runner-{i % 5}",
                "plugin": "sextant-x 0.1.0",
                "device": "cpu",
                "precision": "fp32",
                "options": {},
                "status": "failed",
                "cause": "exception",
                "reason": f"RuntimeError: operator {i} is not supported",
                "log_tail": "\n".join(f"line {k} of the log of candidate {i}" for k in range(40)),
                "log": f"logs/c{i}.log",
            }
            continue
        base, scale = rng.uniform(0.05, 2.0), rng.uniform(0.5, 0.95)
        points = []
        for b in BATCHES:
            p50 = base * b**scale
            points.append(
                {
                    "batch": b,
                    "p50_ms": p50,
                    "p90_ms": p50 * 1.1,
                    "p95_ms": p50 * 1.2,
                    "p99_ms": p50 * 1.4,
                    "mean_ms": p50 * 1.05,
                    "std_ms": p50 * 0.1,
                    "throughput": b * 1000 / (p50 * 1.05),
                    "calls": 300,
                    "windows": 3,
                    "stable": rng.random() > 0.1,
                    "window_spread": 0.05,
                    "stages_ms": None,
                    "memory_mb": 250 + b * rng.uniform(0.5, 2),
                    "device_memory_mb": None,
                }
            )
        best = max(points, key=lambda p: p["throughput"])
        err = 10 ** rng.uniform(-8, -5)
        candidates[cid] = {
            "step": f"export-{i % 9}",
            "format": "onnx",
            "runner": f"runner-{i % 5}",
            "plugin": "sextant-x 0.1.0",
            "device": "cpu",
            "precision": "fp32",
            "options": {"threads": 1 + i % 4},
            "status": "ok",
            "correctness": {
                "passed": True,
                "atol": 1e-4,
                "rtol": 1e-3,
                "summary": f"max abs err {err:.1e}",
                "outputs": [
                    {
                        "name": name,
                        "passed": True,
                        "max_abs_error": err * k,
                        "max_rel_error": err * 10,
                        "atol": 1e-4,
                        "rtol": 1e-3,
                        "atol_needed": 0.0,
                        "mismatched": 0,
                        "elements": 640,
                        "problem": None,
                    }
                    for k, name in ((1, "logits"), (3, "hidden"))
                ],
            },
            "profile": {"points": points, "threads": 2, "stopped": "reached max batch 64", "loaded_memory_mb": 240.0},
            "seconds": 4.2,
            "best_point": best,
            "log": f"logs/c{i}.log",
        }
    ok = [c for c, r in candidates.items() if r["status"] == "ok"]
    ranking = sorted(ok, key=lambda c: -candidates[c]["best_point"]["throughput"])
    baseline = ok[0]
    for c in ok:
        candidates[c]["speedup"] = (
            candidates[c]["best_point"]["throughput"] / candidates[baseline]["best_point"]["throughput"]
        )
    return {
        "schema": 1,
        "sextant": "0.1.0",
        "model": {"name": f"made-up-{n}", "format": "onnx", "source": "source/model.onnx"},
        "options": {},
        "host": {"threads": 2, "devices": ["cpu"], "machine": "x86_64", "cpu": "made up", "cores": 2, "python": "3.11"},
        "run": {"started": "2026-01-01T00:00:00+00:00", "seconds": 100.0, "complete": True, "cached": 0, "ran": n},
        "notes": [],
        "baseline": baseline,
        "skipped": [],
        "reference_only": [],
        "steps": {},
        "candidates": candidates,
        "selection": {
            "objective": "throughput",
            "weights": {"throughput": 1.0},
            "latency_budget_ms": None,
            "min_throughput": None,
            "max_memory_mb": None,
            "max_batch": 64,
            "baseline": baseline,
            "ranking": ranking,
            "best": ranking[0],
        },
    }


def spread(values: list[float], unit: str, scale: float = 1.0) -> str:
    return (
        f"{statistics.median(values) * scale:.2f} {unit} (min {min(values) * scale:.2f}, max {max(values) * scale:.2f})"
    )


def browser_seconds(browser: str, page: Path, work: Path) -> float:
    profile = Path(tempfile.mkdtemp(dir=work))
    start = time.perf_counter()
    out = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=60000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.perf_counter() - start
    if page.name == "report.html" and not re.search(r'id="report-ready"', out.stdout):
        raise SystemExit(f"the page did not finish drawing:\n{out.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", default="10,100,300")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    browser = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "unknown CPU",
        )
        if Path("/proc/cpuinfo").exists()
        else "unknown CPU"
    )
    print(f"CPU: {cpu}; browser: {browser or 'none (browser timing skipped)'}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        empty = work / "empty.html"
        empty.write_text("<!DOCTYPE html><title>empty</title>")
        for n in (int(x) for x in args.candidates.split(",")):
            package = work / f"run-{n}"
            package.mkdir()
            (package / "status.json").write_text(json.dumps(made_up_status(n)))
            cli = [sys.executable, "-m", "sextant.cli", "report", str(package)]
            subprocess.run(cli, check=True, capture_output=True)  # warms the packed plotly.js cache
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                subprocess.run(cli, check=True, capture_output=True)
                times.append(time.perf_counter() - start)
            html = (package / "report.html").read_bytes()
            gz = len(gzip.compress(html, 6))
            print(
                f"{n:4d} candidates: `sextant report` {spread(times, 's')}; "
                f"{len(html) / 2**20:.2f} MiB ({gz / 2**20:.2f} MiB gzipped)"
            )
            if browser:
                drawn = [
                    browser_seconds(browser, package / "report.html", work) for _ in range(max(1, args.repeat // 2))
                ]
                idle = [browser_seconds(browser, empty, work) for _ in range(max(1, args.repeat // 2))]
                extra = [d - statistics.median(idle) for d in drawn]
                print(f"{'':16s}Chromium load and draw, less its start-up: {spread(extra, 's')}")


if __name__ == "__main__":
    main()
