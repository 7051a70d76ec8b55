"""A pick for each regime (``Selection.regimes``): the best at batch 1 (latency) and the best
throughput up to the largest batch, when they differ; ``Package.best(regime=)`` and
``best_for_batch`` return them, and the tables and the report show both. Records are written by
hand: nothing is measured."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sextant.atomic import write_json
from sextant.errors import PackageError
from sextant.htmlreport.data import read_run
from sextant.htmlreport.sections import result_card
from sextant.package import Package
from sextant.package.document import RunDocument
from sextant.objective import Objective
from sextant.records import CandidateRecord, Point, Profile, Status
from sextant.cli.tables import regime_lines
from sextant.selection import Selection, select, settle_regimes

QUICK, WIDE = "source:quick@cpu", "graph:wide@cpu"


def _record(name: str, by_batch: dict[int, float]) -> CandidateRecord:
    """A profiled candidate with these throughputs (samples/s) by batch size."""
    points = tuple(
        Point(batch=b, throughput=t, p50_ms=1000.0 * b / t, p99_ms=1100.0 * b / t) for b, t in by_batch.items()
    )
    return CandidateRecord(
        "source", "fake", name, "fake 1", "cpu", "fp32", status=Status.OK, profile=Profile(points, threads=1)
    )


RECORDS = {
    QUICK: _record("quick", {1: 10_000.0, 4: 15_000.0, 8: 16_000.0}),  # the fastest single request
    WIDE: _record("wide", {1: 5_000.0, 4: 18_000.0, 8: 40_000.0}),  # the most samples per second at 8
}


def test_the_selection_names_the_best_for_each_regime_when_they_differ():
    selection, _ = select(RECORDS, Objective.named("throughput", max_batch=8), QUICK)
    assert selection.best == WIDE and selection.regimes == {"latency": QUICK, "throughput": WIDE}
    assert Selection.from_json(selection.to_json()) == selection
    latency, _ = select(RECORDS, Objective.named("latency", max_batch=8), QUICK)
    assert latency.best == QUICK and latency.regimes == selection.regimes  # the default pick follows the objective
    paired = replace(selection, ranking=(QUICK, WIDE))  # the paired rounds found QUICK the faster after all
    assert settle_regimes(paired, selection).regimes is None and settle_regimes(selection, selection) == selection
    alone, _ = select({QUICK: RECORDS[QUICK]}, Objective.named("throughput", max_batch=8), QUICK)
    assert alone.regimes is None and "regimes" not in alone.to_json()  # one candidate best at both
    # QUICK best in both regimes, then the paired rounds pick WIDE: batch 1 keeps QUICK (it happened:
    # ResNet-18's batch-1 pick became OpenVINO's throughput hint, twice as slow there)
    one = replace(selection, ranking=(QUICK, WIDE), regimes=None)
    settled = settle_regimes(replace(one, ranking=(WIDE, QUICK)), one)
    assert settled.best == WIDE and settled.regimes == {"latency": QUICK, "throughput": WIDE}


def test_a_package_returns_each_regimes_pick_and_the_one_that_fits_a_serving_batch(tmp_path):
    selection, ranked = select(RECORDS, Objective.named("throughput", max_batch=8), QUICK)
    document = RunDocument(selection=selection, baseline=QUICK).with_records({}, ranked)
    write_json(tmp_path / "status.json", document.to_json())
    package = Package(tmp_path)
    assert package.best().id == WIDE and package.best(regime="throughput").id == WIDE
    assert package.best(regime="latency").id == QUICK
    assert [package.best_for_batch(n).id for n in (1, 3, 4, 8, 64)] == [QUICK, QUICK, WIDE, WIDE, WIDE]
    with pytest.raises(PackageError, match="unknown regime 'huge'"):
        package.best(regime="huge")

    lines = regime_lines(package.document)  # sextant inspect prints these under the table
    assert lines == [
        f"best for latency (small batches: the lowest p50 at batch 1): {QUICK}",
        f"best for throughput (large batches: the highest throughput): {WIDE}",
    ]
    card = result_card(read_run(package.document))  # the report's result card
    assert f"best for latency</dt><dd><span class=id>{QUICK}</span> (small batches" in card
    assert f"best for throughput</dt><dd><span class=id>{WIDE}</span> (large batches" in card
