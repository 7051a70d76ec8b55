"""Issue 30: a note printed while ``sextant optimize`` runs is not printed again with the results
(it was: "notes print twice"); ``sextant inspect`` of the package prints it once, and a note's
brackets are text, not rich markup."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from sextant.cli import State, app
from sextant.devices import busy_reason
from sextant.testing.fake import NumpyMLP
from typer.testing import CliRunner

FAST = ["--max-batch-size", "4", "--batch-budget-s", "0.1", "--window-ms", "2"]


@pytest.fixture(autouse=True)
def _no_debug_from_outside(monkeypatch):
    monkeypatch.setenv("SEXTANT_DEBUG", "")


def test_a_note_is_printed_once_by_optimize_and_once_by_inspect(fake_catalog, tmp_path: Path, monkeypatch):
    cores = os.cpu_count() or 1
    monkeypatch.setattr(os, "getloadavg", lambda: (cores * 4.0, 1.0, 1.0))  # a busy machine: a note
    note = busy_reason(cores * 4.0, cores)
    assert note
    model = NumpyMLP().save(tmp_path / "tiny.npmlp")
    samples = tmp_path / "samples.npz"
    np.savez(samples, x=np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32))
    ws = tmp_path / "ws"
    state = State(catalog=fake_catalog)
    ran = CliRunner().invoke(app, ["optimize", str(model), "--samples", str(samples), "-w", str(ws), *FAST], obj=state)
    assert ran.exit_code == 0, ran.stderr
    flat = " ".join(ran.stderr.split())  # rich wraps long lines
    assert flat.count(" ".join(f"note: {note}".split())) == 1, ran.stderr
    shown = CliRunner().invoke(app, ["inspect", str(ws)], obj=State(catalog=fake_catalog))
    assert " ".join(shown.stderr.split()).count(" ".join(f"note: {note}".split())) == 1, shown.stderr
