"""Fault injection on the workspace: two runs at once, a run killed with -9, full disks, a corrupt
status.json. Each test checks the message a user sees and that nothing recorded was lost."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import sextant
from conftest import FAST
from sextant.errors import DiskFullError, ModelLoadError, WorkspaceBusyError
from sextant.package import write_json
from sextant.optimizer.lock import WorkspaceLock, holder
from sextant.optimizer.workspace import Workspace
from sextant.specs import SourceModel
from sextant.testing.fake import SOURCE, NumpyMLP

DEADLINE_S = 180  # a bound on waiting for another process, not a timing assertion
FLAGS = ["--max-batch-size", "4", "--batch-budget-s", "0.1", "--window-ms", "2"]


def _optimize(catalog, options, samples, **kw):
    return sextant.optimize(NumpyMLP(), samples, options=options, catalog=catalog, **kw)


def _no_temporaries(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".tmp" in p.name)


# -- two runs on one workspace ----------------------------------------------------------------------


def _cli(ws: Path, model_file: Path) -> list[str]:
    return [
        sys.executable,
        "-c",
        "import sys; from sextant.cli import main; sys.exit(main())",
        "optimize",
        str(model_file),
        "-w",
        str(ws),
        *FLAGS,
    ]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "SEXTANT_PLUGIN_MODULES": "sextant.testing.fake,sextant.testing.faults", **extra}


def _wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not path.exists():
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.1)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    return NumpyMLP().save(tmp_path / "tiny.npmlp")


def test_a_second_run_is_refused_at_once_naming_the_first_and_a_killed_run_is_taken_over(tmp_path, model_file):
    ws = tmp_path / "ws"
    first = subprocess.Popen(
        _cli(ws, model_file),
        env=_env(SEXTANT_FAULTS="slow", SEXTANT_FAULT_SLOW_S="600"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(ws / "logs" / "fault-slow.log", first)  # it holds the workspace now
        recorded = (ws / "status.json").read_text()
        second = subprocess.run(_cli(ws, model_file), env=_env(SEXTANT_FAULTS=""), capture_output=True, text=True)
        said = " ".join(second.stderr.split())  # as printed, wrapped to the terminal
        assert second.returncode == 1, said
        assert f"is in use by process {first.pid} on " in said
        assert ", started 20" in said and f"optimize {model_file}" in said
        assert "another --workspace" in said
        assert (ws / "status.json").read_text() == recorded  # the refused run touched nothing
        assert holder(ws).pid == first.pid
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        first.kill()
        first.communicate()
    assert holder(ws) is None  # the kernel dropped the dead run's lock
    third = subprocess.run(
        _cli(ws, model_file),
        env=_env(SEXTANT_FAULTS="slow", SEXTANT_FAULT_SLOW_S="0"),
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    assert third.returncode == 0, third.stderr
    status = json.loads((ws / "status.json").read_text())
    assert any(f"took over the workspace from process {first.pid}" in n for n in status["notes"])
    finished = [k for k, r in json.loads(recorded)["steps"].items() if r["status"] == "ok"]
    assert finished and status["run"]["complete"]
    assert all(status["steps"][k].get("cached") for k in finished), (finished, status["steps"])
    assert status["steps"]["fault-slow"]["status"] in ("ok", "duplicate")


def test_the_killed_runs_step_does_not_outlive_it(tmp_path, model_file):
    """A step of a run killed with -9 is killed too: it cannot write into the next run's workspace."""
    ws = tmp_path / "ws"
    first = subprocess.Popen(
        _cli(ws, model_file), env=_env(SEXTANT_FAULTS="hang"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        _wait_for(ws / "logs" / "fault-hang.log", first)  # the parent writes it before the child starts
        deadline = time.monotonic() + DEADLINE_S
        while not (children := _hanging_steps(ws)):  # until the child has redirected its output there
            assert time.monotonic() < deadline and first.poll() is None, "the step's process was not found"
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        first.kill()
        first.communicate()
    deadline = time.monotonic() + DEADLINE_S
    while any(_alive(pid) for pid in children):
        assert time.monotonic() < deadline, f"steps {children} outlived their run"
        time.sleep(0.1)


def _hanging_steps(ws: Path) -> list[int]:
    """PIDs of processes whose log descriptor is the hanging step's log."""
    log = str((ws / "logs" / "fault-hang.log").resolve())
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.readlink(proc / "fd" / "1") == log:
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_second_run_in_another_thread_of_the_same_process_is_refused(fake_catalog, options, samples):
    with (
        WorkspaceLock(_made(options.workspace)),
        pytest.raises(WorkspaceBusyError, match="another run in this process"),
    ):
        _optimize(fake_catalog, options, samples)
    package = _optimize(fake_catalog, options, samples)  # released: the next run goes ahead
    assert package.best() is not None
    assert not (options.workspace / ".lock").read_text()  # a finished run leaves the lock empty


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder.resolve()


def test_a_lock_file_left_by_a_dead_process_is_taken_over_and_said(fake_catalog, options, samples):
    folder = _made(options.workspace)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = {"pid": int(dead.stdout), "started": "2026-01-01T00:00:00+00:00", "host": "h", "command": "sextant x"}
    (folder / ".lock").write_text(json.dumps(left))
    status = _optimize(fake_catalog, options, samples).status
    assert f"took over the workspace from process {left['pid']} on h, started 2026-01-01" in " ".join(status["notes"])


def test_the_lock_is_held_across_threads_only_once(tmp_path):
    folder = _made(tmp_path / "ws")
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def take() -> None:
        barrier.wait()
        try:
            with WorkspaceLock(folder):
                outcomes.append("held")
                barrier_done.wait()
        except WorkspaceBusyError:
            outcomes.append("refused")
            barrier_done.wait()

    barrier_done = threading.Barrier(4)
    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=DEADLINE_S)
    assert sorted(outcomes) == ["held", "refused", "refused", "refused"]


# -- full disks ------------------------------------------------------------------------------------


def _fill_after(limit: int):
    """A ``write_text`` that writes ``limit`` characters, then fails as a full disk does."""

    def write_text(self, data, *args, **kwargs):
        with open(self, "w") as out:
            out.write(data[:limit])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    return write_text


def test_status_json_is_never_half_written_and_its_temporary_is_removed(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    write_json(path, {"schema": 1, "steps": {"a": 1}})
    before = path.read_text()
    monkeypatch.setattr(Path, "write_text", _fill_after(10))
    with pytest.raises(DiskFullError) as raised:
        write_json(path, {"schema": 1, "steps": {"a": 1, "b": 2}})
    assert str(raised.value).startswith("no space left on ")
    assert f"writing {path}" in str(raised.value) and "MB free" in str(raised.value)
    assert "--workspace on another one" in raised.value.hint
    monkeypatch.undo()
    assert path.read_text() == before
    assert _no_temporaries(tmp_path) == []


def test_a_source_that_fills_the_disk_says_so_not_that_the_model_is_unpicklable(tmp_path):
    def write(folder: Path) -> Path:
        (folder / "model.bin").write_bytes(b"\0" * 3 * 1024 * 1024)
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "model.bin"))
        except OSError as exc:  # as the torch plugin wraps a failed torch.save
            raise ModelLoadError("cannot save the model", hint="The model must be picklable") from exc

    workspace = Workspace.open(tmp_path / "ws")
    with pytest.raises(DiskFullError) as raised:
        workspace.write_source(SourceModel(SOURCE, "m", write))
    message = str(raised.value)
    assert "no space left on" in message and "picklable" not in message
    assert "the source model into" in message and "at least 3.0 MB needed" in message
    assert not (workspace.path / "source.tmp").exists()


