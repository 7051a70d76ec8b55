"""``--budget-s``: the whole run's time; once spent nothing new starts, the best so far is selected,
and what was not tried is listed and tried by the next run. The clock is scripted: no test waits."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import pytest
import sextant
from sextant.errors import UsageError
from sextant.options import OptimizeOptions
from sextant.optimizer import budget
from sextant.testing.fake import NumpyMLP


@pytest.fixture
def ticking(monkeypatch):
    """A clock that moves one second each time it is read."""
    ticks = itertools.count()
    monkeypatch.setattr(budget, "clock", lambda: float(next(ticks)))


def _skipped_for_budget(status):
    records = [*status["steps"].values(), *status["candidates"].values()]
    return [r for r in records if r.get("cause") == "budget"]


def test_a_spent_budget_selects_the_best_so_far_and_says_what_was_not_tried(fake_catalog, options, samples, ticking):
    package = sextant.optimize(NumpyMLP(), samples, options=replace(options, budget_s=4), catalog=fake_catalog)
    status = package.status
    untried = _skipped_for_budget(status)
    assert untried and all(r["status"] == "skipped" and "--budget-s 4 s was spent" in r["reason"] for r in untried)
    measured = [cid for cid, r in status["candidates"].items() if r["status"] == "ok"]
    assert measured and status["selection"]["best"] in measured
    (note,) = [n for n in status["notes"] if "--budget-s" in n]
    steps = sum(1 for r in status["steps"].values() if r.get("cause") == "budget")
    assert f"{steps} steps and {len(untried) - steps} candidates were not tried" in note
    assert package.incomplete is None  # a budget ends a run; it does not interrupt it


def test_the_next_run_without_a_budget_tries_what_was_left_and_reuses_the_rest(fake_catalog, options, samples, ticking):
    first = sextant.optimize(NumpyMLP(), samples, options=replace(options, budget_s=4), catalog=fake_catalog).status
    finished = {cid for cid, r in first["candidates"].items() if r["status"] == "ok"}
    second = sextant.optimize(NumpyMLP(), samples, options=options, catalog=fake_catalog).status
    assert not _skipped_for_budget(second)
    assert all(second["candidates"][cid].get("cached") for cid in finished)
    left = {cid for cid, r in first["candidates"].items() if r.get("cause") == "budget"}
    assert left and all(not second["candidates"][cid].get("cached") for cid in left)
    assert not any("--budget-s" in n for n in second["notes"])


def test_a_budget_that_is_not_positive_is_refused(tmp_path):
    with pytest.raises(UsageError, match="--budget-s 0 must be positive"):
        OptimizeOptions(workspace=tmp_path, budget_s=0)


def test_a_slow_build_comes_after_every_other_default_and_is_skipped_when_it_cannot_fit(
    fault_catalog, options, samples, monkeypatch
):
    catalog = fault_catalog("compiled")
    started: list[str] = []
    sextant.optimize(
        NumpyMLP(),
        samples,
        options=options,
        catalog=catalog,
        on_event=lambda e: e.kind == "candidate_start" and started.append(e.id),
    )
    compiled = "source:fault-compiled@cpu"
    defaults = [c for c in started if "[" not in c]  # option variants come after, by design
    assert defaults[-1] == compiled and len(defaults) > 2  # measured once its rivals were

    status_path = options.workspace / "status.json"  # say its build took 1000 s
    document = json.loads(status_path.read_text())
    document["candidates"][compiled]["load_seconds"] = 1000.0
    status_path.write_text(json.dumps(document))
    other = [{k: v + 1.0 for k, v in batch.items()} for batch in samples]  # new inputs: nothing is reused
    status = sextant.optimize(NumpyMLP(), other, options=replace(options, budget_s=600), catalog=catalog).status
    record = status["candidates"][compiled]
    assert record["status"] == "skipped" and record["cause"] == "budget"
    assert "its build took 1000.0 s last time, more than the" in record["reason"]
    assert status["selection"]["best"] is not None and status["selection"]["best"] != compiled
