"""Triton Model Navigator against `sextant optimize`: the same three models and samples, one tool after
the other per model; the wall time of each, each one's pick, and each pick's speed at batch 1 and 32
and its error against eager torch, re-measured in fresh processes on inputs neither tool saw.

    python benchmarks/vs_navigator.py [mlp resnet transformer] [--windows 5] [--window-s 0.5]
        [--navigator-venv .venv-navigator] [--navigator-profile JSON] [--navigator-timeout 1800]
        [--keep DIR] [--no-history-runs]

Navigator (``triton-model-navigator==0.14.0``) lives in an environment of its own, made on first use
and reused while its stamp matches (``--navigator-venv``, default ``.venv-navigator``): its plain
install fails on a CPU machine (it requires tensorrt, onnxruntime-gpu and nvidia-modelopt), so it is
installed with ``--no-deps`` and then ``navigator/requirements.txt``, its dependencies less those.
It runs through ``navigator/run.py`` in that environment, after the two changes it needs without a
GPU (see there): ``nav.torch.optimize(model, samples, target_device=CPU, optimization_profile=
OptimizationProfile(max_batch_size=64))``. The bound is sextant's default max batch size: on CPU
Navigator does not search for one (it does only for CUDA), so by default it profiles batch sizes
1, 2, 4, ... up to 2**30 until throughput stops growing, which on this machine ran past 15 minutes
for the MLP. ``--navigator-profile '{}'`` gives Navigator's own defaults, other JSON other
``OptimizationProfile`` fields; ``--navigator-timeout`` stops a Navigator run that takes too long
(its log's end is printed). Everything else is Navigator's default, including its torch runners'
autocast (``TorchConfig(autocast=True)``: bfloat16 on CPU, which makes them slow where the CPU has
no native bfloat16 and far less exact than fp32); ``--navigator-fp32`` turns it off.

Per model: each tool's wall time (a process of its own: start-up, imports and the model's build
included) and where it went (sextant: the ``seconds`` of status.json's steps and candidates;
Navigator: the ``Execution time`` of each command in its navigator.log, and the exception of each
command that failed), each pick, and per batch the milliseconds per call of eager torch and of each
pick, each in a fresh process loading the pick the tool's own way
(``sextant.load(ws).best_for_batch(batch).load()``: the regime pick that fits the batch, as
``deploy`` takes it; ``nav.package.load_from_workspace(ws).get_runner()``), timed
by the same code (``navigator/measure.py``): one warm-up window, then the median of ``--windows``
windows of ``--window-s`` seconds. The error is the max abs difference from eager torch on the same
fresh inputs; "correct" is every element within sextant's fp32 tolerance (atol 1e-4 or rtol 1e-3).
Then, for the MLP, a GEMM-bound check (:func:`gemm_check`).

Each sextant run has a cache folder of its own, empty at its start, so nothing is cached from
before and this machine's history (kept there) holds nothing to read: the first runs learn from
nothing. Each run of either tool also has an empty torch.compile cache (``TORCHINDUCTOR_CACHE_DIR``).
Then (unless ``--no-history-runs``, and when more than one model ran) each model runs again, in a
fresh cache folder whose history holds the first runs of the *other* models of this run
(:func:`teach`), which says what it measured first from it. Goals: sextant's wall time <= 0.5 of
Navigator's with no history and <= 0.2 with the others' history, its pick never slower than
Navigator's, always correct; the MLP's pick at >= 70 % of the machine's matmul rate.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import sextant
from _run import ROOT, cpu
from _run import optimize as sextant_optimize

NAVIGATOR = "triton-model-navigator==0.14.0"
HERE = ROOT / "benchmarks" / "navigator"
REQUIREMENTS = HERE / "requirements.txt"
STAMP = "sextant-navigator.stamp"
MODELS = ("mlp", "resnet", "transformer")
BATCHES = (1, 32)
SEED = 7  # the fresh inputs' seed (the examples' samples use 0)
#: torch.compile's on-disk cache: each tool's run gets an empty one, as on a fresh machine (a warm
#: one in /tmp made Navigator's compile of the MLP 2.4 s where it had been 15.5 s)
INDUCTOR_CACHE = "TORCHINDUCTOR_CACHE_DIR"
GOAL, GOAL_HISTORY = 0.5, 0.2  # sextant's wall time over Navigator's: with no history, with the others' history

TIME_SEXTANT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np, measure, sextant
name, workspace, batch, seed, windows, window_s = sys.argv[2:]
ex = measure.example(name)
package = sextant.load(workspace)
signature = package.document.signature
runner = package.best_for_batch(int(batch)).load(trust_source=True)  # the regime pick for this batch
inputs = measure.fresh_inputs(ex.samples()[0], int(batch), int(seed))
feed = inputs if isinstance(inputs, dict) else {signature.inputs[0].name: inputs}
reference = measure.eager(ex.build(), inputs)
out = runner.infer(feed)
got = [np.asarray(out[o.name]) for o in signature.outputs]
seconds = measure.seconds_per_call(lambda: runner.infer(feed), int(windows), float(window_s))
runner.close()
print(json.dumps(measure.result(got, reference, seconds)))
"""

