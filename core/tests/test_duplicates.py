"""Duplicates (sextant.optimizer.duplicates): ``fault-slow`` (with no sleep) writes the very graph
``fake-graph`` writes, so it, the fp16 conversion of it and every candidate on them are measured
once, under fake-graph's chain, and recorded as duplicates of what was."""

from dataclasses import replace

import sextant
from sextant.cli.tables import reasons
from sextant.testing.fake import NumpyMLP


def test_a_chain_with_the_same_bytes_is_recorded_as_a_duplicate_and_measured_once(fault_catalog, options, samples):
    catalog = fault_catalog("slow", slow_s=0)
    options = replace(options, precisions=("fp32", "fp16"), paired_rounds=0)
    status = sextant.optimize(NumpyMLP(), samples, options=options, catalog=catalog).status
    steps, candidates = status["steps"], status["candidates"]
    assert steps["fake-graph"]["status"] == "ok" and steps["fake-graph+fake-fp16"]["status"] == "ok"
    assert steps["fault-slow"]["status"] == "duplicate" and steps["fault-slow"]["duplicate_of"] == "fake-graph"
    converted = steps["fault-slow+fake-fp16"]  # the same converter on the same bytes: not built at all
    assert converted["status"] == "duplicate" and converted["duplicate_of"] == "fake-graph+fake-fp16"
    assert "seconds" not in converted and "artifact" not in converted
    for step in ("fault-slow", "fault-slow+fake-fp16"):
        twin = step.replace("fault-slow", "fake-graph")
        record = candidates[f"{step}:fake-graph@cpu"]
        assert record["status"] == "duplicate", record
        assert record["duplicate_of"] == f"{twin}:fake-graph@cpu"
        assert record["reason"] == (
            f"same as {twin}:fake-graph@cpu, measured in its place ({step} has the same bytes as {twin})"
        )
        assert "profile" not in record and "seconds" not in record  # no child, no measurement
        assert candidates[f"{twin}:fake-graph@cpu"]["status"] == "ok"
    ranking = status["selection"]["ranking"]
    assert ranking and not any(c.startswith("fault-slow") for c in ranking)
    said = " ".join(reasons(status))  # what `sextant inspect` says
    assert "fault-slow:fake-graph@cpu: [dim]duplicate: same as fake-graph:fake-graph@cpu, measured in its place" in said
    ran = status["run"]["ran"]

    again = sextant.optimize(NumpyMLP(), samples, options=options, catalog=catalog).status  # nothing changed
    assert again["run"]["ran"] == 0 and ran > 0
    assert again["steps"]["fault-slow"]["status"] == "duplicate" and again["steps"]["fault-slow"]["cached"]
    for cid in ("fault-slow:fake-graph@cpu", "fault-slow+fake-fp16:fake-graph@cpu"):
        assert again["candidates"][cid]["status"] == "duplicate" and "profile" not in again["candidates"][cid]
    assert again["selection"]["ranking"] == ranking


def test_a_graph_that_differs_only_in_metadata_is_a_duplicate_by_its_canonical_form(fault_catalog, options, samples):
    """``fault-relabel`` writes fake-graph's graph signed by another producer: other bytes, the same
    canonical form (the fake format's ``FormatSpec.canonical_hash``): measured once, and a re-run
    keeps it a duplicate."""
    catalog = fault_catalog("relabel")
    options = replace(options, paired_rounds=0)
    status = sextant.optimize(NumpyMLP(), samples, options=options, catalog=catalog).status
    steps, candidates = status["steps"], status["candidates"]
    relabelled, original = steps["fault-relabel"], steps["fake-graph"]
    assert relabelled["content"] != original["content"] and relabelled["canonical"] == original["canonical"]
    assert (relabelled["status"], relabelled["duplicate_of"]) == ("duplicate", "fake-graph")
    assert relabelled["reason"] == (
        "same fake-graph as fake-graph in canonical form (the files differ only in what does not change what runs: "
        "producer, doc strings, names)"
    )
    record = candidates["fault-relabel:fake-graph@cpu"]
    assert record["status"] == "duplicate" and "profile" not in record
    assert record["reason"] == (
        "same as fake-graph:fake-graph@cpu, measured in its place "
        "(fault-relabel has the same canonical form as fake-graph)"
    )
    again = sextant.optimize(NumpyMLP(), samples, options=options, catalog=catalog).status
    assert again["run"]["ran"] == 0 and again["steps"]["fault-relabel"]["status"] == "duplicate"


