#!/usr/bin/env python3
"""Check sextant's CUDA paths on a bare GPU machine: ``python3 gpu/check.py`` (``make test-gpu``).

For a machine with Python, a CUDA build of PyTorch and no network. Each step is bounded by its own
timeout, and all of them by ``--budget-s`` (570 s by default: under 10 minutes on an H100):

1. cuda: the GPU and driver (nvidia-smi), Python, torch and the CUDA it was built for. Where no
   CUDA device can be used, every later step is skipped with that reason and the check exits 0.
2. wheels: what the distributions need (``gpu/needs.py``), met by the machine or by a wheel carried
   in ``gpu/wheels``; what is missing, and the ``pip download`` command that fetches it elsewhere.
3. install: this tree's distributions, built with ``--no-build-isolation`` and installed with
   ``--no-deps --no-index`` into a folder of their own (``--target OUT/site``) that every later step
   puts first on ``PYTHONPATH``. Not a venv: a venv made with ``--system-site-packages`` sees only
   the base interpreter's packages, so a torch installed in a venv or a conda environment would be
   missed; a target folder works with any interpreter and changes nothing in it (its torch above all).
4. plugins: ``sextant plugins --json``: what can run or build on cuda here, and why the rest cannot.
5. tests: ``pytest -m gpu`` over the test files that mark tests ``gpu``, one row per test.
6. examples: ``sextant optimize examples/X.py:build --device cuda`` for each example, then each
   again with ``--precision auto`` in its workspace (the fp32 work is reused), with a short profiler
   (a check, not a benchmark): the pick, its speedup over the source's eager runner on cuda, and every cuda
   candidate that failed to run or, at fp32, gave wrong outputs.

Then ONE table: each step passed, failed, skipped (with the exact reason) or info; the same rows in
``OUT/summary.json`` and every command's output in ``OUT/logs``. Exit 1 when a step failed, else 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import needs  # noqa: E402 - gpu/ is not a package: the script's own folder

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ("mlp", "resnet", "transformer", "keras_cnn")
#: what an example needs beyond torch (the check skips it, saying so, where that is missing)
EXAMPLE_NEEDS = {"keras_cnn": ("keras", "tensorflow")}
#: the example runs' profiler: short windows and batch budgets
SHORT_PROFILE = ("--max-batch-size", "64", "--batch-budget-s", "0.5", "--window-ms", "10")
TEST_DIRS = ("tests", "core/tests", "plugins")
PASSED, FAILED, SKIPPED, INFO = "passed", "failed", "skipped", "info"
TORCH_PROBE = """import json, torch
facts = {"torch": torch.__version__, "cuda": torch.version.cuda, "available": torch.cuda.is_available()}
if facts["available"]:
    p = torch.cuda.get_device_properties(0)
    facts.update(gpu=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1))
print(json.dumps(facts))
"""


@dataclass(frozen=True)
class Row:
    """One line of the summary."""

    step: str
    result: str
    detail: str
    seconds: float | None = None


@dataclass(frozen=True)
class Ran:
    """What one bounded command did; ``code`` is ``None`` when it was killed at its timeout."""

    code: int | None
    out: str
    err: str
    seconds: float

    def tail(self, lines: int = 3) -> str:
        text = (self.err.strip() or self.out.strip()).splitlines()
        return " | ".join(line.strip() for line in text[-lines:])

    def error(self) -> str:
        """The first ``error:`` line sextant printed, else the last line."""
        return next((line for line in self.err.splitlines() if line.startswith("error:")), self.tail(1))


class Deadline:
    """The seconds left of the whole check."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())


