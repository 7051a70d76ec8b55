"""The pick of a default `sextant optimize` against the best of an exhaustive one, on the same model
in the same run of this script: how much throughput the screen, the early stops and the sparse sweep
give away (issue 27's goal: none over 5 %).

    python benchmarks/pick_quality.py [NAME ...] [--windows 5] [--window-s 0.3] [--rounds 2]

NAME is one of the examples (mlp, resnet, transformer: ``examples/NAME.py``) or of the architectures
in ``tests/zoo.py`` (default: the three examples). Per model, each in a process of its own, with no
history (``--no-history``) and a cache folder of its own: a default run, then an exhaustive one
(``--cutoff 0 --no-history --dense-sweep``: every candidate swept, at every batch size up to its
plateau). Then the
default's pick and the exhaustive run's best are timed in fresh processes, each at the batch size
of its own best profile point, on inputs neither run saw, alternating (pick, best, pick, best, ...
``--rounds`` of each), ``--windows`` windows of ``--window-s`` seconds per process after one warm-up
window. The share is the median over the paired windows of the pick's throughput over the best's;
when both runs chose the same candidate it is 1 by definition and nothing is timed.
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
from _run import ROOT, cpu, optimize

EXAMPLES = ("mlp", "resnet", "transformer")

TIME = """
import json, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import sextant
name, workspace, candidate, batch, windows, window_s = sys.argv[3:]
batch, windows, window_s = int(batch), int(windows), float(window_s)
package = sextant.load(workspace)
if name in ("mlp", "resnet", "transformer"):
    import measure
    inputs = measure.fresh_inputs(measure.example(name).samples()[0], batch, 7)
    feed = inputs if isinstance(inputs, dict) else {package.document.signature.inputs[0].name: inputs}
else:
    from zoo import BY_NAME
    feed = BY_NAME[name].inputs(batch, 7)
runner = package.candidate(candidate).load(trust_source=True)
def window():
    calls, start = 0, time.perf_counter()
    while calls < 1 or time.perf_counter() - start < window_s:
        runner.infer(feed)
        calls += 1
    return batch * calls / (time.perf_counter() - start)
window()
print(json.dumps([window() for _ in range(windows)]))
runner.close()
"""

OPTIMIZE = """
import sys
from dataclasses import replace
sys.path.insert(0, sys.argv[1])
import sextant
from zoo import BY_NAME
arch = BY_NAME[sys.argv[2]]
options = sextant.OptimizeOptions(workspace=sys.argv[3], no_history=True)
if sys.argv[4] == "exhaustive":
    options = replace(options, cutoff=0.0, profiler=replace(options.profiler, sparse=False))
sextant.optimize(arch.build(), arch.samples(), options=options)
"""


def run_optimize(name: str, workspace: Path, cache: Path, exhaustive: bool) -> float:
    """One optimize of ``name`` in a process of its own, with the cache folder ``cache``; its wall time."""
    env = {"SEXTANT_CACHE_DIR": str(cache)}
    if name in EXAMPLES:
        extra = ["--cutoff", "0", "--dense-sweep"] if exhaustive else []
        example = f"examples/{name}.py"
        samples = ["--samples", f"{example}:samples"]
        return optimize(f"{example}:build", workspace, *samples, "--no-history", *extra, env=env)[0]
    kind = "exhaustive" if exhaustive else "default"
    start = time.perf_counter()
    command = [sys.executable, "-c", OPTIMIZE, str(ROOT / "tests"), name, str(workspace), kind]
    result = subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"optimize {name} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def throughputs(name: str, workspace: Path, candidate: str, batch: int, windows: int, window_s: float) -> list[float]:
    """Rows per second of each window, in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-c", TIME, str(ROOT / "benchmarks" / "navigator"), str(ROOT / "tests"), name,
         str(workspace), candidate, str(batch), str(windows), str(window_s)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"timing {candidate} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def swept(document) -> int:
    """How many candidates a run profiled in full."""
    return sum(r.profiled_in_full for r in document.candidates.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", default=list(EXAMPLES))
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--window-s", type=float, default=0.3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"CPU: {cpu()}; load average {os.getloadavg()[0]:.1f} at start", flush=True)
    shares = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.names:
            root = Path(tmp) / name
            walls = {}
            for kind in ("default", "exhaustive"):
                walls[kind] = run_optimize(name, root / kind, root / f"cache-{kind}", kind == "exhaustive")
            default, exhaustive = sextant.load(root / "default").document, sextant.load(root / "exhaustive").document
            pick, best = default.best, exhaustive.best
            print(
                f"\n{name}: default {walls['default']:.1f} s ({swept(default)} swept) picks {pick}; exhaustive "
                f"{walls['exhaustive']:.1f} s ({swept(exhaustive)} swept) picks {best}",
                flush=True,
            )
            if pick == best:
                shares[name] = 1.0
                print("  the same candidate: share 1.00", flush=True)
                continue
            batch_pick = default.candidates[pick].best_point.batch
            batch_best = exhaustive.candidates[best].best_point.batch
            mine, theirs = [], []
            for _ in range(args.rounds):
                mine += throughputs(name, root / "default", pick, batch_pick, args.windows, args.window_s)
                theirs += throughputs(name, root / "exhaustive", best, batch_best, args.windows, args.window_s)
            ratios = [a / b for a, b in zip(mine, theirs)]
            shares[name] = statistics.median(ratios)
            print(
                f"  pick {statistics.median(mine):,.0f}/s at batch {batch_pick}, exhaustive best "
                f"{statistics.median(theirs):,.0f}/s at batch {batch_best}: share {shares[name]:.2f} "
                f"(paired windows {min(ratios):.2f}-{max(ratios):.2f})",
                flush=True,
            )
    print("\nsummary (goal: every share >= 0.95)")
    for name, share in shares.items():
        print(f"  {name:20s} {share:.2f} {'ok' if share >= 0.95 else 'MISSED'}")


if __name__ == "__main__":
    main()
