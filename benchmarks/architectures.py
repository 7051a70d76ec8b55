"""Real architectures (tests/zoo.py: transformers models from tiny random configurations) through a
full default optimize, and the pick against eager, each timed in a fresh process.

    python benchmarks/architectures.py [NAME ...] [--windows 5] [--window-s 0.5] [--quick]

Per model: the optimize's wall time (a process of its own: start-up, imports and the model's build
included), the pick, the steps and candidates that failed with their one-line reason, and the pick's
speedup over the eager model (``source:torch-eager@cpu``) at batch 1 and 8 on inputs the run never
saw. Each (candidate, batch) is timed in a fresh process that loads it through the public API
(``sextant.load(ws).candidate(id).load()``), warms it up, then times ``--windows`` windows of
``--window-s`` seconds; the speedup is the median of the windows' ratios (eager's i-th window over
the pick's), with their min and max. Then the share of models where a correct candidate is faster
than eager: by sextant's own profile, and by these fresh-process timings.

``--quick`` (for trying the script) runs three runners with the tests' short profiler and max batch 8.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sextant
from _run import ROOT, cpu

sys.path.insert(0, str(ROOT / "tests"))
from zoo import ARCHITECTURES, BY_NAME  # noqa: E402

EAGER = "source:torch-eager@cpu"
BATCHES = (1, 8)

OPTIMIZE = """
import json, sys
sys.path.insert(0, sys.argv[3])
import sextant
from zoo import BY_NAME
arch = BY_NAME[sys.argv[1]]
settings = json.loads(sys.argv[4])
if settings.pop("quick", False):
    from sextant.testing import FAST
    from dataclasses import replace
    options = sextant.OptimizeOptions(**settings, profiler=replace(FAST, max_batch=8), max_batch_size=8)
else:
    options = sextant.OptimizeOptions(**settings)
sextant.optimize(arch.build(), arch.samples(), options=options)
"""

TIME = """
import json, sys, time
sys.path.insert(0, sys.argv[3])
import numpy as np, sextant
from zoo import BY_NAME
runner = sextant.load(sys.argv[1]).candidate(sys.argv[2]).load(trust_source=True)
batch = BY_NAME[sys.argv[4]].inputs(int(sys.argv[5]), 7)
windows, window_s = int(sys.argv[6]), float(sys.argv[7])
end = time.perf_counter() + window_s
while time.perf_counter() < end:  # warm-up: one window
    runner.infer(batch)
seconds = []
for _ in range(windows):
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < window_s:
        runner.infer(batch)
        calls += 1
    seconds.append((time.perf_counter() - start) / calls)
runner.close()
print(json.dumps(seconds))
"""


def _child(code: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def optimize(name: str, workspace: Path, quick: bool) -> float:
    settings = {"workspace": str(workspace)}
    if quick:
        settings.update(quick=True, runners=["torch-eager", "torch-exported", "onnxruntime"])
    start = time.perf_counter()
    result = _child(OPTIMIZE, name, str(workspace), str(ROOT / "tests"), json.dumps(settings))
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no output")
    return time.perf_counter() - start


def seconds_per_call(
    workspace: Path, candidate: str, name: str, batch: int, windows: int, window_s: float
) -> list[float]:
    """Seconds per call of each window, in a fresh process."""
    result = _child(TIME, str(workspace), candidate, str(ROOT / "tests"), name, str(batch), str(windows), str(window_s))
    if result.returncode != 0:
        raise RuntimeError(f"timing {candidate} at batch {batch}: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):5.2f}x (min {min(values):5.2f}, max {max(values):5.2f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", help=f"some of {', '.join(BY_NAME)} (default: all)")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--window-s", type=float, default=0.5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    args.names = args.names or [a.name for a in ARCHITECTURES]
    if unknown := set(args.names) - set(BY_NAME):
        parser.error(f"unknown {', '.join(sorted(unknown))}; known: {', '.join(BY_NAME)}")
    print(f"CPU: {cpu()}; load average {os.getloadavg()[0]:.1f} at start", flush=True)
    profiled_faster, fresh_faster = 0, {b: 0 for b in BATCHES}
    done = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names:
            arch = BY_NAME[name]
            workspace = Path(tmp) / name
            print(f"\n{name} ({arch.what})", flush=True)
            try:
                wall = optimize(name, workspace, args.quick)
            except RuntimeError as exc:
                print(f"  optimize failed: {exc}", flush=True)
                continue
            document = sextant.load(workspace).document
            best = document.best
            done += 1
            for cid, record in {**document.steps, **document.candidates}.items():
                if record.status.value in ("failed", "incorrect"):
                    reason = (record.reason or "").strip().splitlines() or [""]
                    print(f"  {record.status.value}: {cid}: {reason[0][:200]}")
            if best is None:
                reason = document.selection.reason if document.selection else None
                print(f"  optimize {wall:6.1f} s, nothing selected: {reason}", flush=True)
                continue
            record = document.candidates[best]
            ok = sum(1 for r in document.candidates.values() if r.status.value == "ok")
            print(
                f"  optimize {wall:6.1f} s, {ok}/{len(document.candidates)} candidates ok; pick {best}: "
                f"{record.speedup or 0:.2f}x eager's best throughput in sextant's profile"
            )
            profiled_faster += (record.speedup or 0) > 1
            for batch in BATCHES:
                try:
                    eager = seconds_per_call(workspace, EAGER, name, batch, args.windows, args.window_s)
                    pick = seconds_per_call(workspace, best, name, batch, args.windows, args.window_s)
                except RuntimeError as exc:
                    print(f"  batch {batch}: {exc}", flush=True)
                    continue
                ratios = [e / p for e, p in zip(eager, pick)]
                fresh_faster[batch] += statistics.median(ratios) > 1
                print(
                    f"  batch {batch}: eager {statistics.median(eager) * 1e3:8.3f} ms, pick {statistics.median(pick) * 1e3:8.3f} ms"
                    f" per call; speedup {spread(ratios)}",
                    flush=True,
                )
    print(f"\nmodels optimized: {done}/{len(args.names)}")
    print(f"a correct candidate faster than eager (sextant's profile): {profiled_faster}/{done}")
    for batch in BATCHES:
        print(f"the pick faster than eager in fresh processes at batch {batch}: {fresh_faster[batch]}/{done}")


if __name__ == "__main__":
    main()