def run(command: list[str], timeout: float, log: Path, env: dict[str, str] | None = None) -> Ran:
    """Run ``command`` from the tree's root, its output into files (a child that outlives it cannot
    hold a pipe open), its whole process group killed at ``timeout``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log.with_suffix(".out"), "w") as out, open(log.with_suffix(".err"), "w") as err:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=max(timeout, 1))
        except subprocess.TimeoutExpired:
            code = None
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                    proc.wait(timeout=10)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
    read = lambda suffix: log.with_suffix(suffix).read_text(errors="replace")  # noqa: E731
    return Ran(code, read(".out"), read(".err"), time.monotonic() - started)


def _sextant_devices():
    """``sextant.devices`` from the tree (standard library only), before anything is installed."""
    spec = importlib.util.spec_from_file_location("_sextant_devices", ROOT / "core/src/sextant/devices.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cuda_step(deadline: Deadline, out: Path) -> tuple[Row, str | None, dict]:
    """The machine's GPU, driver, Python and torch; the reason no CUDA device can be used, if any."""
    facts: dict = {"python": platform.python_version(), "torch": needs.installed_version("torch")}
    started = time.monotonic()
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        smi = run(query, min(30, deadline.left()), out / "logs/nvidia-smi")
        facts["nvidia-smi"] = smi.out.strip() or smi.tail()
    reason = _sextant_devices().cuda_unavailable_reason()
    if reason is None and facts["torch"] is None:
        reason = "torch is not installed: this check runs on the machine's own CUDA build of PyTorch"
    if reason is None:
        probe = run([sys.executable, "-c", TORCH_PROBE], min(180, deadline.left()), out / "logs/torch-probe")
        lines = probe.out.strip().splitlines()
        torch_facts = json.loads(lines[-1]) if probe.code == 0 and lines else {}
        facts.update(torch_facts)
        if probe.code != 0:
            reason = f"import torch failed: {probe.tail()}"
        elif torch_facts["cuda"] is None:
            reason = f"no CUDA device usable: torch {torch_facts['torch']} is a CPU build (no torch.version.cuda)"
        elif not torch_facts["available"]:
            warning = f" ({probe.tail(1)})" if probe.err.strip() else ""
            reason = (
                f"no CUDA device usable by torch {torch_facts['torch']} (built for CUDA {torch_facts['cuda']}); "
                f"is the driver older than that CUDA needs?{warning}"
            )
    seconds = time.monotonic() - started
    if reason is not None:
        detail = f"{reason}; python {facts['python']}, torch {facts['torch']}"
        return Row("cuda", SKIPPED, detail, seconds), reason, facts
    detail = (
        f"{facts['gpu']} (sm {facts['capability']}, {facts['memory_gib']} GiB); nvidia-smi: "
        f"{facts.get('nvidia-smi', 'not found')}; torch {facts['torch']} (CUDA {facts['cuda']}); "
        f"python {facts['python']}"
    )
    return Row("cuda", PASSED, detail, seconds), None, facts


def wheels_step(wanted: list[needs.Need], wheels: Path, blocked: str | None) -> tuple[Row, str | None]:
    """What is missing, and whether that blocks the check (the core's needs or pytest)."""
    missing = [n for n in wanted if not n.met]
    carried = [n for n in wanted if n.have is None and n.carried is not None]
    parts = [f"{len(wanted) - len(missing)} of {len(wanted)} requirements met"]
    if carried:
        parts.append("carried: " + ", ".join(n.carried.name for n in carried))
    if missing:
        listed = ", ".join(f"{n.requirement} ({n.owner})" for n in missing)
        parts.append(f"missing (what needs them skips): {listed}")
        parts.append(f"to carry them: {needs.download_command(missing, wheels)}")
    fatal = [n.requirement for n in missing if n.required]
    if fatal and blocked is None:
        return Row("wheels", FAILED, "; ".join(parts)), f"needs {', '.join(fatal)}: carry their wheels in {wheels}"
    return Row("wheels", INFO, "; ".join(parts)), None


