"""The command line on the fake plugins: exit codes, JSON, run files, flags reaching the options.

Commands run in this process through ``typer.testing.CliRunner`` with a catalog of the test's
choice; only what needs a process of its own (the start-up cost, Ctrl-C) runs in a subprocess.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import typer
from sextant.optimizer import run as optimizer
from sextant.cli import State, app, with_plugin_commands
from sextant.errors import UsageError
from sextant.messages import Profiled
from sextant.options import SETTINGS, OptimizeOptions
from sextant.profiler import ProfilerConfig
from sextant.testing.fake import NumpyMLP
from typer.testing import CliRunner

FAST = ["--max-batch-size", "4", "--batch-budget-s", "0.1", "--window-ms", "2"]


@pytest.fixture(autouse=True)
def _no_debug_from_outside(monkeypatch):
    monkeypatch.setenv("SEXTANT_DEBUG", "")


def sextant(catalog, *args: str):
    """Run ``sextant ARGS`` in this process on ``catalog``; the result has exit_code, stdout, stderr."""
    return CliRunner().invoke(app, list(args), obj=State(catalog=catalog))


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    return NumpyMLP().save(tmp_path / "tiny.npmlp")


@pytest.fixture
def samples_file(tmp_path: Path) -> Path:
    path = tmp_path / "samples.npz"
    np.savez(path, x=np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32))
    return path


class Stop(Exception):
    """Raised by the recording pipeline once it has what the command passed it."""


@pytest.fixture
def passed(monkeypatch):
    """What ``sextant optimize`` passes the pipeline (model, samples, options), without running it."""
    seen: dict = {}

    def record(model, samples=None, *, options, catalog, **kwargs):
        seen.update(model=model, samples=samples, options=options)
        raise Stop

    monkeypatch.setattr(optimizer, "optimize", record)
    return seen


def options_from(catalog, passed, *args: str) -> OptimizeOptions:
    result = sextant(catalog, "optimize", *args)
    assert isinstance(result.exception, Stop), (result.exit_code, result.stderr)
    return passed["options"]


# -- commands, outputs, exit codes --------------------------------------------------------------


def test_version_and_plugins_json(fake_catalog):
    assert sextant(fake_catalog, "--version").stdout.strip().startswith("sextant ")
    result = sextant(fake_catalog, "plugins", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    fake = next(p for p in document["plugins"] if p["name"] == "sextant.testing.fake")
    runner = next(c for c in fake["contributions"] if c["name"] == "numpy-eager")
    assert runner["available"] and runner["devices"] == {"cpu": None}


def test_optimize_json_is_one_document_and_inspect_agrees(fake_catalog, tmp_path, model_file, samples_file):
    ws = tmp_path / "ws"
    result = sextant(
        fake_catalog, "optimize", str(model_file), "--samples", str(samples_file), "-w", str(ws), "--json", *FAST
    )
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    best = document["selection"]["best"]
    assert document["candidates"][best]["status"] == "ok"
    shown = json.loads(sextant(fake_catalog, "inspect", str(ws), "--json").stdout)
    assert shown["selection"]["best"] == best
    table = sextant(fake_catalog, "inspect", str(ws))
    assert "best:" in table.stderr and best.split("@")[0] in table.stdout


def test_plan_prints_without_running(fake_catalog, tmp_path, model_file):
    result = sextant(fake_catalog, "optimize", str(model_file), "--plan", "--json", "-w", str(tmp_path / "ws"))
    assert result.exit_code == 0, result.stderr
    ids = [c["id"] for c in json.loads(result.stdout)["candidates"]]
    assert "source:numpy-eager@cpu" in ids and "fake-graph:fake-graph@cpu" in ids
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["optimize", "nowhere/model.onnx"], 1, "no such file or folder"),
        (["optimize", "{model}", "--shape", "x=1x8"], 2, "'x=1x8' is not NAME:DxDxD"),
        (["optimize", "{model}", "--tolerance", "y:1e-3"], 2, "'y:1e-3' is not NAME:ATOL:RTOL"),
        (["optimize", "{model}", "--objective", "fastest"], 2, "unknown objective"),
        (["optimize", "{model}", "--max-memory-mb", "-5"], 2, "memory budget must be positive"),
        (["optimize", "{model}", "--search", "simulated-annealing"], 2, "no search strategy named"),
        (["optimize"], 2, "no MODEL"),
        (["inspect", "{tmp}"], 1, "is not a sextant package"),
    ],
)
def test_errors_are_one_paragraph_with_the_right_exit_code(fake_catalog, tmp_path, model_file, args, code, message):
    args = [a.format(model=model_file, tmp=tmp_path) for a in args]
    if args[0] == "optimize":
        args += ["-w", str(tmp_path / "ws")]
    result = sextant(fake_catalog, *args)
    assert result.exit_code == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_device_cuda_without_a_gpu_says_so_before_any_work(fake_catalog, tmp_path, model_file, monkeypatch):
    from sextant.devices import cuda_unavailable_reason

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # no GPU, on any machine
    cuda_unavailable_reason.cache_clear()
    try:
        result = sextant(fake_catalog, "optimize", str(model_file), "--device", "cuda", "-w", str(tmp_path / "ws"))
    finally:
        cuda_unavailable_reason.cache_clear()
    said = " ".join(result.stderr.split())
    assert result.exit_code == 4, said
    assert "--device cuda: no CUDA device (CUDA_VISIBLE_DEVICES hides them)" in said and "--device cpu" in said
    assert not (tmp_path / "ws").exists()  # nothing was written


def test_correctness_failure_exits_3(fault_catalog, tmp_path, model_file):
    catalog = fault_catalog("wrong")
    result = sextant(
        catalog, "optimize", str(model_file), "--formats", "fault-graph", "-w", str(tmp_path / "ws"), *FAST
    )
    assert result.exit_code == 3, result.stderr
    assert "failed correctness" in result.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_before_or_after_the_command(fake_catalog, where):
    args = ["--debug", "optimize", "nowhere.onnx"] if where == "before" else ["optimize", "nowhere.onnx", "--debug"]
    result = sextant(fake_catalog, *args)
    assert result.exit_code == 1, result.stderr
    assert "Traceback" in result.stderr and "no such file or folder" in result.stderr


def test_formats_shows_the_planned_chains(fake_catalog):
    tree = sextant(fake_catalog, "formats")
    assert tree.exit_code == 0, tree.stderr
    assert "fake-graph → fake-graph" in tree.stdout and "fake-fp16 → fake-graph (fp16)" in tree.stdout
    document = json.loads(sextant(fake_catalog, "formats", "--json").stdout)
    assert "numpy-mlp" in document["sources"]
    assert {
        "kind": "converter",
        "name": "fake-fp16",
        "from": "fake-graph",
        "to": "fake-graph",
        "available": True,
    } in document["edges"]


def test_a_plugin_can_add_a_command(tmp_path, monkeypatch):
    from sextant.plugins import load_catalog

    (tmp_path / "hello_plugin.py").write_text(
        "from sextant import hookimpl\n\n"
        "@hookimpl\n"
        "def sextant_register_commands(app):\n"
        "    @app.command()\n"
        "    def hello(name: str = 'world'):\n"
        "        '''Say hello.'''\n"
        "        print(f'hello {name}')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    catalog = load_catalog(extra_modules=["hello_plugin"], entry_points=False)
    extended = with_plugin_commands(catalog)
    runner = CliRunner()
    result = runner.invoke(extended, ["hello", "--name", "sextant"], obj=State(catalog=catalog))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "hello sextant"
    assert "hello" in runner.invoke(extended, ["--help"], obj=State(catalog=catalog)).stdout
    assert "hello" not in typer.main.get_command(app).commands  # the module's app is left as it was


def test_a_step_log_names_the_command_that_replays_it(fake_catalog, tmp_path, model_file, samples_file):
    ws = tmp_path / "my models" / "it's here"  # the line is shell-quoted: a shell reads it back whole
    result = sextant(fake_catalog, "optimize", str(model_file), "--samples", str(samples_file), "-w", str(ws), *FAST)
    assert result.exit_code == 0, result.stderr
    header = (ws / "logs" / "fake-graph_fake-graph_cpu.log").read_text().splitlines()[1]
    command = shlex.split(header.split("reproduce in this process: ", 1)[1])
    assert command[:3] == ["python", "-m", "sextant.worker"]
    replay = subprocess.run([sys.executable, *command[1:]], capture_output=True, text=True, timeout=120)
    assert replay.returncode == 0, replay.stderr
    assert "point:" in replay.stdout
    answer = Profiled.from_json(json.loads(replay.stdout[replay.stdout.index("\n{") + 1 :]))
    assert answer.stop is not None and answer.threads is not None  # profiled, as the replay orders


# -- flags and run files reach the options -------------------------------------------------------

#: for each optimize flag, a value that differs from its default and the field it must change
#: (a new flag needs an entry here)
EXAMPLES = {
    "--workspace": (["elsewhere"], "workspace"),
    "--name": (["renamed"], "name"),
    "--device": (["cpu"], "device"),
    "--formats": (["onnx"], "formats"),
    "--runners": (["onnxruntime"], "runners"),
    "--precision": (["fp32,bf16"], "precisions"),
    "--shape": (["x:1x8"], "shapes"),
    "--source-option": (["signature=serving"], "source_options"),
    "--unbatched": (["mask"], "unbatched"),
    "--step-timeout": (["5"], "step_timeout"),
    "--fresh": ([], "fresh"),
    "--reload": ([], "reload"),
    "--no-history": ([], "no_history"),
    "--atol": (["0.5"], "atol"),
    "--rtol": (["0.25"], "rtol"),
    "--tolerance": (["y:1e-3:1e-2"], "tolerances"),
    "--comparator": (["cosine"], "comparator"),
    "--allow-nan": ([], "allow_nan"),
    "--objective": (["memory"], "objective"),
    "--latency-budget-ms": (["20"], "latency_budget_ms"),
    "--max-memory-mb": (["512"], "max_memory_mb"),
    "--min-throughput": (["100"], "min_throughput"),
    "--max-batch-size": (["8"], "max_batch_size"),
    "--threads": (["2"], "threads"),
    "--batch-budget-s": (["0.5"], "profiler.batch_budget_s"),
    "--dense-sweep": ([], "profiler.sparse"),
    "--cutoff": (["0.5"], "cutoff"),
    "--paired-rounds": (["3"], "paired_rounds"),
    "--search": (["brute"], "search"),
    "--budget-s": (["30"], "budget_s"),
    "--steps": (["fake-graph"], "steps"),
    "--search-budget-s": (["30"], "search_budget_s"),
    "--window-ms": (["10"], "profiler.window_s"),
    "--task": (["forward"], "task"),
    "--prompt-lengths": (["8,16"], "generation.prompt_lengths"),
    "--new-tokens": (["4"], "generation.new_tokens"),
    "--generation-batches": (["1,2"], "generation.batch_sizes"),
    "--max-ttft-ms": (["50"], "generation.max_ttft_ms"),
    "--max-itl-ms": (["5"], "generation.max_itl_ms"),
}
#: optimize's parameters that say what to run and how to show it, not how to optimize
NOT_OPTIONS = {"model", "samples", "config", "plan", "as_json", "debug"}
OPTION_FLAGS = sorted(
    next(o for o in p.opts if o.startswith("--"))
    for p in typer.main.get_command(app).commands["optimize"].params
    if p.name not in NOT_OPTIONS
)


def flat(options: OptimizeOptions) -> dict:
    """The options' fields, with the profiler's as ``profiler.<field>``."""
    values = {f.name: getattr(options, f.name) for f in fields(options) if f.name not in ("profiler", "generation")}
    values |= {f"generation.{f.name}": getattr(options.generation, f.name) for f in fields(options.generation)}
    return values | {f"profiler.{f.name}": getattr(options.profiler, f.name) for f in fields(options.profiler)}


@pytest.mark.parametrize("flag", OPTION_FLAGS)
def test_every_optimize_flag_sets_its_field_of_the_options(fake_catalog, passed, flag):
    assert flag in EXAMPLES, f"{flag} is new: add a value for it to EXAMPLES"
    assert flag.removeprefix("--") in SETTINGS, f"{flag} has no entry in sextant.options.SETTINGS"
    args, field = EXAMPLES[flag]
    options = options_from(fake_catalog, passed, "model.onnx", flag, *args)
    baseline = flat(OptimizeOptions())
    assert [name for name, value in flat(options).items() if value != baseline[name]] == [field]


def test_every_setting_is_a_flag():
    assert sorted(f"--{name}" for name in SETTINGS) == OPTION_FLAGS


def test_flags_build_the_options(fake_catalog, passed, tmp_path):
    options = options_from(
        fake_catalog,
        passed,
        "model.onnx",
        *["--precision", "fp32,bf16", "--shape", "x:1x8", "--shape", "mask:1x8", "--tolerance", "y:1e-3:1e-2"],
        *["--source-option", "signature=serving", "--window-ms", "10", "--max-memory-mb", "512"],
        *["--objective", "latency", "-w", str(tmp_path / "ws"), "--samples", "s.npz"],
    )
    assert passed["model"] == "model.onnx" and passed["samples"] == "s.npz"
    assert options.precisions == ("fp32", "bf16")
    assert options.shapes == {"x": (1, 8), "mask": (1, 8)}
    assert options.tolerances == {"y": (1e-3, 1e-2)}
    assert options.source_options == {"signature": "serving"}
    assert options.profiler == ProfilerConfig(window_s=0.01)
    assert options.max_memory_mb == 512 and options.objective == "latency"
    assert options.workspace == tmp_path / "ws"


def test_flags_left_out_keep_the_dataclass_defaults(fake_catalog, passed):
    assert options_from(fake_catalog, passed, "model.onnx") == OptimizeOptions()


def test_settings_take_flag_strings_or_typed_values_alike():
    as_flags = OptimizeOptions.from_settings(
        {
            "precision": "fp32,bf16",
            "shape": ["x:1x8"],
            "tolerance": ["y:0.001:0.01"],
            "source-option": ["signature=serving"],
            "max-batch-size": "8",
            "window-ms": "10",
        }
    )
    typed = OptimizeOptions.from_settings(
        {
            "precision": ["fp32", "bf16"],
            "shape": {"x": [1, 8]},
            "tolerance": {"y": [1e-3, 1e-2]},
            "source_option": {"signature": "serving"},
            "max_batch_size": 8,
            "window_ms": 10,
        }
    )
    assert as_flags == typed
    assert typed.precisions == ("fp32", "bf16") and typed.shapes == {"x": (1, 8)}
    assert typed.max_batch_size == 8 and typed.profiler.window_s == pytest.approx(0.01)
    assert (
        OptimizeOptions.from_settings({"precision": "auto"}).precisions == OptimizeOptions(precisions="auto").precisions
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"speed": 3}, "unknown setting 'speed'"),
        ({"max-batch-size": 4, "max_batch_size": 8}, "are the same setting"),
        ({"max-batch-size": 4.5}, "takes a whole number"),
        ({"cutoff": "high"}, "takes a number"),
        ({"fresh": "yes"}, "is true or false"),
        ({"shape": {"x": "1xa"}}, "is not NAME:DxDxD"),
        ({"precision": 16}, "takes text or a list of texts"),
    ],
)
def test_bad_settings_are_usage_errors(settings, message):
    with pytest.raises(UsageError, match=message):
        OptimizeOptions.from_settings(settings)


def write_run_file(folder: Path, text: str) -> Path:
    path = folder / "run.toml"
    path.write_text(text)
    return path


def test_a_run_file_runs_the_whole_optimization(fake_catalog, tmp_path, model_file, samples_file):
    run = write_run_file(
        tmp_path,
        f'model = "{model_file.name}"\n'  # relative to the run file's folder, not to the current one
        f'samples = "{samples_file.name}"\n'
        'workspace = "ws"\n'
        "max-batch-size = 4\n"
        "batch_budget_s = 0.1\n"
        "window-ms = 2\n"
        'precision = ["fp32"]\n',
    )
    assert Path.cwd() != tmp_path
    result = sextant(fake_catalog, "optimize", "-c", str(run), "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert Path(document["package"]).resolve() == (tmp_path / "ws").resolve()
    assert document["candidates"][document["selection"]["best"]]["status"] == "ok"
    recorded = document["options"]
    assert recorded["max_batch_size"] == 4 and recorded["profiler"]["window_s"] == pytest.approx(0.002)


def test_run_file_values_reach_the_options(fake_catalog, passed, tmp_path):
    run = write_run_file(
        tmp_path,
        'model = "examples/mlp.py:build"\n'
        'samples = "package.data:samples"\n'
        'precision = ["fp32", "bf16"]\n'
        "shape = { x = [1, 8] }\n"
        "tolerance = { y = [1e-3, 1e-2] }\n"
        "max_batch_size = 16\n"
        "cutoff = 0.5\n"
        "fresh = true\n",
    )
    options = options_from(fake_catalog, passed, "--config", str(run))
    assert passed["model"] == str(tmp_path / "examples" / "mlp.py") + ":build"
    assert passed["samples"] == "package.data:samples"  # a module reference is left as it is
    assert options == OptimizeOptions(
        precisions=("fp32", "bf16"),
        shapes={"x": (1, 8)},
        tolerances={"y": (1e-3, 1e-2)},
        max_batch_size=16,
        cutoff=0.5,
        fresh=True,
    )


def test_flags_given_override_the_run_file(fake_catalog, passed, tmp_path):
    run = write_run_file(tmp_path, 'model = "a.onnx"\ncutoff = 0.5\nmax-batch-size = 16\nprecision = "bf16"\n')
    options = options_from(fake_catalog, passed, "b.onnx", "-c", str(run), "--cutoff", "0.9", "--precision", "fp16")
    assert passed["model"] == "b.onnx"
    assert options.cutoff == 0.9 and options.precisions == ("fp16",)
    assert options.max_batch_size == 16  # not given on the command line: the file's


def test_an_unknown_key_in_a_run_file_is_a_usage_error_naming_it(fake_catalog, tmp_path):
    run = write_run_file(tmp_path, 'model = "a.onnx"\nmax-bach-size = 4\n')
    result = sextant(fake_catalog, "optimize", "-c", str(run))
    assert result.exit_code == 2, result.stderr
    assert "unknown key 'max-bach-size'" in result.stderr and str(run) in result.stderr
    assert "max-batch-size" in result.stderr and "samples" in result.stderr  # the valid keys


def test_a_malformed_run_file_names_the_file_and_line(fake_catalog, tmp_path):
    run = write_run_file(tmp_path, 'model = "a.onnx"\ncutoff = = 0.5\n')
    result = sextant(fake_catalog, "optimize", "-c", str(run))
    assert result.exit_code == 2, result.stderr
    assert str(run) in result.stderr and "line 2" in result.stderr


def test_a_missing_run_file_is_a_usage_error(fake_catalog, tmp_path):
    result = sextant(fake_catalog, "optimize", "-c", str(tmp_path / "absent.toml"))
    assert result.exit_code == 2, result.stderr
    assert "absent.toml" in result.stderr


def test_help_shows_the_dataclass_defaults(fake_catalog):
    result = sextant(fake_catalog, "optimize", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    for flag, shown in [("--cutoff", OptimizeOptions().cutoff), ("--window-ms", ProfilerConfig().window_s * 1000)]:
        after = text.split(flag, 1)[1].split("--", 1)[0]
        assert f"[default: {shown}]" in after, after


# -- in a process of its own --------------------------------------------------------------------


def test_start_up_imports_nothing_heavy():
    probe = (
        "import sys; from sextant.cli import main; code = main(['--help']);"
        "print('HEAVY', [m for m in ('numpy', 'sextant.optimizer', 'sextant.options') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert "optimize" in result.stdout, result.stderr
    assert "HEAVY []" in result.stdout
    version = subprocess.run([sys.executable, "-m", "sextant.cli", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("sextant "), version.stderr


def test_the_console_script_runs_the_exit_handlers_and_flushes_before_it_skips_the_teardown():
    probe = (
        "import atexit, sys; from sextant.cli.root import leave;"
        "atexit.register(lambda: sys.stdout.write(' handler ran'));"
        "sys.stdout.write('buffered'); sys.stderr.write('told'); leave(3)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # so that the flush matters
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env)
    assert (result.returncode, result.stdout, result.stderr) == (3, "buffered handler ran", "told")


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
        # Ctrl-C as in a terminal, even where this test runs with SIGINT ignored (a background job)
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler);"
        "from sextant.cli import main; sys.exit(main())",
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
    assert status["candidates"]["fake-graph:fake-graph@cpu"].get("cached") is True
    assert status["candidates"]["source:numpy-eager@cpu"]["profile"]  # its profile came after, in this run
    # it finished this time; it writes the same graph as fake-graph, which the run notices
    assert status["steps"]["fault-slow"]["status"] == "duplicate"
    assert status["steps"]["fault-slow"]["reason"] == "same bytes as fake-graph"
    assert "interrupted" not in status
