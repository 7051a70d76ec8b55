"""The profiler's own cost per call, against a model of known latency (a 100 µs busy loop).

For each of --repeat rounds: time N bare calls back to back (no per-call timing) to get the true
latency, then let the profiler measure the same function; overhead = reported mean / true - 1.
Prints medians and spread, then the real-clock check the tests no longer make (they run on a fake
clock): a sweep of a model whose cost does not grow with the batch, where throughput should scale with
the batch size (ideal: 8 times at batch 8).

    python benchmarks/profiler_overhead.py [--repeat 7] [--micros 100]
"""

from __future__ import annotations

import argparse
import statistics
import time

from sextant.profiler import ProfilerConfig, measure, sweep


def busy(micros: float):
    ns = int(micros * 1000)
    clock = time.perf_counter_ns

    def run() -> None:
        end = clock() + ns
        while clock() < end:
            pass

    return run


def bare_mean_ms(fn, seconds: float) -> float:
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            fn()
        calls += 100
    return (time.perf_counter() - start) * 1000 / calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--micros", type=float, default=100.0)
    args = parser.parse_args()
    fn = busy(args.micros)
    overheads = []
    for _ in range(args.repeat):
        true_ms = bare_mean_ms(fn, 0.3)
        point = measure(fn, 1, ProfilerConfig())
        overheads.append(point.mean_ms / true_ms - 1)
    print(
        f"model {args.micros:.0f} us: profiler overhead median {statistics.median(overheads) * 100:+.2f} % "
        f"(min {min(overheads) * 100:+.2f}, max {max(overheads) * 100:+.2f}) of the reported latency, {args.repeat} rounds"
    )
    points = []
    stopped = sweep(lambda batch: fn, ProfilerConfig(max_batch=8, sparse=False), points.append)
    print(
        f"fixed-cost model: throughput at batch {points[-1].batch} is {points[-1].throughput / points[0].throughput:.2f} x "
        f"batch 1 (ideal {points[-1].batch}), {stopped.stopped}"
    )


if __name__ == "__main__":
    main()