def install_step(wanted: list[needs.Need], wheels: Path, out: Path, deadline: Deadline) -> tuple[Row, str | None]:
    """The carried wheels the machine lacks, then the tree's distributions, into ``out/site``."""
    site = out / "site"
    shutil.rmtree(site, ignore_errors=True)
    why = needs.backend_missing(wheels)
    if why is not None:
        return Row("install", FAILED, why), f"not installed: {why}"
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-deps", "--no-index"]
    pip += ["--target", str(site)]
    env = environment(out)
    started, done = time.monotonic(), []
    carried = needs.wheels_to_install(wanted, wheels)
    if carried:
        command = [*pip, "--find-links", str(wheels), *map(str, carried)]
        ran = run(command, min(120, deadline.left()), out / "logs/pip-wheels", env)
        if ran.code != 0:
            why = "timed out" if ran.code is None else ran.tail()
            return Row("install", FAILED, f"carried wheels: {why}", ran.seconds), "the carried wheels did not install"
        done.append(f"{len(carried)} carried wheels")
    # built from a copy: a build in place would leave build/ and *.egg-info folders in the tree
    copies = out / "src"
    shutil.rmtree(copies, ignore_errors=True)
    skip = shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests", ".venv*")
    folders = [str(shutil.copytree(ROOT / folder, copies / folder, ignore=skip)) for folder in needs.EXTRAS]
    ran = run([*pip, "--no-build-isolation", *folders], min(240, deadline.left()), out / "logs/pip-sextant", env)
    seconds = time.monotonic() - started
    if ran.code != 0:
        why = "timed out" if ran.code is None else ran.tail()
        return Row("install", FAILED, f"pip: {why}", seconds), "the sextant distributions did not install"
    done.append(f"{len(folders)} sextant distributions (--no-deps --no-build-isolation --no-index) into {site}")
    return Row("install", PASSED, "; ".join(done), seconds), None