TIME_EAGER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import measure, torch
name, batch, seed, windows, window_s = sys.argv[2:]
ex = measure.example(name)
model = ex.build()
inputs = measure.fresh_inputs(ex.samples()[0], int(batch), int(seed))
seconds = measure.seconds_per_call(lambda: measure.eager(model, inputs), int(windows), float(window_s))
print(json.dumps({"seconds": seconds, "max_abs_error": 0.0, "within_fp32": True}))
"""

GEMM = """
import json, sys
sys.path.insert(0, sys.argv[1])
import measure, torch
batch, windows, window_s = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
linears = [m for m in measure.example("mlp").build().modules() if isinstance(m, torch.nn.Linear)]
flops = sum(2 * m.in_features * m.out_features for m in linears)
weights = [torch.randn(m.in_features, m.out_features) for m in linears]
x = torch.randn(batch, linears[0].in_features)
def chain():
    h = x
    for w in weights:
        h = torch.mm(h, w)
square = torch.randn(1024, 1024)
rates = {}
for threads in sorted({int(t) for t in sys.argv[5:]}):
    torch.set_num_threads(threads)
    with torch.inference_mode():
        layers = measure.seconds_per_call(chain, windows, window_s)
        big = measure.seconds_per_call(lambda: torch.mm(square, square), windows, window_s)
    rates[threads] = {"layers": flops * batch / min(layers), "square": 2 * 1024**3 / min(big)}
