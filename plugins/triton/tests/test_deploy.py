"""The deployer on hand-written packages: a config.pbtxt snapshot for every backend kind (in
``golden/``), parsed back through Triton's schema, and the CPU-servable ones loaded and asked by a
real tritonserver; the settings derived from the profile; every refusal, with its message.

The files in ``golden/`` were written by the deployer itself (``SEXTANT_UPDATE_GOLDEN=1``): alone,
they catch a change, not a wrong config. The ones this repository's tritonserver can serve on a CPU
(:data:`SERVED_HERE`) are therefore loaded by it, with a real artifact, and answer a request; the
others (GPU backends, LibTorch and TensorFlow, which the server of the nvidia-pytriton wheel lacks)
are snapshots only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from _packages import POINTS, SIGNATURE, write_package
from _real_artifacts import expected, make_real
from google.protobuf import text_format
from sextant.api import SextantError, UsageError
from sextant_triton import config
from sextant_triton.repository import deploy_package
from sextant_triton.testing import NO_SERVER
from tritonclient.grpc import model_config_pb2 as mc

GOLDEN = Path(__file__).with_name("golden")
UPDATE = os.environ.get("SEXTANT_UPDATE_GOLDEN") == "1"

UNBATCHED = {
    **SIGNATURE,
    "outputs": [*SIGNATURE["outputs"], {"name": "table", "dtype": "float32", "shape": [5, 3], "batched": False}],
}

CASES = {
    "onnxruntime_cpu": dict(
        format="onnx",
        runner="onnxruntime",
        options={"graph_optimization_level": "extended", "intra_op_threads": 0, "execution_mode": "parallel"},
    ),
    "onnxruntime_openvino": dict(
        format="onnx",
        runner="onnxruntime-openvino",
        options={"graph_optimization_level": "basic", "intra_op_threads": 1},
    ),
    "onnxruntime_cuda": dict(format="onnx", runner="onnxruntime", device="cuda", options={"io_binding": True}),
    "onnxruntime_tensorrt": dict(
        format="onnx",
        runner="onnxruntime-trt",
        device="cuda",
        precision="fp16",
        options={"graph_optimization_level": "disable"},
    ),
    "pytorch_libtorch": dict(format="torchscript", runner="torchscript"),
    "tensorflow_savedmodel": dict(
        format="tf-savedmodel", runner="tf-savedmodel", options={"jit_compile": True, "inter_op_threads": 2}
    ),
    "tensorrt_plan": dict(format="tensorrt-engine", runner="tensorrt", device="cuda", options={"cuda_graph": True}),
    "openvino": dict(
        format="openvino-ir",
        runner="openvino-ir",
        options={"performance_hint": "throughput", "num_streams": 2, "inference_num_threads": 1},
    ),
    "python": dict(format="torch-exported", runner="torch-exported"),
    "python_unbatched": dict(format="torch-module", runner="torch-eager", signature=UNBATCHED),
}


def deploy_case(tmp_path: Path, case: str, **options) -> tuple[Path, object]:
    options.setdefault("trust_source", CASES[case]["format"] == "torch-module")  # a pickled nn.Module
    package = write_package(tmp_path / "pkg", **CASES[case])
    deployment = deploy_package(package, tmp_path / "models", **options)
    return tmp_path / "models" / "tiny", deployment


#: the snapshots the real tritonserver here loads (its Python backend, and sextant's Python-based
#: onnxruntime and openvino backends, which read an ``onnxruntime_onnx`` or ``openvino`` config as
#: Triton's own do)
SERVED_HERE = ("onnxruntime_cpu", "openvino", "python", "python_unbatched")
SNAPSHOTS_ONLY = tuple(case for case in CASES if case not in SERVED_HERE)


@pytest.mark.parametrize("case", CASES)
def test_config_equals_its_snapshot(tmp_path, case):
    """A snapshot test (see the module's docstring): for the cases in :data:`SNAPSHOTS_ONLY`, nothing
    here shows that a server would accept the config, only that it did not change."""
    model_dir, _ = deploy_case(tmp_path, case)
    text = (model_dir / "config.pbtxt").read_text()
    golden = GOLDEN / f"{case}.pbtxt"
    if UPDATE:
        golden.write_text(text)
    assert text == golden.read_text(), f"config.pbtxt of {case} differs from {golden}"
    # parsed back through Triton's schema: the same message, written the same way
    parsed = config.read(model_dir / "config.pbtxt")
    assert isinstance(parsed, mc.ModelConfig)
    assert text_format.MessageToString(parsed) == text
    assert parsed.name == "tiny" and parsed.parameters["sextant_candidate"].string_value.endswith(
        f":{CASES[case]['runner']}@{CASES[case].get('device', 'cpu')}"
    )


@pytest.mark.slow
@pytest.mark.skipif(bool(NO_SERVER), reason=str(NO_SERVER))
def test_the_cpu_servable_snapshots_load_in_a_real_tritonserver_and_answer(tmp_path, triton_server):
    """Each config in :data:`SERVED_HERE`, deployed from a package whose artifact is a real model,
    is its snapshot (but for the model's name), loads in tritonserver (its warmup requests included)
    and answers a request with the model's outputs."""
    import tritonclient.http as client

    repository = tmp_path / "models"
    for case in SERVED_HERE:
        package = make_real(write_package(tmp_path / case, **CASES[case]))
        deploy_package(package, repository, name=case, trust_source=CASES[case]["format"] == "torch-module")
        snapshot = text_format.Parse((GOLDEN / f"{case}.pbtxt").read_text(), mc.ModelConfig())
        snapshot.name = case
        assert config.read(repository / case / "config.pbtxt") == snapshot, case
    server = triton_server(repository)
    rng = np.random.default_rng(3)
    pixels = rng.standard_normal((2, 3, 4, 8)).astype(np.float32)  # height 4: not the warmup's 2
    mask = rng.integers(0, 2, (2, 8)).astype(np.int64)
    triton = client.InferenceServerClient(server.http_url)
    try:
        for case in SERVED_HERE:
            assert triton.is_model_ready(case), case
            requests = []
            for name, array in (("pixels", pixels), ("mask", mask)):
                tensor = client.InferInput(name, list(array.shape), "FP32" if name == "pixels" else "INT64")
                tensor.set_data_from_numpy(array)
                requests.append(tensor)
            result = triton.infer(case, requests)
            want = expected(pixels, mask, table=case == "python_unbatched")
            for name, value in want.items():
                got = result.as_numpy(name)
                assert got.dtype == value.dtype, (case, name, got.dtype)
                # a batch axis alone is served as dims [1] (reshaped to []) where batching is on
                shape = (2, 1) if name == "score" and case != "python_unbatched" else value.shape
                assert got.shape == shape, (case, name, got.shape)
                np.testing.assert_allclose(got.reshape(value.shape), value, rtol=1e-3, atol=1e-5, err_msg=case)
    finally:
        triton.close()


def _config(tmp_path, case, **options) -> mc.ModelConfig:
    model_dir, _ = deploy_case(tmp_path, case, **options)
    return config.read(model_dir / "config.pbtxt")


def test_onnxruntime_carries_the_measured_session_options(tmp_path):
    c = _config(tmp_path, "onnxruntime_cpu")
    assert (c.platform, c.backend, c.default_model_filename) == ("onnxruntime_onnx", "onnxruntime", "model.onnx")
    params = {k: v.string_value for k, v in c.parameters.items()}
    # intra_op_threads 0 means "the threads sextant gave the runner": the profile's 4
    assert params["intra_op_thread_count"] == "4" and params["inter_op_thread_count"] == "4"
    assert params["execution_mode"] == "1"  # parallel
    assert c.optimization.graph.level == 1  # Triton's "extended"
    assert (tmp_path / "models" / "tiny" / "1" / "model.onnx").read_bytes() == b"artifact bytes of onnx"


def test_execution_providers_and_devices(tmp_path):
    ov = _config(tmp_path / "ov", "onnxruntime_openvino")
    assert [a.name for a in ov.optimization.execution_accelerators.cpu_execution_accelerator] == ["openvino"]
    assert ov.optimization.graph.level == -1  # basic
    assert ov.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert ov.instance_group[0].count == 8  # 8 host threads, one per call as measured
    trt = _config(tmp_path / "trt", "onnxruntime_tensorrt")
    (accelerator,) = trt.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == "FP16"
    assert trt.optimization.graph.level == 2  # disabled
    assert trt.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU and trt.instance_group[0].count == 1
    plan = _config(tmp_path / "plan", "tensorrt_plan")
    assert plan.platform == "tensorrt_plan" and plan.optimization.cuda.graphs
    assert plan.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU


def test_libtorch_names_tensors_by_position(tmp_path):
    c = _config(tmp_path, "pytorch_libtorch")
    assert [i.name for i in c.input] == ["pixels__0", "mask__1"]
    assert [o.name for o in c.output] == ["logits__0", "score__1"]
    assert c.parameters["INTRA_OP_THREAD_COUNT"].string_value == "4"
    assert set(c.model_warmup[0].inputs) == {"pixels__0", "mask__1"}


def test_dims_dtypes_batching_and_warmup_from_the_package(tmp_path):
    c = _config(tmp_path, "python")
    assert c.backend == "python" and not c.platform
    assert c.max_batch_size == 16  # the largest batch profiled
    assert [(i.name, i.data_type, list(i.dims)) for i in c.input] == [
        ("pixels", mc.TYPE_FP32, [3, -1, 8]),  # batch axis left out, dynamic axis -1
        ("mask", mc.TYPE_INT64, [8]),
    ]
    assert [(o.name, o.data_type, list(o.dims)) for o in c.output] == [
        ("logits", mc.TYPE_FP32, [5]),
        ("score", mc.TYPE_FP16, [1]),  # a batch axis alone: dims [1] reshaped to [] (Triton's rule)
    ]
    assert c.output[1].HasField("reshape") and not c.output[1].reshape.shape and not c.output[0].HasField("reshape")
    assert list(c.dynamic_batching.preferred_batch_size) == [8, 16]  # within 10 % of the best
    assert c.dynamic_batching.max_queue_delay_microseconds == 500  # batch-1 median: 0.5 ms
    assert [(w.batch_size, dict(w.inputs)["pixels"].dims) for w in c.model_warmup] == [(1, [3, 2, 8]), (16, [3, 2, 8])]
    # the warmup file holds one sample row, in the input's dtype
    sample = np.load(tmp_path / "pkg" / "samples.npz")["pixels"][0]
    assert (tmp_path / "models" / "tiny" / "warmup" / "pixels").read_bytes() == sample.tobytes()
    # the python model: model.py and a one-candidate package beside it
    version = tmp_path / "models" / "tiny" / "1"
    status = json.loads((version / "package" / "status.json").read_text())
    (cid,) = status["candidates"]
    assert status["selection"]["best"] == cid and (version / "package" / status["candidates"][cid]["artifact"]).exists()
    assert (version / "model.py").read_text().startswith('"""The ``model.py`` of a Python-backend model')


def test_a_tensor_without_batch_axis_turns_batching_off(tmp_path):
    c = _config(tmp_path, "python_unbatched")
    assert c.max_batch_size == 0 and not c.HasField("dynamic_batching")
    assert list(c.input[0].dims) == [-1, 3, -1, 8]  # the batch axis kept, as -1
    assert list(c.output[2].dims) == [5, 3]
    assert [(w.batch_size, list(w.inputs["pixels"].dims)) for w in c.model_warmup] == [(1, [2, 3, 2, 8])]
    with pytest.raises(UsageError, match="table has no batch axis"):
        deploy_case(tmp_path / "again", "python_unbatched", max_batch_size=8)


def test_a_profile_cut_off_early_keeps_the_checked_max_batch(tmp_path):
    """A candidate whose sweep stopped because it could not win was still checked up to batch 16."""
    package = write_package(
        tmp_path / "pkg",
        format="torch-exported",
        runner="torch-exported",
        points=POINTS[:2],
        stopped="stopped early: cannot win (3300/s at batch 2 is under 70% of the best so far, 9000/s)",
    )
    deployment = deploy_package(package, tmp_path / "models")
    c = config.read(tmp_path / "models" / "tiny" / "config.pbtxt")
    assert c.max_batch_size == 16
    assert "max_batch_size 16: the largest batch checked for correctness (its profile was cut off at batch 2)" in (
        deployment.notes
    )
    plateau = write_package(tmp_path / "plateau", format="torch-exported", runner="torch-exported", points=POINTS[:2])
    deploy_package(plateau, tmp_path / "m2", name="plateau")
    assert config.read(tmp_path / "m2" / "plateau" / "config.pbtxt").max_batch_size == 2


def test_the_regime_pick_that_fits_the_max_batch_size_is_deployed(tmp_path):
    """A package whose selected best is the fastest at batch 1 and another candidate (the same
    artifact, faster from batch 2 on) the throughput pick: served up to batch 16 (the default) the
    throughput pick is deployed, up to batch 1 the latency pick; the choice is said and recorded."""
    from sextant.api import write_manifest

    package = write_package(tmp_path / "pkg", **CASES["onnxruntime_cpu"])
    status = json.loads((package / "status.json").read_text())
    quick = status["selection"]["best"]
    wide = f"{quick}+wide"
    status["candidates"][wide] = {
        **status["candidates"][quick],
        "profile": {"points": [{**p, "throughput": p["throughput"] * (0.5 if p["batch"] == 1 else 2)} for p in POINTS]},
    }
    status["selection"]["regimes"] = {"latency": quick, "throughput": wide}
    (package / "status.json").write_text(json.dumps(status))
    write_manifest(package)

    served = deploy_package(package, tmp_path / "models")
    assert served.candidate == wide and served.details["choice"]["regime"] == "throughput"
    assert served.notes[0] == (
        f"batch <= 16 (the serving default derived from the profile): the throughput pick {wide}, the faster "
        f"there (16000/s at batch 16; the latency pick {quick}: 8000/s at batch 16)"
    )
    single = deploy_package(package, tmp_path / "one", max_batch_size=1)
    assert single.candidate == quick and single.details["choice"]["reason"].startswith("batch <= 1 (--max-batch-size)")
    assert config.read(tmp_path / "one" / "tiny" / "config.pbtxt").max_batch_size == 1


def test_given_settings_override_the_measured_ones(tmp_path):
    c = _config(
        tmp_path,
        "onnxruntime_cpu",
        max_batch_size=4,
        instances=3,
        preferred_batch_sizes=(4, 2),
        queue_delay_us=0,
        version=7,
        warmup=False,
    )
    assert c.max_batch_size == 4 and c.instance_group[0].count == 3
    assert list(c.dynamic_batching.preferred_batch_size) == [2, 4]
    assert c.dynamic_batching.max_queue_delay_microseconds == 0
    assert not c.model_warmup and (tmp_path / "models" / "tiny" / "7" / "model.onnx").exists()
    off = _config(tmp_path / "off", "onnxruntime_cpu", dynamic_batching=False)
    assert off.max_batch_size == 16 and not off.HasField("dynamic_batching")


def test_a_written_repository_rereads_identically_and_a_redeploy_changes_nothing(tmp_path):
    model_dir, first = deploy_case(tmp_path, "onnxruntime_cpu")
    before = {p: p.read_bytes() for p in model_dir.rglob("*") if p.is_file()}
    second = deploy_package(tmp_path / "pkg", tmp_path / "models")
    assert {p: p.read_bytes() for p in model_dir.rglob("*") if p.is_file()} == before
    assert second.notes[-1].startswith("unchanged") and first.files == second.files
    assert config.to_text(config.read(model_dir / "config.pbtxt")) == (model_dir / "config.pbtxt").read_text()
    with pytest.raises(text_format.ParseError):  # the schema is enforced: an unknown field fails
        text_format.Parse('name: "x"\nmax_batch: 4\n', mc.ModelConfig())


def test_the_client_example_names_the_real_inputs(tmp_path):
    _, deployment = deploy_case(tmp_path, "pytorch_libtorch")
    script = tmp_path / "tiny_client.py"
    assert script in deployment.files and (tmp_path / "tiny_client_inputs.npz") in deployment.files
    text = script.read_text()
    assert "INPUTS = {'pixels__0': ('FP32', [1, 3, 2, 8]), 'mask__1': ('INT64', [1, 8])}" in text
    assert "OUTPUTS = ['logits__0', 'score__1']" in text
    compile(text, str(script), "exec")
    with np.load(tmp_path / "tiny_client_inputs.npz") as data:
        assert data["pixels__0"].shape == (1, 3, 2, 8) and data["mask__1"].dtype == np.int64


# -- refusals: each with its message, and nothing written -------------------------------------


def _nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "models").exists() and not list(tmp_path.glob("*_client*"))


def test_refuses_a_package_with_no_selection(tmp_path):
    package = write_package(tmp_path / "pkg", format="onnx", runner="onnxruntime", selected=False)
    with pytest.raises(
        UsageError, match="has no selected candidate .every candidate failed the latency budget."
    ) as err:
        deploy_package(package, tmp_path / "models")
    assert "--candidate with one that passed: export-onnx:onnxruntime@cpu" in err.value.hint
    _nothing_written(tmp_path)
    deploy_package(package, tmp_path / "models", candidate="export-onnx:onnxruntime@cpu")  # and with one, it deploys
    assert (tmp_path / "models" / "tiny" / "config.pbtxt").exists()


def test_refuses_native_where_no_backend_serves_the_candidate(tmp_path):
    package = write_package(tmp_path / "pkg", format="torch-exported", runner="torch-exported")
    with pytest.raises(
        UsageError, match=r"no native Triton backend serves export-torch-exported:torch-exported@cpu"
    ) as err:
        deploy_package(package, tmp_path / "models", backend="native")
    assert "--backend python" in err.value.hint and "torchscript on torchscript (pytorch_libtorch)" in err.value.hint
    _nothing_written(tmp_path)


def test_refuses_to_overwrite_a_model_folder_with_other_content(tmp_path):
    package = write_package(tmp_path / "pkg", format="onnx", runner="onnxruntime")
    occupied = tmp_path / "models" / "tiny"
    occupied.mkdir(parents=True)
    (occupied / "config.pbtxt").write_text('name: "someone else"\n')
    with pytest.raises(UsageError, match=r"models/tiny already exists with other content; nothing was written"):
        deploy_package(package, tmp_path / "models")
    assert [p.name for p in occupied.iterdir()] == ["config.pbtxt"]
    assert (occupied / "config.pbtxt").read_text() == 'name: "someone else"\n'
    assert not list(tmp_path.glob("*_client*"))
    deploy_package(package, tmp_path / "models", force=True)  # --force replaces it
    assert config.read(occupied / "config.pbtxt").name == "tiny" and (occupied / "1" / "model.onnx").exists()


def test_refuses_a_client_file_that_differs(tmp_path):
    package = write_package(tmp_path / "pkg", format="onnx", runner="onnxruntime")
    (tmp_path / "tiny_client.py").write_text("print('mine')\n")
    with pytest.raises(UsageError, match="tiny_client.py already exists with other content"):
        deploy_package(package, tmp_path / "models")
    assert (tmp_path / "tiny_client.py").read_text() == "print('mine')\n" and not (tmp_path / "models").exists()


def test_refuses_a_repository_path_that_is_a_file(tmp_path):
    package = write_package(tmp_path / "pkg", format="onnx", runner="onnxruntime")
    (tmp_path / "models").write_text("not a folder")
    with pytest.raises(UsageError, match=r"the repository path .*models is a file, not a folder"):
        deploy_package(package, tmp_path / "models")
    assert (tmp_path / "models").read_text() == "not a folder"


def test_refuses_unknown_or_failed_candidates_and_bad_options(tmp_path):
    package = write_package(tmp_path / "pkg", format="onnx", runner="onnxruntime")
    with pytest.raises(UsageError, match=r"no candidate 'nope' in"):
        deploy_package(package, tmp_path / "models", candidate="nope")
    status = json.loads((package / "status.json").read_text())
    record = status["candidates"]["export-onnx:onnxruntime@cpu"]
    record.update(status="incorrect", reason="max abs error 0.3 > atol 1e-4")
    (package / "status.json").write_text(json.dumps(status))
    with pytest.raises(UsageError, match=r"did not pass \(incorrect: max abs error 0.3 > atol 1e-4\)"):
        deploy_package(package, tmp_path / "models")
    with pytest.raises(UsageError, match="--backend tensorrt: choose native, python or auto"):
        deploy_package(package, tmp_path / "models", backend="tensorrt")
    with pytest.raises(UsageError, match="no option colour"):
        deploy_package(package, tmp_path / "models", colour="blue")
    with pytest.raises(SextantError, match="is not a sextant package"):
        deploy_package(tmp_path, tmp_path / "models")
    _nothing_written(tmp_path)


def test_a_pickled_source_deploys_only_with_trust_and_only_unchanged(tmp_path):
    """Triton's Python backend would unpickle a source nn.Module: deploying it needs --trust-source,
    which the model's config carries; a changed file is refused even then; the deployed package
    has its own manifest, checked when Triton loads it."""
    from sextant.api import Package
    from sextant.errors import PackageError, UntrustedSourceError

    package = write_package(tmp_path / "pkg", format="torch-module", runner="torch-eager")
    with pytest.raises(UntrustedSourceError) as refused:
        deploy_package(package, tmp_path / "models")
    assert "model.pt is a pickled torch nn.Module" in refused.value.message and "--trust-source" in refused.value.hint
    _nothing_written(tmp_path)

    deploy_package(package, tmp_path / "models", trust_source=True)
    written = config.read(tmp_path / "models" / "tiny" / "config.pbtxt")
    assert written.parameters["sextant_trust_source"].string_value == "true"
    deployed = Package(tmp_path / "models" / "tiny" / "1" / "package")
    assert (deployed.path / "manifest.json").exists()
    deployed.best().check_files()  # what the Python backend's model checks before loading

    (package / "source" / "model.pt").write_bytes(b"something else")
    with pytest.raises(PackageError, match=r"source/model\.pt changed since the package was written"):
        deploy_package(package, tmp_path / "again", trust_source=True)


def test_a_package_without_manifest_deploys_natively_only_with_trust(tmp_path):
    package = write_package(tmp_path / "pkg", format="onnx", runner="onnxruntime")
    (package / "manifest.json").unlink()
    with pytest.raises(SextantError, match="has no manifest.json"):
        deploy_package(package, tmp_path / "models")
    _nothing_written(tmp_path)
    deploy_package(package, tmp_path / "models", trust_source=True)
    assert "sextant_trust_source" not in config.read(tmp_path / "models" / "tiny" / "config.pbtxt").parameters


@pytest.mark.parametrize("case", ["pytorch_libtorch", "onnxruntime_cpu", "python"])
def test_the_start_line_names_the_bundled_server_only_for_a_config_it_loads(tmp_path, case):
    _, deployment = deploy_case(tmp_path, case)
    start = deployment.next_steps[0]
    if case == "pytorch_libtorch":  # the wheel's tritonserver has no LibTorch backend
        assert start.startswith(f"start:  tritonserver --model-repository {tmp_path / 'models'}")
        assert "python -m sextant_triton.server cannot load it here: it has no pytorch_libtorch backend" in start
        assert "deploy with --backend python" in start
    else:
        assert start == f"start:  python -m sextant_triton.server {tmp_path / 'models'}"