def test_a_duplicate_of_a_candidate_skipped_for_the_budget_says_it_was_not_measured_either():
    """The twin was skipped (its slow build does not fit what is left of --budget-s): nothing was
    measured in its place, so the duplicate is skipped too, for the same cause, saying so."""
    from types import SimpleNamespace

    from sextant.optimizer.duplicates import duplicate_candidate
    from sextant.records import CandidateRecord, Cause, Status, StepRecord

    def step(content: str, **fields) -> StepRecord:
        return StepRecord("export", "x", "p", "source", "fake-graph", "fp32", "cpu", "key", content=content, **fields)

    base = CandidateRecord("fault-slow", "fake-graph", "fake-graph", "fake 1", "cpu", "fp32")
    twin_reason = "not tried: its build took 9.0 s last time, more than the 2.0 s left of the run's --budget-s 5 s"
    twin = CandidateRecord(
        "fake-graph", "fake-graph", "fake-graph", "fake 1", "cpu", "fp32", status=Status.SKIPPED,
        reason=twin_reason, cause=Cause.BUDGET,
    )  # fmt: skip
    steps = {"fake-graph": step("abc", status=Status.OK), "fault-slow": step("abc", status=Status.DUPLICATE)}
    ledger = SimpleNamespace(
        steps=steps, run_candidates=["fake-graph:fake-graph@cpu"], candidates={"fake-graph:fake-graph@cpu": twin}
    )
    planned = SimpleNamespace(step="fault-slow", id="fault-slow:fake-graph@cpu")
    duplicate_of = replace(steps["fault-slow"], duplicate_of="fake-graph")
    record = duplicate_candidate(SimpleNamespace(ledger=ledger), planned, duplicate_of, base)
    assert (record.status, record.cause, record.duplicate_of) == (Status.SKIPPED, Cause.BUDGET, None)
    assert record.reason == (
        "not measured: same as fake-graph:fake-graph@cpu (fault-slow has the same bytes as fake-graph), which was "
        f"skipped, so nothing was measured in its place ({twin_reason})"
    )
    measured = replace(twin, status=Status.OK, reason=None, cause=None)
    ledger.candidates["fake-graph:fake-graph@cpu"] = measured
    record = duplicate_candidate(SimpleNamespace(ledger=ledger), planned, duplicate_of, base)
    assert record.status == Status.DUPLICATE and record.duplicate_of == "fake-graph:fake-graph@cpu"
    assert record.reason.endswith("measured in its place (fault-slow has the same bytes as fake-graph)")


FINGERPRINTED = """
    import numpy as np
    from sextant.hookspecs import hookimpl
    from sextant.specs import ExporterSpec, Format, RunnerSpec
    from sextant.testing import fake

    COPY = Format("graph-copy")

    class Runner:
        def __init__(self, request, shift):
            self.inner, self.shift = fake.load_graph(request), shift

        def infer(self, inputs):
            return {name: value + self.shift for name, value in self.inner.infer(inputs).items()}

        def fingerprint(self):  # what every runner of this plugin compiles the graph to: the same
            return "same-graph:" + ",".join(f"{k}{v.shape}" for k, v in sorted(self.inner.weights.items()))

        def close(self):
            self.inner.close()

    def load(request):
        return Runner(request, 0.0)

    def load_wrong(request):
        return Runner(request, 1.0)

    @hookimpl
    def sextant_register_exporters():
        return [ExporterSpec("graph-copy", Format("numpy-mlp"), COPY, run="sextant.testing.fake:export_graph")]

    @hookimpl
    def sextant_register_runners():
        return [
            RunnerSpec("fp-wrong", fake.GRAPH, load=f"{__name__}:load_wrong"),
            RunnerSpec("fp-graph", fake.GRAPH, load=f"{__name__}:load"),
            RunnerSpec("fp-copy", COPY, load=f"{__name__}:load"),
        ]
"""


def test_a_runner_that_compiles_the_same_graph_as_one_measured_is_recorded_as_its_duplicate(
    catalog_with, options, samples
):
    """Three runners report one fingerprint (``Fingerprinted``) on two formats' files: the one whose
    outputs are wrong is incorrect; of the two others, one is measured and the other, its outputs
    judged on their own, is a duplicate of that one, never of the incorrect one; a re-run runs nothing."""
    catalog = catalog_with("fingerprinted_plugin", FINGERPRINTED)
    options = replace(options, paired_rounds=0, no_history=True)
    status = sextant.optimize(NumpyMLP(), samples, options=options, catalog=catalog).status
    candidates = status["candidates"]
    wrong = candidates["fake-graph:fp-wrong@cpu"]
    assert wrong["status"] == "incorrect" and wrong["fingerprint"].startswith("same-graph:")
    pair = [candidates["fake-graph:fp-graph@cpu"], candidates["graph-copy:fp-copy@cpu"]]
    pair_ids = ("fake-graph:fp-graph@cpu", "graph-copy:fp-copy@cpu")
    (measured_id,) = [cid for cid in pair_ids if candidates[cid]["status"] == "ok"]
    measured, (duplicate,) = candidates[measured_id], [r for r in pair if r["status"] == "duplicate"]
    assert measured["profile"]["points"] and measured["fingerprint"] == duplicate["fingerprint"] == wrong["fingerprint"]
    assert duplicate["duplicate_of"] == measured_id
    assert duplicate["reason"] == (
        f"compiles to the same graph as {measured_id}, run the same way (its runner's fingerprint): "
        "measured in its place; its own outputs passed"
    )
    assert duplicate["correctness"]["passed"] and "profile" not in duplicate  # judged, not profiled
    assert candidates["fake-graph:fake-graph@cpu"]["status"] == "ok"  # a runner with no fingerprint: measured
    assert "duplicate" not in [candidates[c]["status"] for c in status["selection"]["ranking"]]
    assert "duplicate: compiles to the same graph as" in " ".join(reasons(status))

    again = sextant.optimize(NumpyMLP(), samples, options=options, catalog=catalog).status
    assert again["run"]["ran"] == 0
    reused = [again["candidates"][cid] for cid in ("fake-graph:fp-graph@cpu", "graph-copy:fp-copy@cpu")]
    assert sorted(r["status"] for r in reused) == ["duplicate", "ok"] and all(r["cached"] for r in reused)
