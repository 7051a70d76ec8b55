"""``sextant bundle``: a package as one file, opened elsewhere without its workspace."""

from __future__ import annotations

import io
import json
import shutil
import tarfile

import numpy as np
import pytest
import sextant
from sextant.bundle import bundle, opened
from sextant.cli._common import State
from sextant.cli.root import app
from sextant.errors import PackageError, UsageError
from sextant.testing.fake import NumpyMLP
from typer.testing import CliRunner


def test_a_bundled_package_loads_after_its_workspace_is_gone(fake_catalog, options, samples, tmp_path):
    package = sextant.optimize(NumpyMLP(), samples, options=options, catalog=fake_catalog)
    best = package.best()
    want = best.load(fake_catalog, trust_source=True).infer(samples[0])
    result = CliRunner().invoke(app, ["bundle", str(package.path), "--json"], obj=State(fake_catalog))
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    assert made["kind"] == "package" and made["bundle"].endswith("ws.sextant.tgz")
    moved = tmp_path / "elsewhere" / "model.sextant.tgz"
    moved.parent.mkdir()
    shutil.move(made["bundle"], moved)
    shutil.rmtree(package.path)

    loaded = sextant.load(moved)
    assert loaded.best().id == best.id
    got = loaded.best().load(fake_catalog, trust_source=True).infer(samples[0])
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    assert sextant.load(moved).path == loaded.path  # extracted once, then reused
    shown = CliRunner().invoke(app, ["inspect", str(moved), "--json"], obj=State(fake_catalog))
    assert shown.exit_code == 0 and json.loads(shown.stdout)["selection"]["best"] == best.id


def test_a_bundle_with_a_file_its_index_does_not_list_is_refused(fake_catalog, options, samples, tmp_path):
    package = sextant.optimize(NumpyMLP(), samples, options=options, catalog=fake_catalog)
    made = bundle(package.path, tmp_path / "b.sextant.tgz")
    planted = tmp_path / "planted.sextant.tgz"
    with tarfile.open(made.path) as source, tarfile.open(planted, "w:gz") as target:
        for member in source.getmembers():
            target.addfile(member, source.extractfile(member))
        extra = tarfile.TarInfo("source/extra.pkl")
        extra.size = 3
        target.addfile(extra, io.BytesIO(b"abc"))
    with pytest.raises(PackageError, match="holds source/extra.pkl, which its index does not list"):
        opened(planted, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing half-extracted is left to be taken as whole


def test_bundling_what_is_not_a_workspace_says_what_to_give(tmp_path):
    with pytest.raises(UsageError, match="neither a package nor a pipeline workspace"):
        bundle(tmp_path)
