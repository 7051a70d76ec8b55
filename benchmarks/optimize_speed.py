"""Wall time of a full default `sextant optimize` of the bundled examples, first run and cached re-run.

    python benchmarks/optimize_speed.py [mlp resnet transformer] [--repeat N]

Prints, per example: the first run's wall time, the cached re-run's, their ratio, the number of
candidates, the winner and its speedup over eager. Medians over --repeat runs (each in a fresh
workspace; the inductor cache is shared, as between a user's runs).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _run import optimize


def run(example: str, ws: Path) -> tuple[float, dict]:
    return optimize(f"examples/{example}.py:build", ws, "--samples", f"examples/{example}.py:samples")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("examples", nargs="*", default=["mlp", "resnet", "transformer"])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    for example in args.examples:
        firsts, cached = [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                first, doc = run(example, Path(tmp) / "ws")
                again, _ = run(example, Path(tmp) / "ws")
            firsts.append(first)
            cached.append(again)
        best = doc["selection"]["best"]
        record = doc["candidates"][best]
        spread = f" (min {min(firsts):.1f}, max {max(firsts):.1f})" if len(firsts) > 1 else ""
        print(
            f"{example:12s} first {statistics.median(firsts):6.1f} s{spread}  cached {statistics.median(cached):5.1f} s "
            f"(ratio {statistics.median(cached) / statistics.median(firsts):.2f})  candidates {len(doc['candidates'])}  "
            f"best {best}: {record['best_point']['throughput']:,.0f}/s @ batch {record['best_point']['batch']}, "
            f"{record.get('speedup', 0):.2f}x eager"
        )


if __name__ == "__main__":
    main()
