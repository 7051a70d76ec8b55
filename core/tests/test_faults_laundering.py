"""A re-run never launders a file changed by hand: every artifact it would reuse is checked
against the hash status.json recorded for it, and outputs or logs changed since the package was
sealed are dropped, so the manifest the re-run writes records only what a run wrote."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import sextant
from sextant.cli import State, app
from sextant.errors import PackageError
from sextant.manifest import read_manifest
from sextant.testing.fake import NumpyMLP
from typer.testing import CliRunner

STEP = "fake-graph"


def _optimize(catalog, options, samples):
    return sextant.optimize(NumpyMLP(), samples, options=options, catalog=catalog)


def _scale_a_weight(artifact, factor=3.0):
    """Still a valid model, with other answers: what a hand edit of the artifact looks like."""
    path = artifact / "weights.npz"
    with np.load(path) as data:
        weights = {k: data[k] for k in data.files}
    weights["w2"] = weights["w2"] * factor
    np.savez(path, **weights)


def test_a_changed_artifact_is_refused_then_built_again_by_the_rerun_never_laundered(fake_catalog, options, samples):
    options = replace(options, runners=("fake-graph",))  # the selected candidate runs the step's artifact
    package = _optimize(fake_catalog, options, samples)
    best = package.best()
    assert best.record.step == STEP
    x = samples[0]["x"]
    expected = NumpyMLP()(x)
    _scale_a_weight(best.artifact)

    with pytest.raises(PackageError) as refused:
        sextant.load(package.path).best().load(fake_catalog)
    assert "weights.npz changed since the package was written" in refused.value.message
    hint = refused.value.hint
    assert "records its files anew" not in hint
    assert "checks each file it would reuse" in hint and "--fresh" in hint
    shown = CliRunner().invoke(app, ["inspect", str(package.path), "--json"], obj=State(catalog=fake_catalog))
    (problem,) = json.loads(shown.stdout)["problems"]
    assert f"the selected candidate {best.id} cannot be loaded" in problem and "--fresh" in problem

    again = _optimize(fake_catalog, options, samples)
    status = again.status
    assert not status["steps"][STEP].get("cached")  # built again, not reused
    assert any(f"{STEP}: its artifact" in n and "changed since the step built it" in n for n in status["notes"])
    runner = again.best().load(fake_catalog)  # the manifest records the rebuilt artifact only
    np.testing.assert_allclose(runner.infer({"x": x})["output_0"], expected, rtol=1e-5, atol=1e-6)
    runner.close()
    assert status["candidates"][again.best().id]["correctness"]["passed"]

    third = _optimize(fake_catalog, options, samples).status  # nothing changed since: all reused
    assert third["steps"][STEP].get("cached") and not any("changed since" in n for n in third["notes"])


@pytest.mark.parametrize("whose", ["best", "reference"])  # the reference's are written by two children
def test_changed_outputs_and_logs_are_dropped_and_their_candidate_run_again(fake_catalog, options, samples, whose):
    package = _optimize(fake_catalog, options, samples)
    best = package.best() if whose == "best" else package.candidate(package.document.baseline)
    outputs = package.path / best.record.outputs
    with np.load(outputs) as data:
        saved = {k: data[k] for k in data.files}
    np.savez(outputs, **{k: v * 2 for k, v in saved.items()})
    log = package.path / best.record.log
    log.write_text("# nothing to see here\n")

    again = _optimize(fake_catalog, options, samples)
    status = again.status
    note = next(n for n in status["notes"] if "changed since the last run wrote this package" in n)
    assert best.record.outputs in note and best.record.log in note
    record = status["candidates"][best.id]
    assert not record.get("cached") and record["status"] == "ok"  # run again, not judged on the edit
    assert log.read_text() != "# nothing to see here\n"
    manifest = read_manifest(again.path)
    assert manifest is not None and best.record.outputs in manifest.files
    again.candidate(best.id).load(fake_catalog).close()


def test_a_run_killed_before_it_sealed_drops_nothing(fake_catalog, options, samples):
    """With status.json newer than the manifest, nothing tells a hand edit from the killed run's own
    work: outputs and logs are kept (artifacts are still checked against their recorded hashes)."""
    package = _optimize(fake_catalog, options, samples)
    best = package.best()
    status = json.loads((package.path / "status.json").read_text())
    status["run"]["complete"] = False  # as a later run that was killed would have left it
    (package.path / "status.json").write_text(json.dumps(status))
    (package.path / best.record.log).write_text("# written by the killed run\n")
    again = _optimize(fake_catalog, options, samples).status
    assert not any("changed since the last run wrote" in n for n in again["notes"])
    assert again["candidates"][best.id].get("cached")
