"""Reading packages: typed views over status.json, clear errors, and content keys."""

import json

import pytest
from sextant.cache import digest, hash_path
from sextant.errors import PackageError
from sextant.package import Package, write_json
from sextant.records import Status


def write_package(folder, **overrides):
    status = {
        "schema": 1,
        "model": {"name": "m"},
        "signature": {"inputs": [{"name": "x", "dtype": "float32", "shape": [None, 8], "batched": True}]},
        "candidates": {
            "a": {
                "step": "source",
                "format": "numpy-mlp",
                "runner": "numpy-eager",
                "plugin": "p",
                "device": "cpu",
                "precision": "fp32",
                "options": {},
                "status": "ok",
                "artifact": "source/model.npz",
                "profile": {"points": [], "threads": 3},
            }
        },
        "selection": {"best": "a"},
        **overrides,
    }
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "status.json", status)
    return folder


def test_candidates_are_typed_views(tmp_path):
    package = Package(write_package(tmp_path / "p"))
    best = package.best()
    assert best.id == "a" and best.status is Status.OK
    assert best.artifact == tmp_path / "p" / "source" / "model.npz"
    assert best.record.profile.threads == 3
    assert [c.id for c in package.candidates()] == ["a"]


def test_package_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(PackageError, match="is not a sextant package"):
        Package(tmp_path)
    (tmp_path / "status.json").write_text("{not json")
    with pytest.raises(PackageError, match="is not valid JSON"):
        Package(tmp_path)
    with pytest.raises(PackageError, match="has schema 7"):
        Package(write_package(tmp_path / "future", schema=7))
    no_best = Package(write_package(tmp_path / "none", selection={"best": None, "reason": "every candidate failed"}))
    with pytest.raises(PackageError, match="no selected candidate: every candidate failed"):
        no_best.best()
    with pytest.raises(PackageError, match="no candidate 'zz'"):
        no_best.candidate("zz")


def test_write_json_is_atomic_and_leaves_no_temporary_file(tmp_path):
    write_json(tmp_path / "status.json", {"a": 1})
    write_json(tmp_path / "status.json", {"a": 2})
    assert json.loads((tmp_path / "status.json").read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_content_keys_follow_content_and_names(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "w.bin").write_bytes(b"123")
    first = hash_path(tmp_path / "d")
    (tmp_path / "d" / "w.bin").write_bytes(b"124")
    assert hash_path(tmp_path / "d") != first
    (tmp_path / "d" / "w.bin").write_bytes(b"123")
    assert hash_path(tmp_path / "d") == first
    (tmp_path / "d" / "w.bin").rename(tmp_path / "d" / "v.bin")
    assert hash_path(tmp_path / "d") != first  # names count too
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})


def test_a_status_written_before_the_typed_document_reads_and_writes_back_byte_for_byte(tmp_path):
    """``data/status-1-bc1b8ff.json`` is what the ledger wrote at bc1b8ff, before it held a
    :class:`RunDocument`: it parses into typed entries, and writing it again gives the same bytes."""
    from pathlib import Path

    from sextant.package import RunDocument
    from sextant.package.document import Host, RunInfo, SearchSummary

    text = (Path(__file__).parent / "data" / "status-1-bc1b8ff.json").read_text()
    document = RunDocument.from_json(json.loads(text))
    assert json.dumps(document.to_json(), indent=2) == text
    assert isinstance(document.host, Host) and document.host.cores == 2
    assert isinstance(document.run, RunInfo) and document.run.complete and document.run.unmeasured == ()
    assert document.selection.objective.name == "throughput" and document.selection.objective.max_batch == 8
    assert document.best == document.baseline == "source:numpy-eager@cpu" and document.incomplete is None
    assert document.signature.input_names == ("x",) and document.correctness_batches == (4, 2, 1, 8)
    assert document.candidates[document.best].status is Status.OK
    searched = document.updated(search={"a": {"strategy": "grid", "measured": 3}}, later={"kept": True})
    assert searched.search == {"a": SearchSummary("grid", measured=3)} and searched.to_json()["later"] == {"kept": True}
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "status.json").write_text(text)
    assert Package(folder).document == document and Package(folder).best().id == document.best