print(json.dumps({"flops_per_sample": flops, "rates": rates}))
"""


@dataclass(frozen=True)
class Timing:
    """A fresh process's timing of one pick at one batch: seconds per call of each window, its max
    abs error against eager and whether every element is within sextant's fp32 tolerance (atol 1e-4
    or rtol 1e-3); ``error`` when the process failed."""

    seconds: tuple[float, ...] = ()
    max_abs_error: float | None = None
    within_fp32: bool = False
    error: str | None = None

    @property
    def ms(self) -> float:
        return statistics.median(self.seconds) * 1e3

    def describe(self, error: bool = True) -> str:
        if self.error:
            return f"failed: {self.error}"
        spread = f"[{min(self.seconds) * 1e3:.3f}-{max(self.seconds) * 1e3:.3f}]"
        if not error:
            return f"{self.ms:.3f} ms {spread}"
        verdict = "" if self.within_fp32 else ", outside fp32 tolerance"
        return f"{self.ms:.3f} ms {spread} err {self.max_abs_error:.1e}{verdict}"


def child(argv: list[str], timeout: float = 900) -> Timing:
    """Run a timing process; its last stdout line is a JSON ``{seconds, max_abs_error}``."""
    try:
        result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Timing(error=f"timed out after {timeout:.0f} s")
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        return Timing(error=tail(result.stderr, 1))
    doc = json.loads(lines[-1])
    return Timing(tuple(doc["seconds"]), doc["max_abs_error"], doc["within_fp32"])


def tail(text: str, lines: int) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(line.strip()[:300] for line in kept) or "no output"


def navigator_python(venv: Path) -> Path:
    """Navigator's environment's Python, made first (``--no-deps``, then the requirements) when its
    stamp does not match what this script installs."""
    python = venv / "bin" / "python"
    stamp = hashlib.sha256(f"{NAVIGATOR}\n{REQUIREMENTS.read_text()}".encode()).hexdigest()
    if python.exists() and (venv / STAMP).is_file() and (venv / STAMP).read_text() == stamp:
        return python
    print(f"installing {NAVIGATOR} into {venv} (once; a few minutes) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt")]
    for args in (["--no-deps", NAVIGATOR], ["-r", str(REQUIREMENTS)]):
        done = subprocess.run([*pip, *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"installing Navigator failed (pip {' '.join(args)}):\n{done.stderr[-3000:]}")
    (venv / STAMP).write_text(stamp)
    return python


def navigator_steps(log: Path) -> list[tuple[str, float, str | None]]:
    """Each command of a navigator.log: its name and what it ran on, its seconds, and the first
    exception its traceback names (``None`` when it had none). A command runs from ``Command 'X'
    started`` to ``Execution time: N[s]``, then its memory report's ``Model key:``/``Runner:``
    lines name what it ran on."""
    steps: list[list] = []
    if not log.is_file():
        return []
    for line in log.read_text(errors="replace").splitlines():
        if m := re.search(r"Command '(\w+)' started", line):
            steps.append([m.group(1), [], 0.0, None])
        elif steps and (m := re.search(r"Execution time: ([\d.]+)\[s\]", line)):
            steps[-1][2] = float(m.group(1))
        elif steps and (m := re.search(r"(?:Model key|Runner): (\S+)", line)):
            steps[-1][1].append(m.group(1))
        elif steps and steps[-1][3] is None and (m := re.match(r"([\w.]+(?:Error|Exception|Fail)): (.+)", line)):
            steps[-1][3] = f"{m.group(1).rsplit('.', 1)[-1]}: {m.group(2)[:110]}"
    return [(f"{name}[{'/'.join(on)}]" if on else name, seconds, error) for name, on, seconds, error in steps]


def sextant_steps(document) -> list[tuple[str, float]]:
    """Each step and candidate of a package's document with its recorded seconds."""
    records = {**document.steps, **document.candidates}
    return [(cid, record.seconds) for cid, record in records.items() if record.seconds]


def where(steps: list[tuple[str, float]], groups: dict[str, str], top: int = 4) -> str:
    """Seconds by group (the first regex of ``groups`` that a step's name matches), then the
    largest single steps."""
    totals: dict[str, float] = defaultdict(float)
    for name, seconds in steps:
        group = next((g for g, pattern in groups.items() if re.search(pattern, name)), "other")
        totals[group] += seconds
    by_group = ", ".join(f"{g} {s:.1f}" for g, s in sorted(totals.items(), key=lambda i: -i[1]))
    largest = ", ".join(f"{n} {s:.1f}" for n, s in sorted(steps, key=lambda i: -i[1])[:top])
    return f"{by_group} s; largest: {largest} s"


NAV_GROUPS = {"export": r"^Export|GraphSurgeon", "correctness": r"^Correctness", "profiling": r"^Performance"}
SEXTANT_GROUPS = {"candidates (load, check, profile)": r"@", "exports/conversions": r"."}


def run_navigator(
    python: Path, name: str, work: Path, profile: str, fp32: bool, timeout: float
) -> tuple[float, dict, list]:
    """Navigator's optimize in its own process, stopped after ``timeout`` seconds: wall seconds,
    run.py's result, its commands (:func:`navigator_steps`)."""
    workspace, result = work / "navigator", work / "navigator.json"
    argv = [str(python), str(HERE / "run.py"), "optimize", name, str(workspace), str(result), "--profile", profile]
    argv += ["--fp32"] if fp32 else []
    start = time.perf_counter()
    with open(work / "navigator.out", "w") as out:
        try:
            env = {**os.environ, INDUCTOR_CACHE: str(work / "inductor-navigator")}
            returncode = subprocess.run(
                argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, env=env
            ).returncode
        except subprocess.TimeoutExpired:
            returncode = None
    wall = time.perf_counter() - start
    doc = json.loads(result.read_text()) if result.is_file() else {}
    doc["finished"] = returncode == 0
    if returncode is None:
        doc["error"] = f"stopped by this script after {timeout:.0f} s (--navigator-timeout)"
    elif returncode != 0 and "error" not in doc:
        doc["error"] = f"exit {returncode}"
    if "error" in doc:
        log = workspace / "navigator.log"
        text = log.read_text(errors="replace") if log.is_file() else (work / "navigator.out").read_text()
        # its own lines, less the memory report it writes after every command, message only
        lines = [line.split(" - ", 1)[-1] for line in text.splitlines() if "gpu_memory.py" not in line]
        doc["log_tail"] = tail("\n".join(lines), 6)
    return wall, doc, navigator_steps(workspace / "navigator.log")


