"""Untrusted packages: every file a run wrote is hashed into manifest.json, loading a candidate
checks its files against it, and nothing is unpickled from a package without ``trust_source``."""

from __future__ import annotations

import hashlib
import json
import pickle

import numpy as np
import pytest
import sextant
from sextant.errors import PackageError, UntrustedSourceError
from sextant.manifest import MANIFEST, read_manifest, write_manifest
from sextant.testing.fake import NumpyMLP, PickledMLP

SOURCE = "source:numpy-eager@cpu"
GRAPH = "fake-graph:fake-graph@cpu"


def optimize(catalog, options, samples, model=None, **kw):
    return sextant.optimize(model or NumpyMLP(), samples, options=options, catalog=catalog, **kw)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Payload:
    """A pickle that runs code when loaded: it creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_finished_run_records_the_hash_of_every_file_it_wrote(fake_catalog, options, samples):
    package = optimize(fake_catalog, options, samples)
    manifest = json.loads((package.path / MANIFEST).read_text())
    assert manifest["algorithm"] == "sha256"
    on_disk = {
        p.relative_to(package.path).as_posix()
        for p in package.path.rglob("*")
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
    }
    assert set(manifest["files"]) == on_disk
    assert {"status.json", "source/model.npz", "samples.npz"} <= on_disk
    for name, digest in manifest["files"].items():
        assert digest == _sha(package.path / name), name


def test_the_run_needs_no_trust_but_a_pickled_source_loads_from_the_package_only_with_it(
    fake_catalog, options, samples
):
    package = optimize(fake_catalog, options, samples, model=PickledMLP())  # no flag: the user's own model
    assert (package.path / "source" / "model.pkl").exists()
    assert package.status["candidates"][SOURCE]["status"] == "ok"

    reopened = sextant.load(package.path)
    with pytest.raises(UntrustedSourceError) as refused:
        reopened.candidate(SOURCE).load(fake_catalog)
    assert "model.pkl is a pickled NumpyMLP" in refused.value.message
    assert "trust_source=True" in refused.value.hint and "--trust-source" in refused.value.hint

    x = samples[0]["x"]
    runner = reopened.candidate(SOURCE).load(fake_catalog, trust_source=True)
    np.testing.assert_allclose(runner.infer({"x": x})["output_0"], NumpyMLP()(x), rtol=1e-5, atol=1e-6)
    graph = reopened.candidate(GRAPH).load(fake_catalog)  # no pickle: no trust needed
    np.testing.assert_allclose(graph.infer({"x": x})["output_0"], NumpyMLP()(x), rtol=1e-5, atol=1e-6)


def test_a_changed_artifact_is_refused_naming_it_even_when_trusted(fake_catalog, options, samples):
    package = optimize(fake_catalog, options, samples)
    view = package.candidate(GRAPH)
    weights = view.artifact / "weights.npz"
    np.savez(weights, w1=np.zeros((8, 16), np.float32))
    for trust in (False, True):
        with pytest.raises(PackageError) as refused:
            view.load(fake_catalog, trust_source=trust)
        assert f"{weights} changed since the package was written" in refused.value.message
        assert "sextant optimize" in refused.value.hint
    package.candidate(SOURCE).load(fake_catalog).close()  # other candidates' files are intact


def test_a_file_added_beside_a_source_or_an_edited_status_is_refused(fake_catalog, options, samples):
    package = optimize(fake_catalog, options, samples)
    (package.path / "source" / "custom_objects.pkl").write_bytes(b"planted")
    with pytest.raises(PackageError, match=r"source/custom_objects\.pkl was added since"):
        package.candidate(SOURCE).load(fake_catalog, trust_source=True)
    (package.path / "source" / "custom_objects.pkl").unlink()
    package.candidate(SOURCE).load(fake_catalog).close()

    status = json.loads((package.path / "status.json").read_text())
    status["candidates"][GRAPH]["options"] = {"impl": "einsum"}
    (package.path / "status.json").write_text(json.dumps(status))
    with pytest.raises(PackageError, match=r"status\.json changed since"):
        sextant.load(package.path).candidate(GRAPH).load(fake_catalog)


def test_a_pickle_planted_with_a_matching_manifest_runs_nothing_without_trust(fake_catalog, options, samples, tmp_path):
    """The manifest guards against changes after the run, not against the package's author: a
    package made to look whole still unpickles nothing unless the caller trusts it."""
    package = optimize(fake_catalog, options, samples, model=PickledMLP())
    marker = tmp_path / "code-ran"
    (package.path / "source" / "model.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    write_manifest(package.path)  # as whoever made the package would
    with pytest.raises(UntrustedSourceError):
        sextant.load(package.path).candidate(SOURCE).load(fake_catalog)
    assert not marker.exists()


def test_an_artifact_outside_the_package_is_refused(fake_catalog, options, samples, tmp_path):
    package = optimize(fake_catalog, options, samples)
    status = json.loads((package.path / "status.json").read_text())
    status["candidates"][GRAPH]["artifact"] = "../elsewhere"
    (package.path / "status.json").write_text(json.dumps(status))
    write_manifest(package.path)
    with pytest.raises(PackageError, match="points outside the package"):
        sextant.load(package.path).candidate(GRAPH).load(fake_catalog, trust_source=True)


def test_a_package_from_before_manifests_says_so_and_loads_only_when_trusted(fake_catalog, options, samples):
    package = optimize(fake_catalog, options, samples)
    (package.path / MANIFEST).unlink()
    with pytest.raises(PackageError) as refused:
        package.candidate(GRAPH).load(fake_catalog)
    assert f"has no {MANIFEST}" in refused.value.message
    assert "Re-run `sextant optimize`" in refused.value.hint and "trust_source=True" in refused.value.hint
    package.candidate(GRAPH).load(fake_catalog, trust_source=True).close()


def test_an_interrupted_run_writes_its_manifest_too(fake_catalog, options, samples):
    stopped = []

    def stop(event):
        if event.kind == "candidate_end" and not stopped:
            stopped.append(event)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        optimize(fake_catalog, options, samples, on_event=stop)
    manifest = read_manifest(options.workspace)
    assert manifest is not None and "status.json" in manifest.files
    assert manifest.files["status.json"] == _sha(options.workspace / "status.json")
    assert json.loads((options.workspace / "status.json").read_text())["run"]["complete"] is False
