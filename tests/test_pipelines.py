"""Pipelines (issue 15): sextant.Module parts recorded inside a running pipeline, optimized one by
one, checked end to end, swapped in with sextant.load_optimized. A pure-torch toy pipeline first
(an encoder, then a decoder called in a loop with a growing sequence and a CFG-doubled batch)."""

from __future__ import annotations

import copy
import json
import shutil
import warnings

import pytest
from sextant.testing.requires import importorskip

torch = importorskip("torch", reason="the pipeline wrapper is torch's")
importorskip("sextant_onnx", reason="the tests restrict candidates to ones that include onnxruntime")

import sextant  # noqa: E402
from sextant.errors import SampleError, UsageError  # noqa: E402
from sextant.testing import FAST  # noqa: E402
from torch import nn  # noqa: E402

RUNNERS = ("torch-eager", "torchscript", "onnxruntime")
# timed_choice=False: what serves does not depend on timings (test_a_part_clearly_slower... covers it);
# cutoff 0 (no screening): every candidate swept in full and ranked, whatever the timings, so that
# each ranking has the same candidates in every run (the fallback test walks it)
OPTIONS = {
    "runners": RUNNERS,
    "profiler": FAST,
    "max_batch_size": 4,
    "repeats": 2,
    "timed_choice": False,
    "cutoff": 0.0,
    "paired_rounds": 0,  # no paired re-measurement of the pick (its own tests: core/tests/test_pairing.py)
}


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 16)

    def forward(self, x):
        return torch.tanh(self.proj(x))


class Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q, self.o = nn.Linear(16, 16), nn.Linear(16, 16)

    def forward(self, seq, hidden, step, scale=1.0, mask=None):
        attention = torch.softmax(self.q(seq) @ hidden.transpose(1, 2) * scale, -1)
        return {"logits": self.o(attention @ hidden) + step, "pooled": hidden.mean(1)}


class Toy:
    """Two wrapped parts and the function that runs them."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.encoder = sextant.Module(Encoder().eval(), name="encoder")
        self.decoder = sextant.Module(Decoder().eval(), name="decoder")

    @property
    def parts(self):
        return [self.encoder, self.decoder]

    @torch.no_grad()
    def __call__(self, x, scale=0.5):
        hidden = self.encoder(x)
        hidden = torch.cat([hidden, hidden])  # classifier-free guidance doubles the batch
        seq = torch.zeros(hidden.shape[0], 1, 16)
        for step in range(3):  # the sequence grows by one each step
            out = self.decoder(seq, hidden, torch.tensor(step / 10), scale=scale, mask=None)["logits"]
            seq = torch.cat([seq, out[:, -1:]], 1)
        return seq[: x.shape[0]]


DATA = [torch.randn(1, 5, 8, generator=torch.Generator().manual_seed(1)), torch.randn(2, 7, 8)]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One optimize_pipeline run, made once: its workspace and record (never changed by a test)."""
    toy = Toy()
    workspace = tmp_path_factory.mktemp("pipeline") / "ws"
    record = sextant.optimize_pipeline(toy, DATA, workspace=workspace, modules=toy.parts, **OPTIONS)
    return workspace, record


@pytest.fixture
def toy_run(first_run, tmp_path):
    """The first run's workspace copied for this test alone (a test may run the pipeline again in
    it, or load from it), with a new Toy of the same weights; whatever it installed is removed."""
    workspace, record = first_run
    mine = tmp_path / "ws"
    shutil.copytree(workspace, mine)
    toy = Toy()
    yield toy, mine, record
    for part in toy.parts:
        for key in list(part.sextant.installed()):
            part.sextant.install(key, None)


def _status(workspace, record, module):
    (structure,) = [s for s in record.structures if s.module == module]
    return structure, json.loads((workspace / structure.package / "status.json").read_text())


