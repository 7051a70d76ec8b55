"""How long `sextant --help` and `sextant plugins --json` take with every plugin installed, against
`python -c "import torch"` for scale. Medians (min-max) over --repeat runs.

    python benchmarks/startup.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(args: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    repeat = parser.parse_args().repeat
    cli = [sys.executable, "-m", "sextant.cli"]
    for label, args in (
        ("sextant --help", [*cli, "--help"]),
        ("sextant plugins --json", [*cli, "plugins", "--json"]),
        ("python -c 'import torch'", [sys.executable, "-c", "import torch"]),
    ):
        times = timed(args, repeat)
        print(
            f"{label:28s} median {statistics.median(times) * 1000:6.0f} ms  (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})"
        )


if __name__ == "__main__":
    main()