def test_a_step_that_fills_the_disk_fails_its_branch_only_and_is_retried_next_time(fault_catalog, options, samples):
    catalog = fault_catalog("full")
    package = _optimize(catalog, options, samples)
    step = package.status["steps"]["fault-full"]
    assert step["status"] == "failed" and step["cause"] == "disk-full"
    assert step["reason"].startswith("no space left on ") and "model.graph" in step["reason"]
    assert not list((options.workspace / "artifacts").glob("fault-full-*"))  # half an artifact removed
    assert package.best().status.value == "ok"  # the other branches went on
    again = _optimize(catalog, options, samples).status
    assert not again["steps"]["fault-full"].get("cached")  # a full disk is the machine's fault: redone


@pytest.fixture
def small_disk(tmp_path):
    """A real 4 MB file system (tmpfs), where this machine lets the test mount one."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip() or made.returncode}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_full_disk_fails_the_step_that_filled_it_and_keeps_the_rest(
    fault_catalog, options, samples, small_disk, monkeypatch
):
    monkeypatch.setenv("SEXTANT_FAULT_FAT_MB", "16")
    options = replace(options, workspace=small_disk / "ws", profiler=FAST)
    package = _optimize(fault_catalog("fat"), options, samples)
    step = package.status["steps"]["fault-fat"]
    assert step["cause"] == "disk-full", step
    assert f"no space left on tmpfs (mounted at {small_disk})" in step["reason"]
    assert package.status["run"]["complete"] and package.best().status.value == "ok"
    assert _no_temporaries(small_disk) == []
    json.loads((small_disk / "ws" / "status.json").read_text())


# -- a corrupt status.json -------------------------------------------------------------------------


def test_a_corrupt_status_json_is_kept_aside_and_the_run_says_what_it_redoes(fake_catalog, options, samples):
    _optimize(fake_catalog, options, samples)
    status_file = options.workspace / "status.json"
    status_file.write_text(status_file.read_text()[:200])  # cut short, as by a crash of an old version
    status = _optimize(fake_catalog, options, samples).status
    note = " ".join(status["notes"])
    assert "the earlier run's status.json could not be read" in note and "every step is redone" in note
    assert (options.workspace / "status.json.unreadable").read_text().startswith("{")
    assert not any(r.get("cached") for r in status["steps"].values())


def test_an_unreadable_record_is_named_and_redone(fake_catalog, options, samples):
    _optimize(fake_catalog, options, samples)
    status_file = options.workspace / "status.json"
    status = json.loads(status_file.read_text())
    status["steps"]["fake-graph"]["status"] = "no-such-status"
    status_file.write_text(json.dumps(status))
    again = _optimize(fake_catalog, options, samples).status
    assert "1 record(s) of the earlier run could not be read and are redone: fake-graph" in again["notes"]
    assert not again["steps"]["fake-graph"].get("cached")


# -- what inspect shows ----------------------------------------------------------------------------


def _inspect(folder: Path, *flags: str):
    from sextant.cli import root
    from typer.testing import CliRunner

    return CliRunner().invoke(root.app, ["inspect", str(folder), *flags])


def test_inspect_says_when_the_best_lost_its_files_and_when_a_run_is_writing(fake_catalog, options, samples):
    package = _optimize(fake_catalog, options, samples)
    best = package.best()
    clean = _inspect(package.path, "--json")
    assert clean.exit_code == 0 and json.loads(clean.stdout)["problems"] == []
    victim = best.artifact if best.artifact.is_file() else next(p for p in best.artifact.rglob("*") if p.is_file())
    victim.unlink()  # deleted by hand
    shown = _inspect(package.path)
    said = " ".join(shown.output.split())
    assert f"warning: the selected candidate {best.id} cannot be loaded" in said
    assert victim.name in said
    with WorkspaceLock(package.path):
        (problem,) = json.loads(_inspect(package.path, "--json").stdout)["problems"]
    assert problem.startswith(f"a run is in progress in this workspace (process {os.getpid()} on ")
    assert problem.endswith("these results are partial")


# -- a run stopped by SIGTERM or SIGHUP ----------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_run_stopped_by_sigterm_or_sighup_is_handled_as_ctrl_c(tmp_path, model_file, sig):
    """``timeout``, CI and ``docker stop`` send SIGTERM, a closed SSH session SIGHUP: the run keeps
    what finished, marks itself interrupted, writes its manifest and exits as that signal would."""
    ws = tmp_path / "ws"
    run = subprocess.Popen(
        _cli(ws, model_file), env=_env(SEXTANT_FAULTS="hang"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(ws / "logs" / "fault-hang.log", run)
        deadline = time.monotonic() + DEADLINE_S
        while not (children := _hanging_steps(ws)):  # the step runs: the run waits on it now
            assert time.monotonic() < deadline and run.poll() is None, "the step's process was not found"
            time.sleep(0.1)
        run.send_signal(sig)
        _, err = run.communicate(timeout=DEADLINE_S)
    finally:
        run.kill()
    said = " ".join(err.split())
    assert run.returncode == 128 + sig, said
    assert f"stopped by {sig.name}: every finished step is kept in the workspace" in said
    assert "Run the same command again to resume" in said
    status = json.loads((ws / "status.json").read_text())
    assert status["interrupted"] == "fault-hang" and status["run"]["complete"] is False
    assert status["steps"]["fake-graph"]["status"] == "ok"
    assert (ws / "manifest.json").is_file()
    shown = _inspect(ws)
    assert "the run was interrupted during fault-hang" in " ".join(shown.output.split())
    deadline = time.monotonic() + DEADLINE_S
    while any(_alive(pid) for pid in children):  # the step was stopped with its run
        assert time.monotonic() < deadline, f"steps {children} outlived their run"
        time.sleep(0.1)


def test_inspect_of_a_run_killed_before_it_selected_says_so(fake_catalog, options, samples):
    package = _optimize(fake_catalog, options, samples)
    status = json.loads((package.path / "status.json").read_text())
    del status["selection"]  # as a run killed with -9 leaves it
    write_json(package.path / "status.json", status)
    said = " ".join(_inspect(package.path).output.split())
    assert "no candidate selected: None" not in said
    assert "the run stopped before it finished (it was killed, or it is still running)" in said
