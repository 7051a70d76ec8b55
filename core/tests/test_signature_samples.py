from pathlib import Path

import numpy as np
import pytest
from sextant.errors import SampleError
from sextant.samples import load_batches, normalize, random_batches, resize_batch, save_batches
from sextant.signature import Signature, TensorSpec, infer_tensors


def test_dynamic_axes_are_the_ones_that_vary():
    batches = [
        {"ids": np.zeros((2, 16), np.int64), "mask": np.ones((2, 16), np.int64)},
        {"ids": np.zeros((3, 32), np.int64), "mask": np.ones((3, 32), np.int64)},
    ]
    ids, mask = infer_tensors(batches)
    assert ids.shape == (None, None) and ids.dtype == "int64"
    single = infer_tensors([{"x": np.zeros((2, 3, 8), np.float32)}])[0]
    assert single.shape == (None, 3, 8)
    assert single.dynamic_axes == (0,)


def test_contradicting_samples_name_the_sample_and_field():
    with pytest.raises(SampleError, match=r"sample 1, field 'x': dtype float64, but sample 0 has float32"):
        infer_tensors([{"x": np.zeros((1, 2), np.float32)}, {"x": np.zeros((1, 2), np.float64)}])
    with pytest.raises(SampleError, match=r"sample 1 has fields \['y'\]"):
        infer_tensors([{"x": np.zeros(1)}, {"y": np.zeros(1)}])
    with pytest.raises(SampleError, match=r"sample 1, field 'x': 2 axes"):
        infer_tensors([{"x": np.zeros((1, 2, 3))}, {"x": np.zeros((1, 2))}])
    with pytest.raises(SampleError, match="batch sizes differ"):
        infer_tensors([{"a": np.zeros((2, 3)), "b": np.zeros((4, 3))}])
    # an input named unbatched carries no batch axis
    specs = infer_tensors([{"a": np.zeros((2, 3)), "scale": np.zeros((4,))}], unbatched=["scale"])
    assert specs[1].batched is False and specs[1].shape == (4,)


def test_normalize_accepts_every_documented_form(tmp_path: Path):
    x = np.ones((2, 3), np.float32)
    assert normalize({"x": x})[1] == "keyword"
    batches, style = normalize((x, x))
    assert style == "positional" and list(batches[0]) == ["input_0", "input_1"]
    assert normalize(x)[0][0]["input_0"] is x
    assert len(normalize([x, x, x])[0]) == 3
    assert len(normalize(b for b in [x, x])[0]) == 2
    with pytest.raises(SampleError, match="mix"):
        normalize([{"x": x}, x])
    with pytest.raises(SampleError, match="empty"):
        normalize([])