def environment(out: Path) -> dict[str, str]:
    """The installed distributions first on the path, a cache of the check's own."""
    path = os.pathsep.join(p for p in (str(out / "site"), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "SEXTANT_CACHE_DIR": str(out / "cache"), "PYTHONUNBUFFERED": "1"}


def plugins_step(out: Path, deadline: Deadline) -> Row:
    command = [sys.executable, "-m", "sextant.cli", "plugins", "--json"]
    ran = run(command, min(90, deadline.left()), out / "logs/plugins", environment(out))
    if ran.code != 0:
        return Row("plugins", FAILED, f"sextant plugins: {ran.tail()}", ran.seconds)
    errors, usable, not_usable = [], [], {}
    for plugin in json.loads(ran.out)["plugins"]:
        if plugin.get("error"):
            errors.append(f"{plugin['name']}: {plugin['error']}")
        for c in plugin["contributions"]:
            if "cuda" in c.get("devices", {}) or c.get("device") == "cuda":
                reason = c.get("devices", {}).get("cuda") or c.get("reason")
                (not_usable.setdefault(reason, []).append(c["name"]) if reason else usable.append(c["name"]))
    unusable = "; ".join(f"{', '.join(names)}: {reason}" for reason, names in not_usable.items())
    detail = f"on cuda: {', '.join(usable) or 'nothing'}; not here: {unusable or 'none'}"
    if errors:
        return Row("plugins", FAILED, f"plugins that did not load: {'; '.join(errors)}; {detail}", ran.seconds)
    return Row("plugins", INFO, detail, ran.seconds)


def gpu_test_files() -> list[str]:
    """The test files that mark tests ``gpu`` (collecting every file would import every framework)."""
    files = []
    for folder in TEST_DIRS:
        for path in sorted((ROOT / folder).rglob("test_*.py")):
            if "pytest.mark.gpu" in path.read_text(errors="replace"):
                files.append(str(path.relative_to(ROOT)))
    return files


def tests_step(out: Path, deadline: Deadline) -> list[Row]:
    files = gpu_test_files()
    if deadline.left() < 120:
        return [Row("pytest -m gpu", SKIPPED, "not started: the check's --budget-s was spent")]
    report = out / "gpu-tests.xml"
    report.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider", f"--junitxml={report}", *files]
    ran = run(command, min(240, deadline.left() - 60), out / "logs/pytest-gpu", environment(out))
    rows = []
    if report.exists():
        for case in ElementTree.parse(report).iter("testcase"):
            name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
            outcome = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
            if outcome is None:
                rows.append(Row(f"test {name}", PASSED, "", float(case.get("time", 0))))
            else:
                result = SKIPPED if outcome.tag == "skipped" else FAILED
                message = (outcome.get("message") or outcome.text or "").strip().splitlines()
                detail = message[0] if message else outcome.tag
                rows.append(Row(f"test {name}", result, detail, float(case.get("time", 0))))
    if ran.code is None:
        rows.append(Row("pytest -m gpu", FAILED, f"timed out after {ran.seconds:.0f} s: {ran.tail()}", ran.seconds))
    elif ran.code == 5:
        rows.append(Row("pytest -m gpu", FAILED, f"no test marked gpu was collected from {files}", ran.seconds))
    elif not rows or ran.code not in (0, 1):
        rows.append(Row("pytest -m gpu", FAILED, f"pytest exit {ran.code}: {ran.tail()}", ran.seconds))
    return rows


def example_rows(out: Path, deadline: Deadline, examples: list[str]) -> list[Row]:
    """Every example at fp32 first, then each with ``--precision auto`` in the same workspace, each
    run given an equal share of the time left (a quarter of it kept for what is in flight when the
    run's own ``--budget-s`` stops new work)."""
    rows: list[Row] = []
    runnable = []
    for example in examples:
        lacking = [m for m in EXAMPLE_NEEDS.get(example, ()) if importlib.util.find_spec(m) is None]
        if lacking:
            why = f"needs {', '.join(lacking)}, not installed here"
            rows += [Row(_example_step(example, p), SKIPPED, why) for p in ("fp32", "auto")]
        else:
            runnable.append(example)
    runs = [(e, p) for p in ("fp32", "auto") for e in runnable]
    for index, (example, precision) in enumerate(runs):
        step = _example_step(example, precision)
        timeout = min(300.0, deadline.left() / (len(runs) - index))
        if timeout < 45:
            rows.append(Row(step, SKIPPED, "not started: the check's --budget-s was spent"))
            continue
        workspace = out / "ws" / example
        command = [sys.executable, "-m", "sextant.cli", "optimize", f"examples/{example}.py:build"]
        command += ["--samples", f"examples/{example}.py:samples", "--device", "cuda", "-w", str(workspace)]
        command += ["--fresh"] if precision == "fp32" else ["--precision", "auto"]
        command += ["--budget-s", f"{0.75 * timeout:.0f}", "--step-timeout", "120", "--json", *SHORT_PROFILE]
        ran = run(command, timeout, out / f"logs/optimize-{example}-{precision}", environment(out))
        status_file = workspace / "status.json"
        status = json.loads(status_file.read_text()) if status_file.exists() else None
        rows.append(Row(step, *judge_run(ran, status), ran.seconds))
    return rows


def _example_step(example: str, precision: str) -> str:
    return f"optimize {example}" + (" --precision auto" if precision == "auto" else "")


def judge_run(ran: Ran, status: dict | None) -> tuple[str, str]:
    """A run passes when it exits 0 with a cuda pick, and no cuda candidate failed to run (the budget
    aside) or gave wrong outputs at fp32; reduced precisions may be judged incorrect."""
    if status is None:
        return FAILED, f"exit {ran.code}, no status.json: {ran.tail()}"
    cuda = {cid: r for cid, r in status.get("candidates", {}).items() if r.get("device") == "cuda"}
    counts: dict[str, int] = {}
    for record in cuda.values():
        key = "not started (budget)" if record.get("cause") == "budget" else record["status"]
        counts[key] = counts.get(key, 0) + 1
    broken = [
        f"{cid}: {r.get('reason')}" for cid, r in cuda.items() if r["status"] == "failed" and r.get("cause") != "budget"
    ]
    wrong = [cid for cid, r in cuda.items() if r["status"] == "incorrect" and r.get("precision") == "fp32"]
    best = (status.get("selection") or {}).get("best")
    parts = [f"pick {best}" + _speedup(cuda, best)] if best else [f"no pick: {ran.error()}"]
    parts.append("cuda candidates: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"))
    parts += [f"FAILED {b}" for b in broken] + [f"WRONG at fp32: {w}" for w in wrong]
    if ran.code is None:
        parts.insert(0, f"timed out after {ran.seconds:.0f} s")
    good = ran.code == 0 and best is not None and best.endswith("@cuda") and not broken and not wrong
    return (PASSED if good else FAILED), (f"exit {ran.code}; " if ran.code else "") + "; ".join(parts)


