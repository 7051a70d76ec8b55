"""The torch plugin on real architectures built here with random weights."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import replace

import numpy as np
import pytest
import sextant
import torch
from sextant.devices import cuda_unavailable_reason
from sextant.testing.contracts import (
    check_candidates_on_device,
    check_computed_in_reduced_precision,
    check_judged_against_the_reference,
    check_plugin,
)
from torch import nn

HAS_ONNX_EXPORT = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript"))
# the onnxruntime runner comes with the onnx plugin, which this plugin's own test venv lacks
HAS_ORT = importlib.util.find_spec("sextant_onnx") is not None
NO_COMPILE = ("torch-eager", "torchscript", "torch-exported") + (("onnxruntime",) if HAS_ORT else ())


def test_entry_point_and_contracts():
    (ep,) = [e for e in importlib.metadata.entry_points(group="sextant") if e.name == "torch"]
    assert ep.load().__name__ == "sextant_torch"
    names = {c.name for c in check_plugin("sextant_torch")}
    assert {"torchscript-trace", "torch-export", "torch-onnx", "torch-eager", "torch-compile"} <= names


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(8 * 8 * 8, 5)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


class DictEncoder(nn.Module):
    """A transformer encoder with an attention mask, dict inputs and dict outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, input_ids, attention_mask):
        hidden = self.encoder(self.embed(input_ids), src_key_padding_mask=attention_mask == 0)
        return {"hidden": hidden, "pooled": hidden.mean(1)}


class TupleOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 3), nn.Linear(6, 2)

    def forward(self, x):
        return self.a(x), torch.softmax(self.b(x), -1)


class WithTable(nn.Module):
    """Returns, besides its batched output, a tensor with no batch axis."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)
        self.table = nn.Parameter(torch.randn(5, 3))

    def forward(self, x):
        return self.lin(x), self.table * 2


def test_an_output_without_a_batch_axis(catalog, options):
    torch.manual_seed(0)
    x = np.ones((3, 4), np.float32)
    status = _optimize(WithTable().eval(), x, catalog, options, runners=("torch-eager", "torchscript")).status
    table = status["signature"]["outputs"][1]
    assert table == {"name": "output_1", "dtype": "float32", "shape": [5, 3], "batched": False}
    _ok(status, "torchscript-trace:torchscript@cpu")


class Scaled(nn.Module):
    """Takes an input with no batch axis (a per-feature scale)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x, scale):
        return self.lin(x * scale)


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow: torch.export refuses it
            return self.lin(x)
        return -self.lin(x)


def _optimize(model, samples, catalog, options, **kw):
    return sextant.optimize(model, samples, options=replace(options, **kw), catalog=catalog)


def _ok(status, candidate):
    record = status["candidates"][candidate]
    assert record["status"] == "ok", (candidate, record.get("reason"), record.get("log_tail"))
    return record


def test_convnet_every_format(catalog, options):
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    status = _optimize(ConvNet().eval(), x, catalog, options, runners=NO_COMPILE).status
    # ONNX exports are planned only when something can run ONNX (the onnx plugin installed too)
    steps = ("torchscript-trace", "torchscript-script", "torch-export") + (("torch-onnx-legacy",) if HAS_ORT else ())
    for step in steps:  # each exporter writes its own program: none is a byte-for-byte copy of another
        assert status["steps"][step]["status"] == "ok", status["steps"][step].get("reason")
    for candidate in ("source:torch-eager@cpu", "torchscript-trace:torchscript@cpu", "torch-export:torch-exported@cpu"):
        _ok(status, candidate)
    if HAS_ORT and HAS_ONNX_EXPORT:
        assert _ok(status, "torch-onnx:onnxruntime@cpu")["correctness"]["passed"]
    # checked at batch 1 and at the largest batch, not only the samples' own
    assert sorted(status["correctness_batches"]) == [1, 2, 4]
    assert status["selection"]["best"] is not None