def speed(t: Timing) -> str:
    return "-" if t.error else f"{t.ms:.3f} ms"


def correct(t: Timing) -> str:
    return "-" if t.error else ("yes" if t.within_fp32 else "NO")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="*", default=list(MODELS), help=f"some of {', '.join(MODELS)}")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--window-s", type=float, default=0.5)
    parser.add_argument("--navigator-venv", type=Path, default=ROOT / ".venv-navigator")
    parser.add_argument(
        "--navigator-profile",
        help="Navigator's OptimizationProfile fields as JSON; default: max_batch_size = sextant's default max batch "
        "size; '{}' for Navigator's own defaults (on CPU: batch sizes doubling up to 2**30 until throughput stops "
        "growing)",
    )
    parser.add_argument(
        "--navigator-fp32",
        action="store_true",
        help="turn off the autocast (bfloat16 on CPU) that Navigator's torch runners use by default",
    )
    parser.add_argument("--navigator-timeout", type=float, default=1800, help="seconds for one Navigator optimize")
    parser.add_argument("--keep", type=Path, help="keep both tools' workspaces under this folder")
    parser.add_argument(
        "--no-history-runs", action="store_true", help="skip the second sextant run of each model, with history"
    )
    args = parser.parse_args()
    if unknown := set(args.models) - set(MODELS):
        parser.error(f"unknown {', '.join(sorted(unknown))}; known: {', '.join(MODELS)}")
    nav_python = navigator_python(args.navigator_venv.resolve())
    if args.navigator_profile is None:
        args.navigator_profile = json.dumps({"max_batch_size": sextant.OptimizeOptions().max_batch_size})
    print(f"CPU: {cpu()}; load average {os.getloadavg()[0]:.1f} at start", flush=True)
    fp32 = ", custom_configs=[Torch/TorchScript/TorchExport config(autocast=False)]" if args.navigator_fp32 else ""
    print(
        f"Navigator: nav.torch.optimize(target_device=CPU, optimization_profile={args.navigator_profile}{fp32})"
        + ("" if fp32 else "; its torch runners autocast to bfloat16 (its default)")
    )
    print(
        f"each model: Navigator's optimize, then sextant's, then the timings (eager, Navigator's pick, sextant's "
        f"pick, alternating per batch); ms per call: median [min-max] of {args.windows} windows of {args.window_s} s",
        flush=True,
    )
    root = args.keep or Path(tempfile.mkdtemp(prefix="vs-navigator-"))
    window = [str(args.windows), str(args.window_s)]
    summary = []
    try:
        for name in args.models:
            work = root / name
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            print(f"\n{name} (examples/{name}.py)", flush=True)

            nav_wall, nav, nav_steps = run_navigator(
                nav_python, name, work, args.navigator_profile, args.navigator_fp32, args.navigator_timeout
            )
            pick = nav.get("pick")
            print(
                f"  navigator: wall {nav_wall:6.1f} s"
                + (f" (optimize() {nav['seconds']:.1f} s)" if "seconds" in nav else "")
                + f"; pick {describe(pick)}"
            )
            for step, _, error in nav_steps:
                if error:
                    print(f"    failed: {step}: {error}")
            if "error" in nav:
                print(f"    stopped: {nav['error'][:400]}\n    log: {nav.get('log_tail', '')}")
            if nav_steps:
                print(f"    time: {where([(n, sec) for n, sec, _ in nav_steps], NAV_GROUPS)}", flush=True)

            ws = work / "sextant"
            sx_wall, document = run_sextant(name, ws, work / "cache")
            ratio = sx_wall / nav_wall
            unfinished = " (Navigator did not finish: an upper bound)" if not nav["finished"] else ""
            print(f"  wall time sextant/navigator: {ratio:.2f}{unfinished} (goal <= {GOAL:.2f})", flush=True)

            row = {"model": name, "ratio": ratio, "nav_wall": nav_wall, "batches": {}}
            for batch in BATCHES:
                common = [str(batch), str(SEED), *window]
                eager = child([sys.executable, "-c", TIME_EAGER, str(HERE), name, *common])
                navt = (
                    child([str(nav_python), str(HERE / "run.py"), "time", name, str(work / "navigator"), *common])
                    if pick
                    else Timing(error="no pick")
                )
                sxt = child([sys.executable, "-c", TIME_SEXTANT, str(HERE), name, str(ws), *common])
                row["batches"][batch] = (navt, sxt)
                vs = f"; sextant's pick {navt.ms / sxt.ms:.2f}x as fast" if not (navt.error or sxt.error) else ""
                print(
                    f"  batch {batch:2d}: eager {eager.describe(error=False)} | navigator {navt.describe()} | "
                    f"sextant {sxt.describe()}{vs}",
                    flush=True,
                )
            if name == "mlp":
                row["gemm"] = gemm_check(ws, document, document.candidates[document.best].best_point.batch, window)
            summary.append(row)
        if not args.no_history_runs and len(summary) > 1:
            print(f"\nwith history: each model again, taught by the others' runs above (goal <= {GOAL_HISTORY})")
            for row in summary:
                name, work = row["model"], root / row["model"]
                teachers = [r["model"] for r in summary if r is not row]
                runs = teach(work / "cache-history", [root / t / "cache" for t in teachers])
                print(f"\n{name}: history of {runs} runs ({', '.join(teachers)})", flush=True)
                wall, document = run_sextant(name, work / "sextant-history", work / "cache-history")
                first = document.history.first if document.history else ()
                print(f"    measured first from history: {', '.join(first) or 'nothing'}")
                row["history_ratio"] = wall / row["nav_wall"]
                print(f"  wall time sextant with history/navigator: {row['history_ratio']:.2f}", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)

    print(
        f"\nsummary (goals: wall ratio <= {GOAL:.2f}, with history <= {GOAL_HISTORY:.2f}; sextant's pick never "
        "slower; correct: within fp32 tolerance)"
    )
    for row in summary:
        cells = []
        for batch, (navt, sxt) in row["batches"].items():
            faster = "-" if navt.error or sxt.error else ("ok" if sxt.ms <= navt.ms else "SLOWER")
            cells.append(
                f"b{batch}: nav {speed(navt)}, sextant {speed(sxt)} {faster}, correct nav {correct(navt)} "
                f"sextant {correct(sxt)}"
            )
        ratio = f"{row['ratio']:.2f} {'ok' if row['ratio'] <= GOAL else 'MISSED'}"
        if (taught := row.get("history_ratio")) is not None:
            ratio += f", with history {taught:.2f} {'ok' if taught <= GOAL_HISTORY else 'MISSED'}"
        print(f"  {row['model']:12s} wall ratio {ratio}; " + "; ".join(cells))
        if gemm := row.get("gemm"):
            print(f"  {'':12s} {gemm}")