def test_records_structures_dynamic_axes_and_batch(toy_run):
    toy, workspace, record = toy_run
    assert json.loads((workspace / "pipeline.json").read_text())["schema"] == 1
    decoder, status = _status(workspace, record, "decoder")
    assert decoder.calls == 6 and decoder.recorded == 6  # 3 steps x 2 items, one structure
    assert decoder.description == "(seq: float32[3d], hidden: float32[3d], step: float32[0d], scale=0.5, mask=None)"
    inputs = {t["name"]: t for t in status["signature"]["inputs"]}
    assert list(inputs) == ["seq", "hidden", "step"]  # constants are no inputs
    assert inputs["seq"]["shape"] == [None, None, 16]  # batch and the growing sequence vary
    assert inputs["hidden"]["shape"] == [None, None, 16]  # the items' lengths differ
    assert inputs["step"]["batched"] is False  # a 0-d tensor has no batch axis
    batches = sorted({b for b in status["correctness_batches"]})
    assert 2 in batches and 4 in batches  # the decoder's own batch: twice the items' (CFG)
    assert record.end_to_end.passed
    assert all(s.serving.value == "optimized" and s.attempts[-1].passed for s in record.structures)
    assert [m.module for m in record.end_to_end.modules] == ["encoder", "decoder"]
    assert all(m.original.median_ms and m.optimized.median_ms for m in record.end_to_end.modules)


