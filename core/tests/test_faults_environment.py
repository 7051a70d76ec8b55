"""Failures of the machine, not of the model: out of memory is said as such and tried again by
the next run; environment errors (a read-only workspace, a damaged bundle) are explained, not
reported as bugs."""

from __future__ import annotations

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