def run_sextant(name: str, ws: Path, cache: Path):
    """`sextant optimize` on ``examples/NAME.py`` with the cache folder ``cache`` (its history read
    and written whatever this process's environment says): its wall time and document, printed."""
    env = {"SEXTANT_CACHE_DIR": str(cache), "SEXTANT_HISTORY": "on", INDUCTOR_CACHE: str(cache / "inductor")}
    wall, _ = sextant_optimize(f"examples/{name}.py:build", ws, "--samples", f"examples/{name}.py:samples", env=env)
    document = sextant.load(ws).document
    best = document.best
    point = document.candidates[best].best_point
    regimes = (document.selection.regimes if document.selection else None) or {}
    picks = "; ".join(f"{regime} pick {cid}" for regime, cid in regimes.items())
    print(
        f"  sextant:   wall {wall:6.1f} s (run {document.run.seconds:.1f} s); pick {best} "
        f"(its profile: {point.throughput:,.0f}/s at batch {point.batch})" + (f"; {picks}" if picks else "")
    )
    for cid, record in {**document.steps, **document.candidates}.items():
        if record.status.value in ("failed", "incorrect"):
            print(f"    {record.status.value}: {cid}: {(record.reason or '').strip()[:150]}")
    print(f"    time: {where(sextant_steps(document), SEXTANT_GROUPS)}")
    return wall, document


