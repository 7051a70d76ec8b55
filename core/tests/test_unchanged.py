"""A re-run that loads nothing (sextant.optimizer.unchanged): the workspace's package is the answer
while nothing it depends on changed, and every change the record can see makes the run load the
model again, on the fake numpy plugin and a factory file that reads a weights file."""

from __future__ import annotations

import json
import os
import textwrap
from dataclasses import replace

import pytest
import sextant
from sextant.optimizer.events import Noted, Planned
from sextant.optimizer.unchanged import LOADED

FACTORY = """
    import json
    import socket
    from pathlib import Path

    import numpy as np
    from sextant.testing.fake import NumpyMLP

    HERE = Path(__file__).parent


    def build():
        settings = json.loads((HERE / "data" / "settings.json").read_text())
        if settings.get("download"):
            with socket.socket() as s:
                try:
                    s.connect(("127.0.0.1", 9))  # a download, as far as the run can tell
                except OSError:
                    pass
        return NumpyMLP(seed=settings["seed"])


    def samples():
        rng = np.random.default_rng(1)
        return [{"x": rng.standard_normal((4, 8)).astype(np.float32)}]
"""


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True)
    (folder / "model.py").write_text(textwrap.dedent(FACTORY))
    (folder / "data" / "settings.json").write_text(json.dumps({"seed": 0}))
    return folder.resolve()  # as the record names files


def run(project, catalog, options):
    """One optimize of the project's factory; whether it loaded the model (planned), and its notes."""
    events = []
    package = sextant.optimize(
        f"{project / 'model.py'}:build", f"{project / 'model.py'}:samples", options=options, catalog=catalog,
        on_event=events.append,
    )
    planned = any(isinstance(e, Planned) for e in events)
    return package, planned, [e.text for e in events if isinstance(e, Noted)]


def rewrite(path, text):
    """``text`` into ``path`` with a modification time that surely differs from the last one."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_an_unchanged_rerun_answers_from_the_package_and_any_change_loads_again(project, fake_catalog, options):
    package, planned, _ = run(project, fake_catalog, options)
    assert planned
    record = json.loads((package.path / LOADED).read_text())
    assert str(project / "model.py") in record["files"]
    assert str(project / "data" / "settings.json") in record["files"]  # opened by the factory
    status = (package.path / "status.json").read_bytes()

    again, planned, notes = run(project, fake_catalog, options)
    assert not planned and again.path == package.path
    assert any("the model was not loaded" in n for n in notes)
    assert (package.path / "status.json").read_bytes() == status  # the earlier run's record, untouched
    assert again.document.best == package.document.best

    rewrite(project / "data" / "settings.json", json.dumps({"seed": 1}))  # what the factory reads
    _, planned, notes = run(project, fake_catalog, options)
    assert planned and f"loaded again: {project / 'data' / 'settings.json'} changed" in " ".join(notes)
    assert not run(project, fake_catalog, options)[1]  # recorded again: unchanged since

    rewrite(project / "data" / "weights.bin", "read by native code, beside what Python read")
    assert run(project, fake_catalog, options)[1]
    assert not run(project, fake_catalog, options)[1]

    rewrite(project / "model.py", (project / "model.py").read_text() + "\n# edited\n")
    assert run(project, fake_catalog, options)[1]
    assert not run(project, fake_catalog, options)[1]

    assert run(project, fake_catalog, replace(options, max_batch_size=4))[1]  # other options
    assert run(project, fake_catalog, replace(options, max_batch_size=4, reload=True))[1]
    assert not run(project, fake_catalog, replace(options, max_batch_size=4))[1]

    outputs = next((package.path / "outputs").iterdir())
    outputs.write_bytes(outputs.read_bytes() + b"\0")  # the package changed since it was sealed
    assert run(project, fake_catalog, replace(options, max_batch_size=4))[1]


def test_a_load_that_connects_to_the_network_is_loaded_every_time(project, fake_catalog, options):
    rewrite(project / "data" / "settings.json", json.dumps({"seed": 0, "download": True}))
    package, planned, _ = run(project, fake_catalog, options)
    assert planned and not (package.path / LOADED).exists()
    assert run(project, fake_catalog, options)[1]


def test_a_model_object_is_never_found_unchanged(fake_catalog, options, samples):
    from sextant.testing.fake import NumpyMLP

    package = sextant.optimize(NumpyMLP(), samples, options=options, catalog=fake_catalog)
    assert not (package.path / LOADED).exists()


def test_a_large_folder_counts_by_its_own_stamp_beside_the_files_read_from_it(tmp_path):
    from sextant.optimizer import unchanged

    folder = tmp_path / "downloads"
    folder.mkdir()
    for i in range(unchanged.SIBLINGS + 1):
        (folder / f"f{i}").write_text(str(i))
    read = str(folder / "f0")
    found = unchanged._stamps([read])
    assert set(found) == {read, str(folder) + os.sep}  # not every file of a download folder
    assert unchanged._stamps(found) == found  # what a re-run checks comes out the same
    rewrite(folder / "f0", "read, and changed")
    assert unchanged._stamps(found) != found
    os.utime(folder, ns=(10**9, 10**9))  # so that adding a file surely changes it, however coarse the clock
    found = unchanged._stamps([read])
    (folder / "new").write_text("added")
    assert unchanged._stamps(found) != found
