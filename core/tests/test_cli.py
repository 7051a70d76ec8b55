"""The command line end to end, in subprocesses, on the fake plugins: exit codes, JSON, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sextant.testing.fake import NumpyMLP

FAST = ["--max-batch-size", "4", "--batch-budget-s", "0.1", "--window-ms", "2"]


def sextant(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "SEXTANT_PLUGIN_MODULES": "sextant.testing.fake", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from sextant.cli import main; sys.exit(main())", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    return NumpyMLP().save(tmp_path / "tiny.npmlp")


@pytest.fixture
def samples_file(tmp_path: Path) -> Path:
    path = tmp_path / "samples.npz"
    np.savez(path, x=np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32))
    return path


def test_version_and_plugins_json():
    assert sextant("--version").stdout.strip().startswith("sextant ")
    result = sextant("plugins", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    fake = next(p for p in document["plugins"] if p["name"] == "sextant.testing.fake")
    runner = next(c for c in fake["contributions"] if c["name"] == "numpy-eager")
    assert runner["available"] and runner["devices"] == {"cpu": None}


def test_optimize_json_is_one_document_and_inspect_agrees(tmp_path, model_file, samples_file):
    ws = tmp_path / "ws"
    result = sextant("optimize", str(model_file), "--samples", str(samples_file), "-w", str(ws), "--json", *FAST)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    best = document["selection"]["best"]
    assert document["candidates"][best]["status"] == "ok"
    shown = json.loads(sextant("inspect", str(ws), "--json").stdout)
    assert shown["selection"]["best"] == best
    table = sextant("inspect", str(ws))
    assert "best:" in table.stderr and best.split("@")[0] in table.stdout


def test_plan_prints_without_running(tmp_path, model_file):
    result = sextant("optimize", str(model_file), "--plan", "--json", "-w", str(tmp_path / "ws"))
    assert result.returncode == 0, result.stderr
    ids = [c["id"] for c in json.loads(result.stdout)["candidates"]]
    assert "source:numpy-eager@cpu" in ids and "fake-graph:fake-graph@cpu" in ids
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["optimize", "nowhere/model.onnx"], 1, "no such file or folder"),
        (["optimize", "{model}", "--shape", "x=1x8"], 2, "is not NAME:DxDxD"),
        (["optimize", "{model}", "--objective", "fastest"], 2, "unknown objective"),
        (["optimize", "{model}", "--search", "simulated-annealing"], 2, "no search strategy named"),
        (["optimize", "{model}", "--device", "cuda", *FAST], 4, "no candidate could be selected"),
        (["inspect", "{tmp}"], 1, "is not a sextant package"),
    ],
)
def test_errors_are_one_paragraph_with_the_right_exit_code(tmp_path, model_file, args, code, message):
    args = [a.format(model=model_file, tmp=tmp_path) for a in args]
    result = sextant(*args, "-w", str(tmp_path / "ws")) if args[0] == "optimize" else sextant(*args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_correctness_failure_exits_3(tmp_path, model_file):
    result = sextant(
        "optimize",
        str(model_file),
        "--formats",
        "fault-graph",
        "-w",
        str(tmp_path / "ws"),
        *FAST,
        env={"SEXTANT_PLUGIN_MODULES": "sextant.testing.fake,sextant.testing.faults", "SEXTANT_FAULTS": "wrong"},
    )
    assert result.returncode == 3, result.stderr
    assert "failed correctness" in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    result = sextant("--debug", "optimize", "nowhere.onnx")
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_interrupted_run_resumes_where_it_stopped(tmp_path, model_file):
    ws = tmp_path / "ws"
    env = {
        **os.environ,
        "SEXTANT_PLUGIN_MODULES": "sextant.testing.fake,sextant.testing.faults",
        "SEXTANT_FAULTS": "slow",
        "SEXTANT_FAULT_SLOW_S": "30",
    }
    command = [
        sys.executable,
        "-c",
        "import sys; from sextant.cli import main; sys.exit(main())",
        "optimize",
        str(model_file),
        "-w",
        str(ws),
        *FAST,
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (ws / "logs" / "fault-slow.log").exists():  # the slow step has started
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.1)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "run the same command again" in err.lower()
    status = json.loads((ws / "status.json").read_text())
    assert status["steps"]["fake-graph"]["status"] == "ok"
    assert status["interrupted"] == "fault-slow"
    # the second run reuses what the first finished and completes the rest
    env["SEXTANT_FAULT_SLOW_S"] = "0.1"
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    status = json.loads((ws / "status.json").read_text())
    assert status["steps"]["fake-graph"].get("cached") is True
    assert status["candidates"]["source:numpy-eager@cpu"].get("cached") is True
    # it finished this time; it writes the same graph as fake-graph, which the run notices
    assert status["steps"]["fault-slow"]["status"] == "duplicate"
    assert status["steps"]["fault-slow"]["reason"] == "same bytes as fake-graph"
    assert "interrupted" not in status


def test_formats_shows_the_planned_chains():
    tree = sextant("formats")
    assert tree.returncode == 0, tree.stderr
    assert "fake-graph → fake-graph" in tree.stdout and "fake-fp16 → fake-graph (fp16)" in tree.stdout
    document = json.loads(sextant("formats", "--json").stdout)
    assert "numpy-mlp" in document["sources"]
    assert {
        "kind": "converter",
        "name": "fake-fp16",
        "from": "fake-graph",
        "to": "fake-graph",
        "available": True,
    } in document["edges"]


def test_a_plugin_can_add_a_command(tmp_path):
    (tmp_path / "hello_plugin.py").write_text(
        "from sextant import hookimpl\n\n"
        "@hookimpl\n"
        "def sextant_register_commands(app):\n"
        "    @app.command()\n"
        "    def hello(name: str = 'world'):\n"
        "        '''Say hello.'''\n"
        "        print(f'hello {name}')\n"
    )
    env = {"SEXTANT_PLUGIN_MODULES": "hello_plugin", "PYTHONPATH": str(tmp_path)}
    result = sextant("hello", "--name", "sextant", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello sextant"
    assert "hello" in sextant("--help", env=env).stdout


def test_a_step_log_names_the_command_that_replays_it(tmp_path, model_file, samples_file):
    ws = tmp_path / "ws"
    assert sextant("optimize", str(model_file), "--samples", str(samples_file), "-w", str(ws), *FAST).returncode == 0
    header = (ws / "logs" / "fake-graph_fake-graph_cpu.log").read_text().splitlines()[1]
    command = header.split("reproduce in this process: ", 1)[1].split()
    assert command[:3] == ["python", "-m", "sextant.worker"]
    replay = subprocess.run([sys.executable, *command[1:]], capture_output=True, text=True, timeout=120)
    assert replay.returncode == 0, replay.stderr
    assert "point:" in replay.stdout and '"profiled": true' in replay.stdout
