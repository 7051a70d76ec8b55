"""A synthetic cost surface with a known optimum, for tests and the strategy benchmark.

Throughput saturates with batch size, peaks at 4 threads and at level 5, and depends on a
categorical mode; p99 latency grows with batch size. Nothing is measured: each call is instant.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import Any

from sextant.api import Param

SPACE = (
    Param("threads", "exponential", (1, 64), 1),
    Param("batch", "exponential", (1, 64), 1),
    Param("mode", "categorical", ("a", "b", "c"), "a"),
    Param("level", "linear", (1, 8), 1),
)


def metrics(config: Mapping[str, Any]) -> dict[str, float]:
    batch, threads, level = config["batch"], config["threads"], config["level"]
    throughput = (
        1000.0
        * batch
        / (1 + batch / 2)
        * max(0.05, 1 - 0.08 * (math.log2(threads) - 2) ** 2)
        * {"a": 1.0, "b": 1.15, "c": 0.9}[config["mode"]]
        * (1 - 0.02 * (level - 5) ** 2)
    )
    p99 = 1000.0 * batch / throughput * 1.3
    return {"throughput": throughput, "p99_ms": p99, "p50_ms": p99 / 1.3}


def optimum(max_p99_ms: float | None = None) -> tuple[dict[str, Any], dict[str, float]]:
    """The best configuration by exhaustive evaluation (what a strategy should find)."""
    best: tuple[dict[str, Any], dict[str, float]] | None = None
    for values in itertools.product(*(p.grid() for p in SPACE)):
        config = dict(zip((p.name for p in SPACE), values))
        m = metrics(config)
        if max_p99_ms is not None and m["p99_ms"] > max_p99_ms:
            continue
        if best is None or m["throughput"] > best[1]["throughput"]:
            best = (config, m)
    assert best is not None
    return best