def test_transformer_with_dict_inputs_mask_and_varying_length(catalog, options):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    def batch(n, seq):
        mask = np.ones((n, seq), np.int64)
        mask[0, seq // 2 :] = 0
        return {"input_ids": rng.integers(0, 50, (n, seq)).astype(np.int64), "attention_mask": mask}

    status = _optimize(DictEncoder().eval(), [batch(2, 6), batch(3, 9)], catalog, options, runners=NO_COMPILE).status
    signature = status["signature"]
    assert signature["call_style"] == "keyword"
    assert signature["inputs"][0]["shape"] == [None, None]  # batch and sequence both vary
    assert [o["name"] for o in signature["outputs"]] == ["hidden", "pooled"]
    _ok(status, "torchscript-trace:torchscript@cpu")
    _ok(status, "torch-export:torch-exported@cpu")
    if HAS_ORT and HAS_ONNX_EXPORT:
        _ok(status, "torch-onnx:onnxruntime@cpu")


def test_tuple_outputs_and_an_unbatched_input(catalog, options):
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    status = _optimize(TupleOut().eval(), x, catalog, options, runners=("torch-eager", "torchscript")).status
    assert [o["name"] for o in status["signature"]["outputs"]] == ["output_0", "output_1"]
    _ok(status, "torchscript-trace:torchscript@cpu")

    samples = (np.ones((2, 4), np.float32), np.linspace(0.5, 2, 4).astype(np.float32))
    status = _optimize(
        Scaled().eval(),
        samples,
        catalog,
        options,
        unbatched=("input_1",),
        runners=("torch-eager", "torch-exported", "torchscript"),
    ).status
    assert status["signature"]["inputs"][1] == {"name": "input_1", "dtype": "float32", "shape": [4], "batched": False}
    _ok(status, "torch-export:torch-exported@cpu")
    _ok(status, "torchscript-trace:torchscript@cpu")


def test_a_failing_export_fails_only_its_branch(catalog, options):
    x = np.abs(np.random.default_rng(0).standard_normal((2, 4))).astype(np.float32)
    status = _optimize(
        DataDependent().eval(), x, catalog, options, runners=("torch-eager", "torch-exported", "torchscript")
    ).status
    export = status["steps"]["torch-export"]
    assert export["status"] == "failed"
    assert "data" in export["reason"].lower() or "guard" in export["reason"].lower(), export["reason"]
    assert status["candidates"]["torch-export:torch-exported@cpu"]["status"] == "skipped"
    _ok(status, "source:torch-eager@cpu")
    assert status["selection"]["best"] is not None


def test_reduced_precision_is_named_and_uses_looser_tolerances(catalog, options):
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    package = _optimize(ConvNet().eval(), x, catalog, options, runners=("torch-eager",), precisions=("fp32", "bf16"))
    record = package.status["candidates"]["source:torch-eager/bf16@cpu"]
    assert record["precision"] == "bf16"
    # judged against the fp32 reference with bf16's tolerance, never assumed right: its status follows
    # from its outputs, and this small ConvNet is known to pass (max abs error ~2e-3 against atol 5e-2)
    check_judged_against_the_reference(package.path, record)
    assert record["status"] == "ok"
    # and computed in bf16: a runner that silently ran fp32 would match the reference to ~1e-7
    fp32 = package.status["candidates"]["source:torch-eager@cpu"]
    check_computed_in_reduced_precision(package.path, record, fp32)


def test_torch_compile_runner(catalog, options):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    x = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    status = _optimize(model, x, catalog, options, runners=("torch-compile",), formats=("torch-module",)).status
    record = _ok(status, "source:torch-compile@cpu")
    assert record["correctness"]["passed"]
    assert status["selection"]["best"] == "source:torch-compile@cpu"


def test_loaded_best_runner_matches_eager(catalog, options):
    torch.manual_seed(0)
    model = ConvNet().eval()
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    package = _optimize(model, x, catalog, options, runners=("torch-eager", "torchscript"))
    runner = package.best().load(catalog, trust_source=True)  # eager may win: its source is a pickle
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(runner.infer({"input_0": x})["output_0"], expected, rtol=1e-4, atol=1e-5)
    runner.close()


NO_CUDA = cuda_unavailable_reason() or (
    None if torch.cuda.is_available() else f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"
)


@pytest.mark.gpu
@pytest.mark.skipif(NO_CUDA is not None, reason=f"needs a CUDA device: {NO_CUDA}")
def test_cuda_paths(catalog, options):
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    package = _optimize(ConvNet().eval(), x, catalog, options, device="cuda", precisions=("fp32", "fp16", "bf16"))
    # every candidate planned on cuda was judged against the CPU fp32 reference at its precision's
    # tolerance, and its status follows from its outputs; fp16 and bf16 ran reduced
    checked = check_candidates_on_device(package.path, "cuda")
    for precision in ("fp16", "bf16"):
        assert checked[f"source:torch-eager/{precision}@cuda"]["precision"] == precision
    # fp32 on cuda gives the CPU's answers within fp32's tolerance
    for cid in ("source:torch-eager@cuda", "torchscript-trace:torchscript@cuda", "torch-export:torch-exported@cuda"):
        _ok(package.status, cid)
    best = package.status["selection"]["best"]
    assert best.endswith("@cuda") and checked[best]["status"] == "ok"
    # device time: copies in, compute and copies out apart (CUDA events), and the peak device memory
    point = checked["source:torch-eager@cuda"]["best_point"]
    assert set(point["stages_ms"]) == {"host_to_device", "compute", "device_to_host"}
    assert point["stages_ms"]["compute"] > 0 and point["device_memory_mb"] > 0


class WithModelOutput(nn.Module):
    """Returns a dataclass like a Hugging Face ModelOutput, with a None field left out."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        import dataclasses

        @dataclasses.dataclass
        class Output:
            logits: torch.Tensor
            hidden: torch.Tensor
            attentions: object = None

        return Output(self.lin(x), x * 2)


def test_dataclass_outputs_are_flattened_by_field_name(catalog, options):
    x = np.ones((2, 4), np.float32)
    status = _optimize(WithModelOutput().eval(), x, catalog, options, runners=("torch-eager",)).status
    assert [o["name"] for o in status["signature"]["outputs"]] == ["logits", "hidden"]


def test_torchscript_and_exported_program_files_are_sources(catalog, options, tmp_path):
    torch.manual_seed(0)
    model = ConvNet().eval()
    example = torch.randn(2, 3, 16, 16)
    scripted = tmp_path / "convnet.pt"
    torch.jit.trace(model, example).save(str(scripted))
    x = example.numpy()
    status = sextant.optimize(
        scripted, {"x": x}, options=replace(options, runners=("torchscript",)), catalog=catalog
    ).status
    assert status["model"]["format"] == "torchscript"
    _ok(status, "source:torchscript@cpu")

    program = tmp_path / "convnet.pt2"
    batch = torch.export.Dim("batch", min=1, max=64)
    torch.export.save(torch.export.export(model, (example,), dynamic_shapes=({0: batch},)), str(program))
    status = sextant.optimize(
        program,
        {"x": x},
        options=replace(options, workspace=tmp_path / "ws2", runners=("torch-exported",)),
        catalog=catalog,
    ).status
    assert status["model"]["format"] == "torch-exported"
    _ok(status, "source:torch-exported@cpu")
    # a file that is neither is refused by this plugin, which says what it holds
    junk = tmp_path / "weights.pt"
    torch.save(model.state_dict(), junk)
    with pytest.raises(sextant.SextantError, match="weights.pt is a state dict") as error:
        catalog.load_source(junk)
    assert "(Recognised by the torch plugin.)" in error.value.hint


def test_a_rerun_on_a_freshly_built_model_is_cached(catalog, options, tmp_path):
    """A factory builds a new object each run, and classes defined in a script are pickled with
    random ids: the source key must come from weights and code, not from the pickle's bytes."""
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    opts = replace(options, runners=("torch-eager", "torchscript"))

    def build():
        torch.manual_seed(0)
        return ConvNet().eval()

    sextant.optimize(build(), x, options=opts, catalog=catalog)
    again = sextant.optimize(build(), x, options=opts, catalog=catalog).status
    assert all(r.get("cached") for r in again["steps"].values())
    assert all(r.get("cached") for r in again["candidates"].values())
    torch.manual_seed(1)
    changed = sextant.optimize(ConvNet().eval(), x, options=opts, catalog=catalog).status
    assert not any(r.get("cached") for r in changed["candidates"].values())
