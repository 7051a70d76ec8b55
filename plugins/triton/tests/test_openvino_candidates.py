"""A package whose winner is an OpenVINO candidate (what `make demo` often picks), in an environment
without OpenVINO (neither sextant-openvino nor the runtime): deploy maps it to Triton's native backends; serve, analyze and a
Python-backend deploy refuse it with exit 1, the plugin, its install command and the best candidate
this environment can serve; analyze takes --candidate; a screened candidate is warned about."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _packages import write_package
from sextant.api import MissingPluginError, Package, write_manifest
from sextant_triton import config, servable
from sextant_triton.repository import deploy_package

IR = "export-openvino-ir-0123456789"
IR_ID = "export-openvino-ir:openvino-ir@cpu"
ONNX_ID = "export-onnx:onnxruntime@cpu"
OPENVINO_OPTIONS = {"performance_hint": "throughput", "num_streams": 2, "inference_num_threads": 0}


@pytest.fixture(autouse=True)
def without_openvino(monkeypatch):
    """An environment without OpenVINO, wherever this runs: no sextant-openvino plugin, and no
    openvino runtime for the bundled server's Python-based openvino backend."""
    monkeypatch.setenv("SEXTANT_PLUGINS", "onnx,torch,search,triton")
    real = servable.installed
    monkeypatch.setattr(servable, "installed", lambda name: name != "openvino" and real(name))


def two_candidates(folder: Path, *, best: str = IR_ID, screened: str | None = None) -> Path:
    """The ONNX Runtime candidate write_package makes, plus an OpenVINO IR one (model.xml + model.bin)."""
    package = write_package(folder, format="onnx", runner="onnxruntime", options={"intra_op_threads": 1})
    (folder / "artifacts" / IR).mkdir(parents=True)
    (folder / "artifacts" / IR / "model.xml").write_text("<net/>")
    (folder / "artifacts" / IR / "model.bin").write_bytes(b"weights")
    status = json.loads((folder / "status.json").read_text())
    ir = {
        **status["candidates"][ONNX_ID],
        "step": "export-openvino-ir",
        "format": "openvino-ir",
        "runner": "openvino-ir",
        "plugin": "sextant-openvino 0.1.0",
        "options": OPENVINO_OPTIONS,
        "artifact": f"artifacts/{IR}/model.xml",
    }
    status["candidates"][IR_ID] = ir
    if screened:
        status["candidates"][screened]["profile"]["stop"] = "screened"
    others = [c for c in (IR_ID, ONNX_ID) if c != best]
    status["selection"] = {"best": best, "ranking": [best, *others]}
    (folder / "status.json").write_text(json.dumps(status, indent=2))
    write_manifest(folder)
    return package


def _cli(args: list[str]):
    from sextant.cli import State, with_plugin_commands
    from sextant.plugins import load_catalog
    from typer.testing import CliRunner

    catalog = load_catalog()
    result = CliRunner().invoke(with_plugin_commands(catalog), args, obj=State(catalog))
    return result.exit_code, " ".join(result.output.split())


def test_openvino_ir_deploys_to_tritons_openvino_backend_with_its_options(tmp_path):
    package = two_candidates(tmp_path / "pkg")
    deployment = deploy_package(package, tmp_path / "models")
    model = tmp_path / "models" / "tiny"
    written = config.to_dict(config.read(model / "config.pbtxt"))
    assert written["backend"] == "openvino" and "platform" not in written
    assert written["default_model_filename"] == "model.xml"
    assert (model / "1" / "model.xml").read_text() == "<net/>"
    assert (model / "1" / "model.bin").read_bytes() == b"weights"
    parameters = {k: v["string_value"] for k, v in written["parameters"].items()}
    assert parameters["PERFORMANCE_HINT"] == "THROUGHPUT" and parameters["NUM_STREAMS"] == "2"
    assert parameters["INFERENCE_NUM_THREADS"] == "4"  # 0 (OpenVINO chooses): the threads it was measured with
    assert parameters["INFERENCE_PRECISION_HINT"] == "f32"  # as verified, not bfloat16 where the CPU has it
    assert parameters["sextant_candidate"] == IR_ID
    said = " ".join(deployment.notes)
    assert "backend openvino: Triton's OpenVINO backend" in said and "sextant's Python-based openvino backend" in said