def _speedup(cuda: dict[str, dict], best: str) -> str:
    """`` ×N over <the source's eager fp32 candidate on cuda>`` by best-point throughput, or ``""``."""
    sources = sorted(
        c for c, r in cuda.items() if c.startswith("source:") and "[" not in c and r.get("precision") == "fp32"
    )
    base = next((c for c in sources if "eager" in c), sources[0] if sources else None)
    points = [(cuda.get(c) or {}).get("best_point") or {} for c in (best, base)]
    if base is None or not all(p.get("throughput") for p in points):
        return ""
    return f" x{points[0]['throughput'] / points[1]['throughput']:.2f} over {base}"


def check(args: argparse.Namespace) -> tuple[list[Row], dict]:
    deadline, out, wheels = Deadline(args.budget_s), args.out, args.wheels
    row, blocked, facts = cuda_step(deadline, out)
    rows = [row]
    if args.even_without_cuda:
        blocked = None
    wanted = needs.needs(ROOT, wheels)
    row, missing = wheels_step(wanted, wheels, blocked)
    rows.append(row)
    blocked = blocked or missing
    if blocked is None:
        row, blocked = install_step(wanted, wheels, out, deadline)
        rows.append(row)
    else:
        rows.append(Row("install", SKIPPED, blocked))
    if blocked is None:
        rows.append(plugins_step(out, deadline))
        rows += tests_step(out, deadline)
        rows += example_rows(out, deadline, args.examples)
    else:
        rows += [Row(step, SKIPPED, blocked) for step in ("plugins", "pytest -m gpu")]
        rows += [Row(_example_step(e, p), SKIPPED, blocked) for p in ("fp32", "auto") for e in args.examples]
    return rows, facts


def table(rows: list[Row], width: int = 90) -> str:
    """The summary: one line per row, the detail wrapped under it."""
    step_width = min(44, max(len(r.step) for r in rows))
    lines = [f"{'step':<{step_width}}  {'result':<7}  {'secs':>5}  detail", "-" * (step_width + 18 + width)]
    for r in rows:
        secs = f"{r.seconds:5.0f}" if r.seconds is not None else "    -"
        detail = textwrap.wrap(r.detail, width) or [""]
        step = r.step
        if len(step) > step_width:  # a long test name on a line of its own
            lines.append(step)
            step = ""
        lines.append(f"{step:<{step_width}}  {r.result:<7}  {secs}  {detail[0]}")
        lines += [" " * (step_width + 18) + more for more in detail[1:]]
    counts = {k: sum(r.result == k for r in rows) for k in (PASSED, FAILED, SKIPPED)}
    lines.append(f"{counts[PASSED]} passed, {counts[FAILED]} failed, {counts[SKIPPED]} skipped")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=570.0, help="seconds the whole check may take")
    parser.add_argument("--wheels", type=Path, default=ROOT / "gpu/wheels", help="the carried wheels' folder")
    parser.add_argument("--out", type=Path, default=ROOT / "gpu/.run", help="installs, workspaces, logs, summary.json")
    parser.add_argument("--examples", type=lambda s: s.split(","), default=list(EXAMPLES), help="comma-separated")
    parser.add_argument(
        "--even-without-cuda",
        action="store_true",
        help="run every step where no CUDA device can be used (to check the check: its tests skip, its examples fail)",
    )
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    rows, facts = check(args)
    text = table(rows)
    print(f"\nsextant GPU check (examples: sextant optimize examples/NAME.py:build --device cuda)\n{text}")
    print(f"logs: {args.out / 'logs'}; summary: {args.out / 'summary.json'}")
    document = {"machine": facts, "rows": [asdict(r) for r in rows]}
    (args.out / "summary.json").write_text(json.dumps(document, indent=2))
    return 1 if any(r.result == FAILED for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