def test_load_optimized_serves_runners_and_warns_once_for_an_unseen_structure(toy_run):
    toy, workspace, record = toy_run
    reference = [toy(x) for x in DATA]
    eager = _load_with_eager_best(workspace, toy)  # the module itself: no unpickling, no trust needed
    assert all(label.startswith("the original module") for labels in eager.values() for label in labels.values())
    assert not toy.decoder.sextant.installed()
    served = sextant.load_optimized(workspace, modules=toy.parts, trust_source=True)
    assert set(served) == {"encoder", "decoder"}
    assert toy.decoder.sextant.installed()  # what serves it now
    for x, want in zip(DATA, reference):
        torch.testing.assert_close(toy(x), want, atol=1e-4, rtol=1e-4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        toy(DATA[0], scale=0.25)  # a constant never recorded: another structure
        toy(DATA[0], scale=0.25)
    unseen = [w for w in caught if "never recorded" in str(w.message)]
    assert len(unseen) == 1 and "'decoder'" in str(unseen[0].message)
    for part in toy.parts:
        for key in list(part.sextant.installed()):
            part.sextant.install(key, None)


def _load_with_eager_best(workspace, toy):
    """Rewrite the record so that the eager candidate is chosen, load it, put the record back."""
    from dataclasses import replace

    from sextant.pipelines.records import read_record, write_record

    record = read_record(workspace)
    eager = tuple(replace(s, chosen="source:torch-eager@cpu", runner="torch-eager") for s in record.structures)
    write_record(workspace, replace(record, structures=eager))
    try:
        return sextant.load_optimized(workspace, modules=toy.parts)
    finally:
        write_record(workspace, record)


def test_a_part_that_breaks_the_pipeline_falls_back_to_its_next_candidate(toy_run):
    toy, workspace, first = toy_run
    best = _status(workspace, first, "decoder")[0].ranking[0]

    def reject_best(results, reference):  # stands for a candidate that is wrong in the pipeline
        return not any(label.startswith(f"{best} (") for label in toy.decoder.sextant.installed().values())

    record = sextant.optimize_pipeline(
        toy, DATA, workspace=workspace, modules=toy.parts, verify_func=reject_best, **OPTIONS
    )
    decoder, _ = _status(workspace, record, "decoder")
    encoder, _ = _status(workspace, record, "encoder")
    assert decoder.ranking[0] == best  # the measurements were reused
    assert [(a.candidate, a.passed) for a in decoder.attempts] == [(best, False), (decoder.ranking[1], True)]
    assert decoder.chosen == decoder.ranking[1] and decoder.serving.value == "optimized"
    assert "verify_func rejected" in decoder.attempts[0].detail
    assert encoder.chosen == encoder.ranking[0]  # it passes alone: kept
    assert "tried alone" in record.end_to_end.detail


def test_a_part_clearly_slower_inside_the_pipeline_keeps_its_original(toy_run, monkeypatch):
    import sextant.pipelines.run as composite_run

    toy, workspace, _ = toy_run
    judged = []

    def encoder_slower(timings):  # the real timings, judged as if the encoder's choice were slower
        judged.append(timings)
        return {"encoder": "slower inside the pipeline than the original: (stands for a measurement)"}

    monkeypatch.setattr(composite_run, "slower_in_pipeline", encoder_slower)
    record = sextant.optimize_pipeline(
        toy, DATA, workspace=workspace, modules=toy.parts, **{**OPTIONS, "timed_choice": True}
    )
    encoder, _ = _status(workspace, record, "encoder")
    decoder, _ = _status(workspace, record, "decoder")
    assert set(judged[0]) == {"encoder", "decoder"} and all(t.samples_ms for pair in judged[0].values() for t in pair)
    assert encoder.serving.value == "original" and encoder.chosen is None and encoder.attempts[-1].passed
    assert decoder.serving.value == "optimized"
    served = sextant.load_optimized(workspace, modules=toy.parts)
    assert served["encoder"] == {encoder.key: f"the original module ({encoder.reason})"}
    assert not toy.encoder.sextant.installed() and toy.decoder.sextant.installed()


def test_slower_in_pipeline_needs_every_run_with_the_choice_slower():
    from sextant.pipelines.records import Serving, StructureRecord, Timing
    from sextant.pipelines.search import keep_original, slower_in_pipeline

    timings = {
        "encoder": (Timing((0.17, 0.16, 0.26)), Timing((0.46, 0.44, 0.72))),  # every optimized run slower
        "decoder": (Timing((29.9, 5.4, 30.2)), Timing((1.8, 1.5, 4.2))),
        "noisy": (Timing((1.0, 1.1, 1.2)), Timing((0.9, 1.3, 1.4))),  # overlaps: not clearly slower
    }
    slower = slower_in_pipeline(timings)
    assert set(slower) == {"encoder"} and "0.44" in slower["encoder"] and "0.17" in slower["encoder"]
    served = StructureRecord("encoder", "k", "(x)", 2, 2, "parts/e", Serving.OPTIMIZED, "c", "onnxruntime", ("c",))
    kept = keep_original(served, slower["encoder"])
    assert kept.serving is Serving.ORIGINAL and kept.chosen is None and kept.reason == slower["encoder"]


def test_a_second_run_reuses_every_measurement(toy_run):
    toy, workspace, first = toy_run
    before = {s.module: _status(workspace, first, s.module)[1]["candidates"] for s in first.structures}
    second = sextant.optimize_pipeline(toy, DATA, workspace=workspace, modules=toy.parts, **OPTIONS)
    for structure in second.structures:
        after = _status(workspace, second, structure.module)[1]["candidates"]
        assert {c: r.get("profile") for c, r in after.items()} == {
            c: r.get("profile") for c, r in before[structure.module].items()
        }


def test_bad_inputs_name_what_is_wrong(tmp_path):
    toy = Toy()
    with pytest.raises(SampleError, match="yielded no items"):
        sextant.optimize_pipeline(toy, [], workspace=tmp_path, modules=toy.parts)
    idle = sextant.Module(Encoder(), name="idle")
    with pytest.raises(UsageError, match="never called the wrapped module 'idle'"):
        sextant.optimize_pipeline(toy, DATA[:1], workspace=tmp_path, modules=[*toy.parts, idle])
    twin = sextant.Module(Encoder(), name="encoder")
    with pytest.raises(UsageError, match="two wrapped modules are named 'encoder'"):
        sextant.optimize_pipeline(toy, DATA[:1], workspace=tmp_path, modules=[*toy.parts, twin])
    odd = sextant.Module(nn.Identity(), name="odd")
    with pytest.raises(SampleError, match="'odd': cannot record its inputs: argument input is a generator"):
        sextant.optimize_pipeline(lambda x: odd(x for x in ()), DATA[:1], workspace=tmp_path, modules=[odd])
    with pytest.raises(UsageError, match="wraps a torch.nn.Module"):
        sextant.Module(lambda x: x, name="f")


def test_the_wrapper_is_transparent():
    inner = Encoder()
    inner.config = {"hidden": 16}
    wrapped = sextant.Module(inner, name="t")
    assert isinstance(wrapped, nn.Module) and wrapped.config == {"hidden": 16}
    assert isinstance(wrapped, Encoder) and type(wrapped) is sextant.Module  # reports the original's class
    copied = copy.deepcopy(wrapped)
    assert type(copied) is sextant.Module and copied.module is not inner and copied.sextant.module is copied.module
    with wrapped.sextant.original():  # nothing is served: the original, as without it
        torch.testing.assert_close(wrapped(torch.ones(1, 8)), inner(torch.ones(1, 8)))
    assert wrapped.proj is inner.proj and list(wrapped.state_dict()) == list(inner.state_dict())
    assert len(list(wrapped.parameters())) == 2
    x = torch.randn(2, 8)
    torch.testing.assert_close(wrapped(x), inner(x))


def test_inspect_shows_a_table_per_module_and_the_end_to_end_result(toy_run):
    from sextant.cli.root import app
    from typer.testing import CliRunner

    _, workspace, _ = toy_run
    result = CliRunner().invoke(app, ["inspect", str(workspace)])
    assert result.exit_code == 0, result.output
    assert "decoder" in result.output and "encoder" in result.output and "end to end: passed" in result.output
    document = json.loads(CliRunner().invoke(app, ["inspect", str(workspace), "--json"]).stdout)
    assert {s["module"] for s in document["structures"]} == {"encoder", "decoder"}


def test_a_bundle_loads_without_the_workspace_and_refuses_a_changed_file(toy_run, tmp_path, monkeypatch):
    import io
    import tarfile

    from sextant.cli.root import app
    from sextant.errors import PackageError
    from typer.testing import CliRunner

    toy, workspace, _ = toy_run
    reference = [toy(x) for x in DATA]
    monkeypatch.setenv("SEXTANT_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["bundle", str(workspace), "-o", str(tmp_path / "toy.sextant.tgz"), "--json"])
    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    assert made["kind"] == "pipeline" and made["files"] > 4
    bundle = tmp_path / "toy.sextant.tgz"
    with tarfile.open(bundle) as archive:
        names = archive.getnames()
    assert names[0] == "bundle.json" and "pipeline.json" in names and not any(".lock" in n for n in names)

    served = sextant.load_optimized(bundle, modules=toy.parts, trust_source=True)
    assert set(served) == {"encoder", "decoder"}
    for x, want in zip(DATA, reference):
        torch.testing.assert_close(toy(x), want, atol=1e-4, rtol=1e-4)
    for part in toy.parts:
        for key in list(part.sextant.installed()):
            part.sextant.install(key, None)
    (extracted,) = (tmp_path / "cache" / "bundles").iterdir()
    assert (extracted / "pipeline.json").is_file()
    shown = CliRunner().invoke(app, ["inspect", str(bundle)])
    assert shown.exit_code == 0 and "end to end: passed" in shown.output

    changed = tmp_path / "changed.sextant.tgz"  # the same index, one file's bytes altered
    with tarfile.open(bundle) as source, tarfile.open(changed, "w:gz") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name == "pipeline.json":
                data = data.replace(b'"passed": true', b'"passed": false', 1)
            member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    with pytest.raises(PackageError, match="pipeline.json is not the file the bundle recorded"):
        sextant.load_optimized(changed, modules=toy.parts)
    with pytest.raises(PackageError, match="not a sextant bundle"):
        sextant.load_optimized(workspace / "pipeline.json", modules=toy.parts)


def test_one_pipeline_run_per_workspace(toy_run):
    from sextant.errors import WorkspaceBusyError
    from sextant.optimizer.lock import WorkspaceLock

    toy, workspace, _ = toy_run
    before = (workspace / "pipeline.json").read_bytes()
    with WorkspaceLock(workspace), pytest.raises(WorkspaceBusyError, match="in use by another run in this process"):
        sextant.optimize_pipeline(toy, DATA, workspace=workspace, modules=toy.parts, **OPTIONS)
    assert (workspace / "pipeline.json").read_bytes() == before