def teach(cache: Path, teachers: list[Path]) -> int:
    """A fresh cache folder ``cache`` whose only content is this machine's history file holding the
    runs recorded in the ``teachers``' cache folders (each teacher's first run wrote one, with
    nothing to read); how many runs it holds."""
    from sextant.history import SCHEMA

    shutil.rmtree(cache, ignore_errors=True)
    files: dict[str, list] = {}
    for folder in teachers:
        for path in sorted((folder / "history").glob("*.json")):
            files.setdefault(path.name, []).extend(json.loads(path.read_text())["runs"])
    for filename, runs in files.items():
        (cache / "history").mkdir(parents=True, exist_ok=True)
        (cache / "history" / filename).write_text(json.dumps({"schema": SCHEMA, "runs": runs}))
    return sum(len(runs) for runs in files.values())


def describe(pick: dict | None) -> str:
    """Navigator's pick: model and runner, its runner settings, its own best profiled point."""
    if not pick:
        return "none"
    config = {k: v for k, v in pick.get("runner_config", {}).items() if k != "device" and v is not None}
    settings = f" {config}" if config else ""
    best = max(pick["profile"], key=lambda p: p["throughput"], default=None)
    profiled = f" (its profile: {best['throughput']:,.0f}/s at batch {best['batch']})" if best else ""
    return f"{pick['model']} on {pick['runner']}{settings}{profiled}"


def gemm_check(ws: Path, document, batch: int, window: list[str]) -> str:
    """The MLP's sextant pick at its best batch against torch's fp32 matmul on the MLP's own layer
    shapes at that batch (and 1024x1024x1024 for scale), at sextant's thread count and at one
    thread. The share is against the faster of the two: on a shared machine torch's threads can
    lose more to each other than they gain. Each is its best window: the least disturbed one is
    the nearest to what each can do."""
    threads = document.host.threads
    pick = child([sys.executable, "-c", TIME_SEXTANT, str(HERE), "mlp", str(ws), str(batch), str(SEED), *window])
    result = subprocess.run(
        [sys.executable, "-c", GEMM, str(HERE), str(batch), *window, str(threads), "1"],
        capture_output=True,
        text=True,
    )
    if pick.error or result.returncode != 0:
        line = f"GEMM check failed: {pick.error or tail(result.stderr, 3)}"
    else:
        gemm = json.loads(result.stdout.strip().splitlines()[-1])
        per_sample = gemm["flops_per_sample"]
        throughput = batch / min(pick.seconds)
        achieved = per_sample * throughput
        rates = ", ".join(
            f"{n} thread{'s' if n != '1' else ''} {r['layers'] / 1e9:.1f} GFLOP/s (1024^3: {r['square'] / 1e9:.1f})"
            for n, r in gemm["rates"].items()
        )
        machine = max(r["layers"] for r in gemm["rates"].values())
        options = dict(document.candidates[document.best].options)
        line = (
            f"GEMM check: sextant's pick at batch {batch}: {throughput:,.0f}/s x {per_sample / 1e6:.3f} MFLOP = "
            f"{achieved / 1e9:.1f} GFLOP/s (its settings: {options or 'defaults'}); torch fp32 matmul on the MLP's "
            f"layer shapes at batch {batch}: {rates} (sextant uses {threads}); share of the faster: "
            f"{achieved / machine:.0%} (goal >= 70%); best windows"
        )
    print(f"  {line}", flush=True)
    return line


if __name__ == "__main__":
    main()
