"""Deployed repositories on the real tritonserver: requests over HTTP and gRPC at batch 1 and at
max_batch_size, outputs compared with the package's reference outputs.

One repository holds every deployment of both packages (a torch model, an ONNX file); one server
loads it all. ONNX candidates deploy natively (``onnxruntime_onnx``, loaded here through the
Python-based ``onnxruntime`` backend of ``sextant_triton.testing``); eager torch, TorchScript (whose
LibTorch backend is absent from this server) and the ONNX one again run as Python-backend models.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from _models import MAX_BATCH, correctness_cases, first_ok
from sextant.testing.requires import skip_or_fail
from sextant_triton import config
from sextant_triton.repository import deploy_package
from sextant_triton.testing import needs_triton

pytestmark = [*needs_triton(modules=("torch", "onnx", "onnxruntime")), pytest.mark.slow]


@pytest.fixture(scope="module")
def deployments(packages, tmp_path_factory):
    """model name → (package, candidate id, backend written)"""
    repository = tmp_path_factory.mktemp("deploy") / "models"
    torch_pkg, onnx_pkg = packages["torch"], packages["onnx"]
    for runner in ("torchscript", "torch-exported", "onnxruntime"):
        assert first_ok(torch_pkg, runner), f"no passing {runner} candidate in the torch package"
    plan = {
        "torch_best": (torch_pkg, None, {}),
        "torch_eager": (torch_pkg, "source:torch-eager@cpu", {}),
        "torch_script": (torch_pkg, first_ok(torch_pkg, "torchscript"), {"backend": "python"}),
        "torch_exported": (torch_pkg, first_ok(torch_pkg, "torch-exported"), {}),
        "torch_onnx": (torch_pkg, first_ok(torch_pkg, "onnxruntime"), {"backend": "native"}),
        "onnx_native": (onnx_pkg, None, {"backend": "native"}),
        "onnx_python": (onnx_pkg, None, {"backend": "python"}),
    }
    # torch.compile needs a C++ compiler; where it passed, it is served through the Python backend too
    compiled = first_ok(torch_pkg, "torch-compile")
    if compiled is not None:
        plan["torch_compiled"] = (torch_pkg, compiled, {})
    out = {}
    for name, (package, candidate, options) in plan.items():
        deploy_package(package.path, repository, candidate=candidate, name=name, trust_source=True, **options)
        written = config.read(repository / name / "config.pbtxt")
        chosen = written.parameters["sextant_candidate"].string_value
        out[name] = (package, chosen, written)
    for name in ("torch_eager", "torch_script", "torch_exported", "onnx_python"):
        assert out[name][2].backend == "python", name
    assert out["torch_onnx"][2].platform == "onnxruntime_onnx" and out["onnx_native"][2].platform == "onnxruntime_onnx"
    return repository, out


@pytest.fixture(scope="module")
def server(deployments, triton_server):
    repository, _ = deployments
    return triton_server(repository)


def _client(protocol):
    if protocol == "http":
        import tritonclient.http as client
    else:
        import tritonclient.grpc as client
    return client


def _infer(client, triton, model, batch, written):
    requests = []
    for spec in written.input:
        array = np.ascontiguousarray(batch[spec.name])
        tensor = client.InferInput(spec.name, list(array.shape), _client_type(array))
        tensor.set_data_from_numpy(array)
        requests.append(tensor)
    result = triton.infer(model, requests)
    return {o.name: result.as_numpy(o.name) for o in written.output}


def _client_type(array):
    from tritonclient.utils import np_to_triton_dtype

    return np_to_triton_dtype(array.dtype)


MODELS = ["torch_best", "torch_eager", "torch_script", "torch_exported", "torch_compiled", "torch_onnx"]
MODELS += ["onnx_native", "onnx_python"]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("model", MODELS)
def test_outputs_match_the_reference_at_batch_1_and_max(server, deployments, model, protocol):
    _, deployed = deployments
    if model not in deployed:
        # only torch_compiled may be absent: torch.compile needs a C++ compiler, which `make test` has
        # (SEXTANT_REQUIRE_ALL=1 there makes its absence a failure)
        package = deployments[1]["torch_best"][0]
        why = [
            f"{v.id}: {v.status} {v.record.reason}" for v in package.candidates() if v.record.runner == "torch-compile"
        ]
        skip_or_fail(f"{model}: no passing candidate in this package (torch.compile needs a C++ compiler): {why}")
    package, candidate, written = deployed[model]
    assert written.max_batch_size == MAX_BATCH
    client = _client(protocol)
    triton = client.InferenceServerClient(server.http_url if protocol == "http" else server.grpc_url)
    try:
        assert triton.is_model_ready(model)
        for inputs, reference, atol, rtol in correctness_cases(package, candidate, (1, MAX_BATCH)):
            outputs = _infer(client, triton, model, inputs, written)
            assert set(outputs) == set(reference)
            for name, expected in reference.items():
                got = outputs[name]
                assert got.size > 0, f"{model} {name}: empty output"  # numpy >= 2 in the stub returns nothing
                np.testing.assert_allclose(got.reshape(expected.shape), expected, atol=atol, rtol=rtol, err_msg=name)
    finally:
        triton.close()


@pytest.mark.parametrize("model", ["torch_eager", "onnx_native"])
def test_concurrent_requests_each_get_their_own_rows(server, deployments, model):
    """Requests that the dynamic batcher may run as one batch are answered row by row."""
    import tritonclient.http as client

    _, deployed = deployments
    package, candidate, written = deployed[model]
    ((inputs, reference, atol, rtol),) = correctness_cases(package, candidate, (MAX_BATCH,))
    triton = client.InferenceServerClient(server.http_url, concurrency=MAX_BATCH)
    try:
        pending = []
        for row in range(MAX_BATCH):
            requests = []
            for spec in written.input:
                array = np.ascontiguousarray(inputs[spec.name][row : row + 1])
                tensor = client.InferInput(spec.name, list(array.shape), _client_type(array))
                tensor.set_data_from_numpy(array)
                requests.append(tensor)
            pending.append(triton.async_infer(model, requests))
        for row, request in enumerate(pending):
            result = request.get_result()
            for name, expected in reference.items():
                got = result.as_numpy(name)
                np.testing.assert_allclose(
                    got.reshape(expected[row : row + 1].shape), expected[row : row + 1], atol=atol, rtol=rtol
                )
    finally:
        triton.close()


def test_the_deployed_config_is_what_the_server_runs(server, deployments):
    import tritonclient.grpc as client

    _, deployed = deployments
    triton = client.InferenceServerClient(server.grpc_url)
    try:
        for model in ("onnx_native", "torch_eager"):
            served = triton.get_model_config(model).config
            written = deployed[model][2]
            assert served.max_batch_size == written.max_batch_size
            assert served.instance_group[0].count == written.instance_group[0].count
            # none written (no batch size above 1 came within 10 % of the best, as the timings fell):
            # Triton prefers the largest batch, as its config then says
            preferred = list(written.dynamic_batching.preferred_batch_size)
            if written.HasField("dynamic_batching") and not preferred:
                preferred = [written.max_batch_size]
            assert list(served.dynamic_batching.preferred_batch_size) == preferred
            assert dict(served.parameters) == dict(written.parameters)
            assert [(i.name, list(i.dims)) for i in served.input] == [(i.name, list(i.dims)) for i in written.input]
    finally:
        triton.close()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_the_client_example_answers(server, deployments, protocol):
    repository, deployed = deployments
    script = repository.parent / "torch_best_client.py"
    url = server.http_url if protocol == "http" else server.grpc_url
    args = [sys.executable, str(script), "--url", url] + (["--grpc"] if protocol == "grpc" else [])
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    printed = _printed(result.stdout)
    assert [(name, dtype, shape) for name, (dtype, shape, _) in printed.items()] == [
        ("logits", "float32", [1, 4]),
        ("score", "float32", [1, 1]),  # served as dims [1] with an empty reshape: Triton adds the axis
    ]
    _check_against_the_model(printed, repository, "torch_best", deployed["torch_best"])


def _printed(stdout: str) -> dict[str, tuple[str, list[int], np.ndarray]]:
    """The client example's lines ``name: dtype [shape], first values [...]``, by output name."""
    printed = {}
    for line in stdout.splitlines():
        match = re.fullmatch(r"(\w+): (\w+) (\[[\d, ]*\]), first values (\[.*\])", line)
        assert match, line
        printed[match[1]] = (match[2], json.loads(match[3]), np.array(json.loads(match[4]), np.float64))
    return printed


