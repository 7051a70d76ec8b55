"""How big report.html gets and how long it takes, for runs of 10 to 100+ candidates.

Each run is a made-up status.json (7 batch sizes per candidate, two outputs, memory, every tenth
candidate failed with a log tail), written as a package and reported with `sextant report` in a
subprocess (interpreter start included). With Chromium installed it also times the browser: from
navigation until the page's script has drawn every plot (its own ``performance.now()``, read over
the DevTools protocol; no virtual time). Medians (min-max) over --repeat runs.

    python benchmarks/report_size.py [--candidates 10,100,300] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import json
import os
import random
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


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
    it reads commands on fd 3 and answers on fd 4, each message JSON ending in a NUL byte)."""

    def __init__(self, executable: str, profile: Path) -> None:
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()

        def fds() -> None:  # in the child: the pipes become fds 3 and 4, nothing else of ours stays open
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser)]
            for fd in (self._out, self._in, to_browser, from_browser):
                os.close(fd)
            os.dup2(high[0], 3)  # inheritable: dup2 clears close-on-exec
            os.dup2(high[1], 4)
            for fd in high:
                os.close(fd)

        self.process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            close_fds=False,  # fds 3 and 4 are made in preexec_fn; close_fds would close them after it
            preexec_fn=fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next = 0
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def call(self, method: str, session: str | None = None, **params: object) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._in, 1 << 16)
                if not chunk:
                    raise SystemExit("Chromium closed the DevTools pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise SystemExit(f"{method}: {reply['error']}")
                return reply["result"]

    def evaluate(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", self.session, expression=expression, returnByValue=True)
        return result["result"].get("value")

    def close(self) -> None:
        with contextlib.suppress(SystemExit):
            self.call("Browser.close")
        self.process.wait(timeout=60)
        os.close(self._in)
        os.close(self._out)


READY = (
    "(() => { const m = document.getElementById('report-ready');"
    " return m ? [Number(m.getAttribute('data-ms')), window.__reportErrors.length] : null; })()"
)


def draw_seconds(executable: str, page: Path, work: Path) -> float:
    """Seconds from navigating to ``page`` until every plot is drawn, as the page measured it."""
    browser = Browser(executable, Path(tempfile.mkdtemp(dir=work)))
    try:
        browser.call("Page.navigate", browser.session, url=page.as_uri())
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            state = browser.evaluate(READY)
            if state is not None:
                ms, errors = state
                if errors:
                    raise SystemExit(f"{page}: the page hit {errors} script errors")
                return ms / 1000
            time.sleep(0.05)
        raise SystemExit(f"{page}: not drawn within 300 s")
    finally:
        browser.close()


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
                drawn = [draw_seconds(browser, package / "report.html", work) for _ in range(args.repeat)]
                print(f"{'':16s}Chromium: every plot drawn {spread(drawn, 's')} after navigation started")


if __name__ == "__main__":
    main()
