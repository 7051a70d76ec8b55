"""The loader, runner and comparator on ONNX's own backend test models (written by others, shipped
in the onnx wheel with their inputs and expected outputs)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import numpy_helper
from sextant.compare import Tolerance, compare
from sextant.errors import SextantError
from sextant.runtime import RunnerRequest

ort = pytest.importorskip("onnxruntime")
DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
SUITES = ("pytorch-converted", "pytorch-operator", "simple")
MODELS = sorted(p for suite in SUITES for p in (DATA / suite).glob("*/model.onnx"))


def _read(files):
    arrays = []
    for file in files:
        tensor = onnx.TensorProto()
        tensor.ParseFromString(file.read_bytes())
        arrays.append(numpy_helper.to_array(tensor))
    return arrays


def _run(catalog, model_path: Path) -> str:
    from sextant_onnx.runner import load

    source = catalog.load_source(model_path)
    signature = source.signature
    data = sorted(model_path.parent.glob("test_data_set_*"))[0]
    inputs = dict(zip(signature.input_names, _read(sorted(data.glob("input_*.pb")))))
    expected = _read(sorted(data.glob("output_*.pb")))
    runner = load(RunnerRequest(artifact=model_path, signature=signature, threads=1))
    try:
        got = runner.infer(inputs)
    finally:
        runner.close()
    names = list(got)
    verdict = compare(dict(zip(names, expected)), got, Tolerance(1e-4, 1e-3))
    assert verdict.passed, f"{model_path.parent.name}: {verdict.summary()}"
    return "passed"


# What ONNX Runtime refuses in this suite, each for its own reason; every other model runs and
# matches. A new onnx or ONNX Runtime release that changes this list changes the test with it.
# Opset-6 models it cannot load (it supports opset 7 and later; most opset-6 models here still load):
REFUSED_OPSET_6 = {
    "test_AvgPool1d",
    "test_AvgPool1d_stride",
    "test_AvgPool2d",
    "test_AvgPool2d_stride",
    "test_AvgPool3d",
    "test_AvgPool3d_stride",
    "test_AvgPool3d_stride1_pad0_gpu_input",
    "test_BatchNorm1d_3d_input_eval",
    "test_BatchNorm2d_eval",
    "test_BatchNorm2d_momentum_eval",
    "test_BatchNorm3d_eval",
    "test_BatchNorm3d_momentum_eval",
    "test_GLU",
    "test_GLU_dim",
    "test_Linear",
    "test_PReLU_1d",
    "test_PReLU_1d_multiparam",
    "test_PReLU_2d",
    "test_PReLU_2d_multiparam",
    "test_PReLU_3d",
    "test_PReLU_3d_multiparam",
    "test_PoissonNLLLLoss_no_reduce",
    "test_Softsign",
    "test_operator_add_broadcast",
    "test_operator_add_size1_broadcast",
    "test_operator_add_size1_right_broadcast",
    "test_operator_add_size1_singleton_broadcast",
    "test_operator_addconstant",
    "test_operator_addmm",
    "test_operator_basic",
    "test_operator_mm",
    "test_operator_non_float_params",
    "test_operator_params",
    "test_operator_pow",
}
# The training-preview Gradient operator, and the StringNormalizer models whose stop words or case
# change its kernel rejects at load:
REFUSED_OPERATORS = {
    "test_gradient_of_add",
    "test_gradient_of_add_and_mul",
    "test_strnorm_model_monday_casesensintive_lower",
    "test_strnorm_model_monday_casesensintive_upper",
    "test_strnorm_model_monday_empty_output",
    "test_strnorm_model_monday_insensintive_upper_twodim",
}


def test_a_broad_sample_of_backend_models(catalog):
    assert len(MODELS) > 100
    passed: list[str] = []
    refused: dict[str, str] = {}
    for path in MODELS:
        try:
            _run(catalog, path)
            passed.append(path.parent.name)
        except SextantError as exc:  # an unsupported model must say so plainly
            assert exc.message.startswith("ONNX Runtime cannot load model.onnx: ") and exc.hint, path
            refused[path.parent.name] = exc.hint
    print(f"\n{len(passed)} passed, {len(refused)} refused with a clear error")
    expected = REFUSED_OPSET_6 | REFUSED_OPERATORS
    assert set(refused) == expected, {"refused, not expected": set(refused) - expected, "ran": expected - set(refused)}
    for name in REFUSED_OPSET_6:  # the hint names the cause and the way out
        assert refused[name].startswith("The model uses opset 6; ONNX Runtime supports opset 7 and later."), name
    for name in REFUSED_OPERATORS:
        assert refused[name] == "An operator may be missing from this ONNX Runtime build, or the model may be invalid."
    assert len(passed) == len(MODELS) - len(refused)