def _check_against_the_model(printed, repository, model, deployment) -> None:
    """The printed values are the model's own answer to the example's request: its source run in
    this process on the saved request, to the 4 decimals printed and the candidate's tolerance."""
    package, candidate, written = deployment
    with np.load(repository.parent / f"{model}_client_inputs.npz") as data:
        request = [data[spec.name] for spec in written.input]
    signature = package.status["signature"]
    runner = package.candidate(package.status["baseline"]).load(trust_source=True)  # the source, fp32, CPU
    try:
        answer = runner.infer(dict(zip([t["name"] for t in signature["inputs"]], request)))
    finally:
        runner.close()
    correctness = package.candidate(candidate).record.correctness
    assert [spec.name for spec in written.output] == list(printed)
    for spec, expected in zip(written.output, (answer[t["name"]] for t in signature["outputs"])):
        values = printed[spec.name][2]
        assert len(values) == min(4, expected.size)
        np.testing.assert_allclose(
            values, expected.ravel()[:4], atol=correctness.atol + 5e-5, rtol=correctness.rtol, err_msg=spec.name
        )


def test_python_m_server_runs_a_repository_until_sigterm(deployments, tmp_path):
    """``python -m sextant_triton.server REPOSITORY``, as the README runs it."""
    import os
    import signal
    import time

    repository, deployed = deployments
    alone = tmp_path / "models"  # one model: eight Python-backend models take longer to unload
    shutil.copytree(repository / "onnx_native", alone / "onnx_native")
    command = [  # ports 0: free ones, chosen (and chosen again if taken) by the server, named when ready
        sys.executable, "-m", "sextant_triton.server", str(alone), "--http-port", "0", "--grpc-port", "0",
        "--metrics-port", "0",
        "--exit-timeout-secs", "25",  # its Python-backend stub may take more than the default 5 s to unload here
    ]  # fmt: skip
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    log = (tmp_path / "main.log").open("w")
    process = subprocess.Popen(command, stderr=log, stdout=log, env={**os.environ, "TMPDIR": str(scratch)})
    try:
        for _ in range(3000):  # a bound on polls, not a timing assertion
            assert process.poll() is None, (tmp_path / "main.log").read_text()
            ready = re.search(r"ready: HTTP (127\.0\.0\.1:\d+)", (tmp_path / "main.log").read_text())
            if ready:
                break
            time.sleep(0.2)
        script = repository.parent / "onnx_native_client.py"
        result = subprocess.run(
            [sys.executable, str(script), "--url", ready.group(1)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        printed = _printed(result.stdout)
        assert [(name, dtype, shape) for name, (dtype, shape, _) in printed.items()] == [
            ("probabilities", "float32", [1, 3])
        ]
        _check_against_the_model(printed, repository, "onnx_native", deployed["onnx_native"])
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    assert (tmp_path / "main.log").read_text().rstrip().endswith("stopped (exit code 0)")
    assert [
        p.name for p in scratch.iterdir() if p.name != ".ses"
    ] == []  # its work folder is gone (.ses: ONNX Runtime's)
