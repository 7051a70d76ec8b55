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


def test_a_broad_sample_of_backend_models(catalog):
    assert len(MODELS) > 100
    outcomes: dict[str, list[str]] = {"passed": [], "clear error": []}
    for path in MODELS:
        try:
            outcomes[_run(catalog, path)].append(path.parent.name)
        except SextantError as exc:  # an unsupported model must say so plainly
            assert "ONNX Runtime cannot load" in exc.message and exc.hint, path
            outcomes["clear error"].append(f"{path.parent.name}: {exc.message[:80]} / {exc.hint[:60]}")
    print(f"\n{len(outcomes['passed'])} passed, {len(outcomes['clear error'])} refused with a clear error")
    print("\n".join(outcomes["clear error"]))
    # ONNX Runtime 1.31 refuses the opset-6 models of this suite, and the string-normaliser ones
    assert len(outcomes["passed"]) >= 0.7 * len(MODELS)
