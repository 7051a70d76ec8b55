"""Bad inputs a new user gives: each fails before any work with a message that names the input,
says what is wrong with it and what to give instead (issue 20).

Commands run in this process through typer's ``CliRunner`` on the installed plugins (torch,
tensorflow, onnx); the models are built here, a few bytes each. "Before any work" means the
workspace folder is never created.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import sextant
from sextant.cli._common import State
from sextant.cli.root import app
from sextant.errors import SampleError
from sextant.plugins import Catalog, load_catalog
from typer.testing import CliRunner

FACTORIES = """
    import numpy as np
    import torch

    def make_model():
        torch.manual_seed(0)
        return torch.nn.Linear(4, 2)

    def samples():
        return [np.zeros((2, 4), np.float32)]

    def returns_none():
        pass

    def boom():
        raise RuntimeError("kaboom")

    not_callable = 3
"""


@pytest.fixture(autouse=True)
def _no_debug_from_outside(monkeypatch):
    monkeypatch.setenv("SEXTANT_DEBUG", "")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """Every bad (and one good) input file, written once."""
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper

    root = tmp_path_factory.mktemp("inputs")
    (root / "faulty.py").write_text(textwrap.dedent(FACTORIES))
    torch.save(torch.nn.Linear(4, 2).state_dict(), root / "weights.pt")
    torch.save(torch.nn.Linear(4, 2), root / "whole.pt")
    (root / "empty.pt").write_bytes(b"")
    (root / "not_savedmodel").mkdir()
    (root / "not_savedmodel" / "notes.txt").write_text("hello")
    (root / "empty_folder").mkdir()
    rng = np.random.default_rng(0)
    (root / "random.keras").write_bytes(rng.bytes(256))
    (root / "random.h5").write_bytes(rng.bytes(256))
    (root / "random.onnx").write_bytes(b"this is not a protobuf" * 4)
    weight = numpy_helper.from_array(np.ones((4, 2), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, root / "tiny.onnx")
    np.savez(root / "zero_rows.npz", x=np.zeros((0, 4), np.float32))
    (root / "text.npz").write_text("x = 1, 2, 3\n")
    np.save(root / "one_array.npy", np.zeros((2, 4), np.float32))
    np.savez(root / "ints.npz", x=np.zeros((2, 4), np.int64))
    np.savez(root / "rank3.npz", x=np.zeros((2, 4, 1), np.float32))
    (root / "samples_folder").mkdir()
    return root


def optimize(catalog: Catalog, tmp_path: Path, *args: str) -> tuple[int, str]:
    """``sextant optimize ARGS -w tmp/ws``: the exit code and stderr with its line wrapping undone;
    the workspace must not exist afterwards (the run failed before any work)."""
    workspace = tmp_path / "ws"
    result = CliRunner().invoke(app, ["optimize", *args, "-w", str(workspace)], obj=State(catalog=catalog))
    assert not workspace.exists(), "the run wrote a workspace before failing"
    return result.exit_code, " ".join(result.stderr.split())


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("weights.pt", ["weights.pt is a state dict (2 tensors: weight, bias)", "model.py:make_model", "torch plugin"]),
        ("whole.pt", ["torch.save pickle of Python objects", "does not unpickle", "model.py:make_model"]),
        ("empty.pt", ["empty.pt is an empty file (0 bytes)", "save the model again"]),
        (
            "not_savedmodel",
            [
                "no installed plugin recognises the folder",
                "(holding notes.txt)",
                "tensorflow: not a TensorFlow SavedModel: the folder has no saved_model.pb",
                "Loaders asked:",
                "torch",
                "onnx",
            ],
        ),
        ("empty_folder", ["empty_folder is an empty folder"]),
        ("random.keras", ["random.keras is not a valid Keras archive", "model.save('model.keras')"]),
        ("random.h5", ["random.h5 is not an HDF5 file"]),
        ("random.onnx", ["random.onnx is not a readable ONNX model", "export it again"]),
        ("missing.onnx", ["missing.onnx: no such file or folder"]),
        ("faulty.py:nowhere", ["faulty.py has no attribute 'nowhere'", "defines: make_model, samples"]),
        (
            "faulty.py:not_callable",
            ["no installed plugin recognises", "faulty.py:not_callable (an object of type int)"],
        ),
        ("faulty.py:boom", ["the factory", "faulty.py:boom raised RuntimeError: kaboom"]),
        ("faulty.py:returns_none", ["faulty.py:returns_none returned None", "is a `return` missing?"]),
        ("absent.py:make_model", ["absent.py: no such file"]),
    ],
)
def test_a_bad_model_says_what_it_is_and_what_to_give(catalog, files, tmp_path, model, expected):
    code, err = optimize(catalog, tmp_path, str(files / model), "--samples", str(files / "faulty.py:samples"))
    assert code == 1, err
    for text in expected:
        assert text in err
    assert "unexpected" not in err and "pip install ./plugins/onnx" not in err


@pytest.mark.parametrize(
    ("model", "samples", "expected"),
    [
        ("faulty.py:make_model", "zero_rows.npz", ["zero_rows.npz: array 'x' has shape (0, 4), an empty batch"]),
        ("faulty.py:make_model", "text.npz", ["text.npz is not an .npz archive", "numpy.savez"]),
        ("faulty.py:make_model", "one_array.npy", ["one_array.npy is a .npy file", "numpy.savez"]),
        ("faulty.py:make_model", "samples_folder", ["samples_folder is a folder", "one .npz file"]),
        ("faulty.py:make_model", "missing.npz", ["missing.npz does not exist"]),
        ("faulty.py:make_model", "faulty.py:returns_none", ["the samples function", "returns_none returned None"]),
        ("faulty.py:make_model", "faulty.py:boom", ["the samples function", "boom raised RuntimeError: kaboom"]),
        ("tiny.onnx", "ints.npz", ["input 'x': samples are int64, the model takes float32", "astype(numpy.float32)"]),
        ("tiny.onnx", "rank3.npz", ["input 'x': samples have 3 axes, the model takes (None, 4)"]),
    ],
)
def test_bad_samples_name_the_file_and_the_fault(catalog, files, tmp_path, model, samples, expected):
    code, err = optimize(catalog, tmp_path, str(files / model), "--samples", str(files / samples))
    assert code == 1, err
    for text in expected:
        assert text in err
    assert "unexpected" not in err and "pass --samples" not in err.lower()


def test_an_empty_batch_given_through_the_api_is_a_sample_error(catalog, tmp_path):
    import torch

    with pytest.raises(SampleError, match=r"input 'input_0' has shape \(0, 4\), an empty batch"):
        sextant.optimize(
            torch.nn.Linear(4, 2), np.zeros((0, 4), np.float32), catalog=catalog, workspace=tmp_path / "ws"
        )
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--cutoff", "2", ["--cutoff 2 is not a share between 0 and 1"]),
        ("--latency-budget-ms", "-1", ["latency budget must be positive, got -1", "--latency-budget-ms"]),
        ("--step-timeout", "0", ["--step-timeout 0 must be positive"]),
        ("--formats", "nosuchformat", ["--formats names nosuchformat", "Known here:", "torchscript", "onnx"]),
        ("--runners", "nosuchrunner", ["--runners names nosuchrunner", "Known here:", "torch-eager", "onnxruntime"]),
    ],
)
def test_bad_settings_fail_before_any_work_naming_the_value(catalog, files, tmp_path, flag, value, expected):
    model, samples = str(files / "faulty.py:make_model"), str(files / "faulty.py:samples")
    code, err = optimize(catalog, tmp_path, model, "--samples", samples, flag, value)
    assert code == 2, err
    for text in expected:
        assert text in err


def test_debug_is_accepted_after_the_command(catalog, files, tmp_path):
    code, err = optimize(catalog, tmp_path, str(files / "weights.pt"), "--debug")
    assert code == 1, err
    assert "Traceback" in err and "weights.pt is a state dict" in err