def test_an_onnx_file_openvino_ran_gets_onnx_runtimes_openvino_accelerator(tmp_path):
    package = write_package(tmp_path / "pkg", format="onnx", runner="openvino", options=OPENVINO_OPTIONS)
    deployment = deploy_package(package, tmp_path / "models")
    written = config.to_dict(config.read(tmp_path / "models" / "tiny" / "config.pbtxt"))
    assert written["platform"] == "onnxruntime_onnx"
    accelerators = written["optimization"]["execution_accelerators"]["cpu_execution_accelerator"]
    assert [a["name"] for a in accelerators] == ["openvino"]
    said = " ".join(deployment.notes)
    assert "with the OpenVINO execution accelerator" in said and "onnxruntime-openvino" in said
    assert "OpenVINO options inference_num_threads=0, num_streams=2, performance_hint=throughput" in said


def test_the_python_backend_needs_the_plugin_and_offers_a_candidate_that_can_run(tmp_path):
    package = two_candidates(tmp_path / "pkg")
    with pytest.raises(MissingPluginError) as raised:
        deploy_package(package, tmp_path / "models", backend="python")
    error = raised.value
    assert error.exit_code == 1
    assert f"cannot deploy to the Python backend candidate {IR_ID}" in error.message
    assert "'openvino-ir' comes from sextant-openvino, which is not installed" in error.message
    assert "pip install ./plugins/openvino" in error.hint and f"--candidate {ONNX_ID}" in error.hint
    assert not (tmp_path / "models").exists()


def test_serve_and_analyze_refuse_with_exit_1_naming_the_plugin_and_a_servable_candidate(tmp_path):
    package = two_candidates(tmp_path / "pkg")
    for command in (["serve", str(package)], ["analyze", str(package)]):
        code, said = _cli(command)
        if "tritonserver is not installed" in said:  # serve looks for the server first
            continue
        assert code == 1, said
        assert "sextant-openvino, which is not installed in this environment" in said
        assert "pip install sextant-openvino" in said and f"--candidate {ONNX_ID}" in said
    assert not (package / "analysis").exists()  # refused before anything was deployed


def test_analyze_deploys_the_candidate_it_is_given_and_warns_when_it_was_only_screened(tmp_path):
    from sextant_triton.analyze.inputs import deploy_for_analysis
    from sextant_triton.analyze.settings import AnalyzeSettings

    package = two_candidates(tmp_path / "pkg", screened=ONNX_ID)
    said: list[str] = []
    name = deploy_for_analysis(package, tmp_path / "repo", AnalyzeSettings(candidate=ONNX_ID), said.append)
    written = config.to_dict(config.read(tmp_path / "repo" / name / "config.pbtxt"))
    assert written["parameters"]["sextant_candidate"]["string_value"] == ONNX_ID
    assert written["platform"] == "onnxruntime_onnx"  # the bundled server's stand-in loads it as deployed
    assert any(line.startswith(f"warning: {ONNX_ID} was only screened") for line in said)
    # nothing this environment can serve is offered when the only other candidate was screened out
    with pytest.raises(MissingPluginError) as raised:
        deploy_for_analysis(package, tmp_path / "repo2", AnalyzeSettings(), said.append)
    assert "No other candidate of this package can be served here either" in raised.value.hint


def test_local_analysis_serves_what_the_bundled_server_cannot_load_natively_through_python(tmp_path):
    torchscript = Package(write_package(tmp_path / "ts", format="torchscript", runner="torchscript"))
    view = torchscript.candidate(torchscript.status["selection"]["best"])
    assert servable.local_backend(view) == "python"
    onnx = Package(write_package(tmp_path / "onnx", format="onnx", runner="onnxruntime"))
    assert servable.local_backend(onnx.candidate(onnx.status["selection"]["best"])) == "auto"


def test_with_the_openvino_runtime_the_bundled_server_loads_the_native_config(tmp_path, monkeypatch):
    monkeypatch.setattr(servable, "installed", lambda name: name == "openvino")  # the runtime, not the plugin
    package = Package(two_candidates(tmp_path / "pkg"))
    assert servable.local_backend(package.candidate(IR_ID)) == "auto"  # sextant's Python-based openvino backend
