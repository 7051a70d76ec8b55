"""Failures of the machine, not of the model: out of memory is said as such and tried again by
the next run; environment errors (a read-only workspace, a damaged bundle) are explained, not
reported as bugs."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import sextant
from sextant.causes import out_of_memory
from sextant.testing.fake import NumpyMLP

BASELINE = "source:numpy-eager@cpu"


def _optimize(catalog, options, samples):
    return sextant.optimize(NumpyMLP(), samples, options=options, catalog=catalog)


@pytest.mark.parametrize(
    "text",
    [
        "MemoryError: Unable to allocate 3.20 GiB for an array",
        "RuntimeError: could not create a primitive",
        "terminate called after throwing an instance of 'std::bad_alloc'",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
        "OSError: [Errno 12] Cannot allocate memory",
    ],
)
def test_the_signs_of_memory_running_out_are_recognised(text):
    assert out_of_memory(text)


@pytest.mark.parametrize("text", ["ValueError: unsupported operator 'Frobnicate'", "", None])
def test_other_errors_are_not_taken_for_memory(text):
    assert not out_of_memory(text)


def test_out_of_memory_is_said_and_tried_again_by_the_next_run(fault_catalog, options, samples, monkeypatch):
    catalog = fault_catalog("oom", "oom-kill")
    options = replace(options, steps=("fault-oom", "fault-oom-kill"))  # only these build artifacts
    monkeypatch.delenv("SEXTANT_FAULT_MEMORY", raising=False)
    status = _optimize(catalog, options, samples).status
    raised, killed = status["steps"]["fault-oom"], status["steps"]["fault-oom-kill"]
    assert raised["status"] == "failed" and raised["cause"] == "out-of-memory"
    assert raised["reason"].startswith("MemoryError: Unable to allocate")
    assert killed["status"] == "failed" and killed["cause"] == "out-of-memory"
    assert "SIGKILL (likely out of memory)" in killed["reason"]
    assert status["selection"]["best"] == BASELINE
    note = next(n for n in status["notes"] if n.startswith("the baseline was selected while others failed"))
    assert "out-of-memory: fault-oom, fault-oom-kill" in note and "tried again by the next run" in note

    monkeypatch.setenv("SEXTANT_FAULT_MEMORY", "plenty")  # the same command, once memory is free
    again = _optimize(catalog, options, samples).status
    assert again["steps"]["fault-oom"]["status"] == "ok" and not again["steps"]["fault-oom"].get("cached")
    assert again["steps"]["fault-oom-kill"]["status"] == "duplicate"  # it ran: the same bytes as fault-oom
    assert again["candidates"]["fault-oom:fake-graph@cpu"]["status"] == "ok"
    assert not any("failed for reasons of the machine" in n for n in again["notes"])


# -- environment errors, explained ------------------------------------------------------------------


def _cli(catalog, *args):
    from sextant.cli import State, app
    from typer.testing import CliRunner

    return CliRunner().invoke(app, list(args), obj=State(catalog=catalog))


def _said(result) -> str:
    return " ".join(result.output.split())


def test_a_read_only_workspace_is_explained_not_reported_as_a_bug(fake_catalog, tmp_path, monkeypatch):
    import errno
    import os

    model = NumpyMLP().save(tmp_path / "tiny.npmlp")
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):  # the file system a read-only mount would be
        if str(path).endswith(".lock") and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    result = _cli(fake_catalog, "optimize", str(model), "-w", str(tmp_path / "ws"), "--max-batch-size", "4")
    said = _said(result)
    assert result.exit_code == 1, said
    assert f"cannot write {tmp_path / 'ws' / '.lock'}: Read-only file system" in said
    assert "--workspace" in said and "This is unexpected" not in said


def test_a_source_that_cannot_be_written_is_explained(fake_catalog, tmp_path, monkeypatch):
    import errno
    import os
    from pathlib import Path

    model = NumpyMLP().save(tmp_path / "tiny.npmlp")
    real_mkdir = Path.mkdir

    def refused(self, *args, **kwargs):
        if self.name == "source.tmp":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refused)
    result = _cli(fake_catalog, "optimize", str(model), "-w", str(tmp_path / "ws"), "--max-batch-size", "4")
    said = _said(result)
    assert result.exit_code == 1, said
    assert f"cannot write {tmp_path / 'ws' / 'source.tmp'}: Permission denied" in said
    assert "This is unexpected" not in said


@pytest.mark.skipif(getattr(os, "geteuid", lambda: 0)() == 0, reason="root writes anywhere")
def test_a_workspace_without_write_permission_is_explained(fake_catalog, tmp_path):
    model = NumpyMLP().save(tmp_path / "tiny.npmlp")
    ws = tmp_path / "ws"
    ws.mkdir()
    ws.chmod(0o555)
    try:
        result = _cli(fake_catalog, "optimize", str(model), "-w", str(ws), "--max-batch-size", "4")
    finally:
        ws.chmod(0o755)
    assert result.exit_code == 1 and "Permission denied" in _said(result) and "This is unexpected" not in _said(result)


def test_an_os_error_outside_sextants_own_checks_is_not_called_a_bug(capsys):
    import errno
    import os

    from sextant.cli._common import report_error

    code = report_error(OSError(errno.EROFS, os.strerror(errno.EROFS), "/somewhere/file"), debug=False)
    said = " ".join(capsys.readouterr().err.split())
    assert code == 1
    assert "error: Read-only file system: /somewhere/file" in said
    assert "run the same command again" in said and "This is unexpected" not in said


@pytest.fixture
def bundled(fake_catalog, options, samples, tmp_path):
    from sextant.bundle import bundle

    package = _optimize(fake_catalog, options, samples)
    return bundle(package.path, tmp_path / "model.sextant.tgz").path


@pytest.mark.parametrize("kept", [0.5, 0.97])
def test_a_truncated_bundle_is_said_to_be_damaged(fake_catalog, bundled, kept):
    data = bundled.read_bytes()
    bundled.write_bytes(data[: int(len(data) * kept)])  # a download that did not finish
    result = _cli(fake_catalog, "inspect", str(bundled))
    said = _said(result)
    assert result.exit_code == 1, said
    assert f"{bundled} is a damaged bundle" in said and "Aborted" not in said
    assert "again" in said and "This is unexpected" not in said
    with pytest.raises(sextant.errors.PackageError, match="damaged bundle"):
        sextant.load(bundled)


def test_a_file_changed_in_the_extracted_copy_of_a_bundle_says_how_to_drop_the_copy(fake_catalog, bundled):
    import shutil

    from sextant.errors import PackageError

    package = sextant.load(bundled)
    best = package.best()
    victim = best.artifact
    if victim.is_dir():
        victim = next(p for p in sorted(victim.rglob("*")) if p.is_file())
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(PackageError) as refused:
        sextant.load(bundled).best().load(fake_catalog, trust_source=True)
    hint = refused.value.hint
    assert f"{package.path} is sextant's extracted copy of the bundle {bundled.resolve()}" in hint
    assert f"rm -r {package.path}" in hint and "sextant optimize" not in hint
    shutil.rmtree(package.path)  # as the hint says
    sextant.load(bundled).best().load(fake_catalog, trust_source=True).close()