def test_npz_round_trip_and_plain_npz(tmp_path: Path):
    batches = [{"x": np.arange(6.0).reshape(2, 3)}, {"x": np.arange(3.0).reshape(1, 3)}]
    save_batches(tmp_path / "s.npz", batches)
    back = load_batches(tmp_path / "s.npz")
    assert len(back) == 2 and np.array_equal(back[1]["x"], batches[1]["x"])
    np.savez(tmp_path / "plain.npz", x=np.zeros((5, 3)))
    assert load_batches(tmp_path / "plain.npz")[0]["x"].shape == (5, 3)
    with pytest.raises(SampleError, match="does not exist"):
        load_batches(tmp_path / "nope.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(SampleError, match="bad.npz is not an .npz archive"):
        load_batches(tmp_path / "bad.npz")


def test_resize_and_random_batches():
    sig = Signature((TensorSpec("x", "float32", (None, 3)), TensorSpec("s", "float32", (2,), batched=False)))
    batch = {"x": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.zeros(2, np.float32)}
    grown = resize_batch(batch, 5, sig)
    assert grown["x"].shape == (5, 3) and np.array_equal(grown["x"][2], batch["x"][0])
    assert grown["s"].shape == (2,)
    sig_fixed = Signature((TensorSpec("x", "int64", (3, 4)),))
    made = random_batches(sig_fixed, count=2)
    assert made[0]["x"].shape == (3, 4) and made[0]["x"].dtype == np.int64


def test_positional_samples_take_the_names_a_model_declares():
    from sextant.inputs import prepare_inputs
    from sextant.options import OptimizeOptions
    from sextant.specs import Format, SourceModel

    declared = Signature(
        (TensorSpec("tokens", "int32", (None, None)), TensorSpec("mask", "float32", (None, None))),
        call_style="positional",
    )
    source = SourceModel(Format("declared"), "m", write=lambda folder: folder, signature=declared)
    tokens, mask = np.zeros((2, 5), np.int32), np.ones((2, 5), np.float32)
    prepared = prepare_inputs(source, (tokens, mask), OptimizeOptions())
    assert prepared.signature.input_names == ("tokens", "mask")
    assert prepared.signature.call_style == "positional"
    with pytest.raises(SampleError, match="samples have 1 positional inputs, the model takes 2: tokens, mask"):
        prepare_inputs(source, (tokens,), OptimizeOptions())


def test_the_model_decides_the_batch_sizes_when_it_fixes_them_or_has_none():
    from sextant.inputs import prepare_inputs
    from sextant.options import OptimizeOptions
    from sextant.specs import Format, SourceModel

    fixed = Signature((TensorSpec("x", "float32", (4, 3)),), max_batch=4)
    source = SourceModel(Format("declared"), "m", write=lambda folder: folder, signature=fixed)
    prepared = prepare_inputs(source, None, OptimizeOptions(max_batch_size=64))
    assert prepared.max_batch == 4 and {b["x"].shape[0] for b in prepared.checks} == {4}
    assert any("fixed first dimension 4: checked and profiled at batch 4 only" in n for n in prepared.notes)
    with pytest.raises(SampleError, match="3 rows, but the model fixes its first dimension at 4"):
        prepare_inputs(source, {"x": np.zeros((3, 3), np.float32)}, OptimizeOptions())
    whole = Signature((TensorSpec("x", "float32", (None, 3)), TensorSpec("t", "float32", (5, 3), batched=False)))
    source = SourceModel(Format("declared"), "m", write=lambda folder: folder, signature=whole)
    prepared = prepare_inputs(source, None, OptimizeOptions(max_batch_size=8))
    assert prepared.signature.inputs[1].batched is False and prepared.max_batch == 8
    assert {b["t"].shape for b in prepared.checks} == {(5, 3)}
    # no input with a batch axis: one call at a time, not a sweep of identical calls
    samples = {"s": np.zeros(4, np.float32)}
    prepared = prepare_inputs(
        SourceModel(Format("f"), "m", write=lambda f: f), samples, OptimizeOptions(unbatched=("s",))
    )
    assert prepared.max_batch == 1 and any("no input has a batch axis" in n for n in prepared.notes)


def test_large_samples_are_checked_on_a_bounded_spread_of_rows_and_said(tmp_path, monkeypatch):
    from sextant import inputs
    from sextant.options import OptimizeOptions
    from sextant.specs import Format, SourceModel

    source = SourceModel(Format("numpy-mlp"), "m", lambda folder: folder / "m")
    rows = np.arange(3000, dtype=np.float32).reshape(1000, 3)
    samples = {"x": rows, "table": np.ones((5, 2), np.float32)}
    options = OptimizeOptions(max_batch_size=8, unbatched=("table",))
    prepared = inputs.prepare_inputs(source, samples, options)
    assert prepared.samples[0]["x"].shape == (1000, 3)  # kept whole for the exporters
    first = prepared.checks[0]
    assert first["x"].shape == (inputs.CHECK_ROWS, 3) and first["table"].shape == (5, 2)
    picked = first["x"][:, 0] / 3
    assert picked[0] == 0 and picked[-1] == 999 and np.all(np.diff(picked) > 0)  # spread over the batch
    assert sorted(len(c["x"]) for c in prepared.checks) == [1, 8, inputs.CHECK_ROWS]
    assert any(f"samples of up to 1,000 rows: correctness checks {inputs.CHECK_ROWS} rows" in n for n in prepared.notes)
    assert not any("MB" in n for n in prepared.notes)

    monkeypatch.setattr(inputs, "LARGE_SAMPLES_MB", 0.001)
    noted = inputs.prepare_inputs(source, samples, options).notes
    assert any(n.startswith("the samples hold 0 MB: they are written whole into the package") for n in noted)
