"""Wall time of a full default `sextant optimize` of the bundled examples, first run and cached re-run.

    python benchmarks/optimize_speed.py [mlp resnet transformer] [--repeat N]

Prints the CPU, then per example: the first run's wall time, the unchanged re-run's (which answers
from the package without loading the model) and the ``--reload`` re-run's (which loads it and finds
every result cached), medians over --repeat runs, each in a fresh workspace, with min–max; the
re-runs' ratios to the first, how many candidates were
profiled in full and how many screened out, where the first run's time went (the seconds of its
steps, and of its candidates split into loading and the rest), the winner and its speedup over
eager. The inductor cache is shared between runs, as between a user's runs.

To compare two versions of sextant on the same machine, run this script under each in turn (for
example with ``farm-bench``), and compare ratios measured in the same session.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _run import cpu, optimize


def run(example: str, ws: Path, *extra: str) -> tuple[float, dict]:
    return optimize(f"examples/{example}.py:build", ws, "--samples", f"examples/{example}.py:samples", *extra)


def spread(values: list[float]) -> str:
    median = statistics.median(values)
    return f"{median:6.1f} s" + (f" ({min(values):.1f}–{max(values):.1f})" if len(values) > 1 else "")


def where_time_went(doc: dict) -> str:
    """Seconds of steps, of candidates' loading (compiles included), and of the candidates' rest."""
    steps = sum(r.get("seconds") or 0.0 for r in doc["steps"].values())
    candidates = doc["candidates"].values()
    loading = sum(r.get("load_seconds") or 0.0 for r in candidates)
    rest = sum(r.get("seconds") or 0.0 for r in candidates) - loading
    return f"steps {steps:.1f} s, loading {loading:.1f} s, checking+profiling {rest:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("examples", nargs="*", default=["mlp", "resnet", "transformer"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"CPU: {cpu()}")
    for example in args.examples:
        firsts, cached, reloaded = [], [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                first, doc = run(example, Path(tmp) / "ws")
                again, _ = run(example, Path(tmp) / "ws")
                loaded, _ = run(example, Path(tmp) / "ws", "--reload")
            firsts.append(first)
            cached.append(again)
            reloaded.append(loaded)
        best = doc["selection"]["best"]
        record = doc["candidates"][best]
        profiled = [r for r in doc["candidates"].values() if r["status"] == "ok"]
        screened = sum((r.get("profile") or {}).get("stop") == "screened" for r in profiled)
        print(
            f"{example:12s} first {spread(firsts)}  unchanged {spread(cached)} "
            f"(ratio {statistics.median(cached) / statistics.median(firsts):.3f})  --reload {spread(reloaded)} "
            f"(ratio {statistics.median(reloaded) / statistics.median(firsts):.2f})  "
            f"candidates {len(doc['candidates'])}: {len(profiled) - screened} profiled in full, {screened} screened out"
        )
        print(f"{'':12s} last first run: {where_time_went(doc)}")
        print(
            f"{'':12s} best {best}: {record['best_point']['throughput']:,.0f}/s @ batch "
            f"{record['best_point']['batch']}, {record.get('speedup', 0):.2f}x eager"
        )


if __name__ == "__main__":
    main()
