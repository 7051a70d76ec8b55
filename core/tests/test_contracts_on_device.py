"""sextant.testing.contracts.check_candidates_on_device, on the fake numpy framework's CPU candidates
(the GPU tests call it for cuda): it passes on a real run and fails on each thing it guards."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace

import pytest
import sextant
from sextant.testing.contracts import check_candidates_on_device
from sextant.testing.fake import NumpyMLP

FP16 = "fake-graph+fake-fp16:fake-graph@cpu"


@pytest.fixture
def package(fake_catalog, options, samples):
    options = replace(options, precisions=("fp32", "fp16"))
    return sextant.optimize(NumpyMLP(), samples, options=options, catalog=fake_catalog).path


def _edit(package, cid, **changes):
    path = package / "status.json"
    status = json.loads(path.read_text())
    status["candidates"][cid].update(changes)
    path.write_text(json.dumps(status))


def test_a_real_run_passes_and_every_candidate_on_the_device_is_returned(package):
    checked = check_candidates_on_device(package, "cpu")
    assert set(checked) == set(json.loads((package / "status.json").read_text())["candidates"])
    assert checked[FP16]["precision"] == "fp16" and checked[FP16]["status"] == "ok"
    # an option variant skipped by policy is allowed, with its reason
    assert any("[" in cid and r["status"] == "skipped" for cid, r in checked.items())
    with pytest.raises(AssertionError, match="no candidate was planned on cuda"):
        check_candidates_on_device(package, "cuda")


def test_a_reduced_candidate_whose_outputs_are_the_references_did_not_run_reduced(package):
    record = json.loads((package / "status.json").read_text())["candidates"][FP16]
    shutil.copyfile(package / "reference.npz", package / record["outputs"])
    with pytest.raises(AssertionError, match=re.escape(f"{FP16}: outputs equal the fp32 reference bit for bit")):
        check_candidates_on_device(package, "cpu")


def test_a_failed_candidate_or_a_status_its_outputs_do_not_give_is_an_error(package):
    _edit(package, FP16, status="incorrect")  # its outputs are within fp16's tolerance: it is ok
    with pytest.raises(AssertionError):
        check_candidates_on_device(package, "cpu")
    _edit(package, FP16, status="failed", reason="CUDA error: an illegal memory access", log_tail="Traceback ...")
    with pytest.raises(AssertionError, match="CUDA error: an illegal memory access"):
        check_candidates_on_device(package, "cpu")
