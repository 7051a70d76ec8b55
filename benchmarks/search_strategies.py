"""quick and optuna against brute force: share of the optimum reached and measurements spent.

    python benchmarks/search_strategies.py [--real]

Synthetic: a cost surface with a known optimum (sextant_search.synthetic), several seeds for
optuna. --real: `sextant optimize --search NAME` on the MLP example's ONNX Runtime options (CPU),
the best throughput each strategy found and how many configurations it measured.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from pathlib import Path

from _run import optimize
from sextant.objective import Objective
from sextant.optimizer.budget import Budget
from sextant.search import ResultsStore, run_search
from sextant_search.strategies import Brute, OptunaSearch, Quick
from sextant_search.synthetic import SPACE, metrics, optimum


def synthetic() -> None:
    grid = math.prod(len(p.grid()) for p in SPACE)
    for label, objective, cap in (
        ("unconstrained", Objective(), None),
        ("p99 <= 8 ms", Objective(max_p99_ms=8.0), 8.0),
    ):
        _, best = optimum(cap)
        print(f"synthetic surface, {grid} configurations, {label}: optimum {best['throughput']:.0f}/s")
        for name, make in (
            ("brute", lambda s: Brute(SPACE)),
            ("quick", lambda s: Quick(SPACE)),
            ("optuna", lambda s: OptunaSearch(SPACE, seed=s, trials=80)),
        ):
            shares, counts = [], []
            for seed in range(5 if name == "optuna" else 1):
                with tempfile.TemporaryDirectory() as tmp:
                    store = ResultsStore(Path(tmp) / "s.sqlite")
                    measure = lambda c: (metrics(c), None)  # noqa: E731
                    result = run_search(make(seed), measure, objective, store, Budget(), key="x", hardware="h")
                    store.close()
                shares.append(result.best_metrics["throughput"] / best["throughput"] if result.best_metrics else 0.0)
                counts.append(result.measured)
            spread = f" (min {min(shares):.1%}, {len(shares)} seeds)" if len(shares) > 1 else ""
            print(
                f"  {name:7s} reaches {statistics.median(shares):6.1%} of the optimum{spread}, "
                f"measuring {statistics.median(counts):.0f} ({statistics.median(counts) / grid:.1%} of the grid)"
            )


def real() -> None:
    print("real runner: ONNX Runtime options of the MLP example on this CPU")
    for name in ("brute", "quick", "optuna"):
        with tempfile.TemporaryDirectory() as tmp:
            _, doc = optimize(
                "examples/mlp.py:build",
                Path(tmp) / "ws",
                "--samples",
                "examples/mlp.py:samples",
                "--runners",
                "onnxruntime",
                "--formats",
                "onnx",
                "--search",
                name,
            )
        (searched,) = doc["search"].values()
        best = doc["candidates"][doc["selection"]["best"]]["best_point"]
        print(
            f"  {name:7s} measured {searched['measured']:3d} configurations in {searched['configurations']}; best "
            f"{best['throughput']:,.0f}/s with {searched['best_options']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--real", action="store_true")
    args = parser.parse_args()
    synthetic()
    if args.real:
        real()


if __name__ == "__main__":
    main()
