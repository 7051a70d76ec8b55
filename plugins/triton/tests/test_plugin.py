"""The plugin's shape: entry point, contracts, light start-up, the commands, and request batching."""

from __future__ import annotations

import importlib.metadata
import json

import numpy as np
import pytest
from _packages import write_package
from sextant.testing.contracts import check_light_start_up, check_plugin
from sextant_triton.batching import groups, run_batched
from typer.testing import CliRunner


def test_entry_point_and_contracts():
    (ep,) = [e for e in importlib.metadata.entry_points(group="sextant") if e.name == "triton"]
    assert ep.load().__name__ == "sextant_triton"
    (deployer,) = check_plugin("sextant_triton")
    assert deployer.kind == "deployer" and deployer.name == "triton"
    assert {f.name for f in deployer.spec.formats} == {"onnx", "torchscript", "tf-savedmodel", "tensorrt-engine"}


def test_listing_plugins_imports_no_triton_library():
    listing = check_light_start_up(["tritonclient", "pytriton", "google.protobuf"])
    triton = next(p for p in listing["plugins"] if p["name"] == "triton")
    assert [c["kind"] for c in triton["contributions"]] == ["deployer"]


def _app():
    from sextant.cli import State, with_plugin_commands
    from sextant.plugins import load_catalog

    catalog = load_catalog()
    return with_plugin_commands(catalog), State(catalog)


def test_deploy_triton_is_the_cores_command_built_from_the_spec():
    app, state = _app()
    listed = CliRunner().invoke(app, ["deploy", "--help"], obj=state)
    assert listed.exit_code == 0 and "triton" in listed.output
    shown = CliRunner().invoke(app, ["deploy", "triton", "--help"], obj=state, env={"COLUMNS": "200"})
    text = " ".join(shown.output.split())
    for flag in ("--repository", "--candidate", "--name", "--version", "--backend", "--max-batch-size",
                 "--preferred-batch-sizes", "--no-dynamic-batching", "--no-warmup", "--force", "--trust-source",
                 "--max-sequences"):  # fmt: skip
        assert flag in text, flag


def test_cli_deploy_json_and_refusal_exit_codes(tmp_path):
    app, state = _app()
    package = write_package(tmp_path / "pkg", format="onnx", runner="onnxruntime")
    runner = CliRunner()
    args = ["deploy", "triton", str(package), "--repository", str(tmp_path / "models")]
    result = runner.invoke(app, [*args, "--preferred-batch-sizes", "4,8", "--json"], obj=state)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["name"] == "tiny" and document["candidate"] == "export-onnx:onnxruntime@cpu"
    assert document["config"]["dynamic_batching"]["preferred_batch_size"] == [4, 8]
    assert document["config"]["platform"] == "onnxruntime_onnx"
    # the same again with other settings: the folder now differs, so it is a refusal (exit 2)
    refused = runner.invoke(app, [*args, "--max-batch-size", "2"], obj=state)
    assert refused.exit_code == 2
    assert "already exists with other content; nothing was written" in refused.stderr
    forced = runner.invoke(app, [*args, "--max-batch-size", "2", "--force"], obj=state)
    assert forced.exit_code == 0 and "max_batch_size 2 (given)" in forced.stderr
    bad = runner.invoke(app, [*args, "--preferred-batch-sizes", "four"], obj=state)
    assert bad.exit_code == 2 and "give --preferred-batch-sizes as integers" in " ".join(bad.stderr.split())
    none = runner.invoke(app, [*args, "--max-sequences", "0"], obj=state)
    assert none.exit_code == 2 and "--max-sequences 0: a streaming model decodes at least one" in none.stderr
    streams = runner.invoke(app, [*args, "--max-sequences", "4"], obj=state)  # not a text-generation package
    assert streams.exit_code == 2 and "only a text-generation package's streaming model" in streams.stderr


def test_requests_of_equal_shapes_run_as_one_batch_and_split_back():
    feeds = [
        {"x": np.full((1, 3), 1.0), "n": np.zeros((1, 2), np.int64)},
        {"x": np.full((2, 3), 2.0), "n": np.zeros((2, 2), np.int64)},
        {"x": np.full((1, 5), 3.0), "n": np.zeros((1, 2), np.int64)},  # another shape: its own call
        {"x": np.full((1, 3), 4.0), "n": np.zeros((1, 2), np.int64)},
    ]
    assert groups(feeds, batching=True) == [[0, 1, 3], [2]]
    assert groups(feeds, batching=False) == [[0], [1], [2], [3]]
    calls = []

    def infer(feed):
        calls.append(len(feed["x"]))
        return {"y": feed["x"].sum(1), "rows": np.arange(len(feed["x"]))}

    results = run_batched(feeds, infer, batching=True)
    assert calls == [4, 1]
    assert [r["y"].tolist() for r in results] == [[3.0], [6.0, 6.0], [15.0], [12.0]]
    assert [r["rows"].tolist() for r in results] == [[0], [1, 2], [0], [3]]


def test_a_failing_group_answers_its_requests_only():
    feeds = [{"x": np.ones((1, 2))}, {"x": np.ones((1, 3))}]

    def infer(feed):
        if feed["x"].shape[1] == 3:
            raise ValueError("wrong width")
        return {"y": feed["x"]}

    ok, failed = run_batched(feeds, infer, batching=True)
    assert ok["y"].shape == (1, 2)
    assert isinstance(failed, ValueError) and str(failed) == "wrong width"


@pytest.mark.parametrize("sizes", ["", "0"])
def test_preferred_sizes_must_be_positive(tmp_path, sizes):
    from sextant.api import UsageError
    from sextant_triton.repository import deploy_package

    package = write_package(tmp_path / "pkg", format="onnx", runner="onnxruntime")
    if sizes == "0":
        with pytest.raises(UsageError, match="sizes are 1 or more"):
            deploy_package(package, tmp_path / "m", preferred_batch_sizes=(0,))
    else:  # an empty list: no preferred sizes, dynamic batching still on
        deploy_package(package, tmp_path / "m", preferred_batch_sizes=())
        assert "preferred_batch_size" not in (tmp_path / "m" / "tiny" / "config.pbtxt").read_text()


class _FakeTriton:
    """Stands in for ``pytriton.triton.Triton``: each run raises the next scripted error, if any."""

    errors: list[Exception | None] = []
    made: list[_FakeTriton] = []

    def __init__(self, config, workspace):
        self.stopped = False
        _FakeTriton.made.append(self)

    def bind(self, **_):
        pass

    def run(self):
        error = _FakeTriton.errors.pop(0)
        if error is not None:
            raise error

    def stop(self):
        self.stopped = True


def _handshake_refused() -> Exception:
    try:
        try:
            raise ConnectionRefusedError("[Errno 111] Connection refused")
        except ConnectionRefusedError as inner:
            raise RuntimeError(f"in get_config_from_handshake_server: {inner}") from inner
    except RuntimeError as middle:
        outer = RuntimeError("load failed for model 'm'")
        outer.__cause__ = middle
        return outer


def _handshake_timed_out() -> Exception:
    """PyTriton's own handshake in this process giving up (a busy machine): its name is in the stack
    only, not in the message."""

    def get_config_from_handshake_server():
        raise TimeoutError("timed out")

    try:
        get_config_from_handshake_server()
    except TimeoutError as error:
        return error
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("errors", "started_on"),
    [
        ([_handshake_refused(), None], 2),  # the race: started again
        ([_handshake_timed_out(), None], 2),
        ([_handshake_refused(), _handshake_refused(), None], 3),
        ([_handshake_refused()] * 3, None),  # three in a row: the error surfaces
        ([RuntimeError("model.py: bad config"), None], None),  # any other error: not retried
    ],
)
def test_start_retries_only_pytritons_handshake_race(errors, started_on, tmp_path, monkeypatch):
    import importlib
    import sys
    import types

    from sextant.api import Signature, TensorSpec
    from sextant.api import ServingSettings

    # TritonServer: what serve._quiet_server wraps while a server starts
    fake = types.SimpleNamespace(Triton=_FakeTriton, TritonConfig=lambda **kw: kw, TritonServer=lambda *a, **kw: None)
    config = types.SimpleNamespace(DynamicBatcher=lambda **kw: kw, ModelConfig=lambda **kw: kw, Tensor=lambda **kw: kw)
    monkeypatch.setitem(sys.modules, "pytriton", types.ModuleType("pytriton"))
    monkeypatch.setitem(sys.modules, "pytriton.triton", fake)
    monkeypatch.setitem(sys.modules, "pytriton.model_config", config)
    monkeypatch.setattr(_FakeTriton, "errors", list(errors))
    monkeypatch.setattr(_FakeTriton, "made", [])
    signature = Signature(
        inputs=(TensorSpec("x", "float32", (None, 4)),), outputs=(TensorSpec("y", "float32", (None, 4)),)
    )
    settings = ServingSettings(8, True, (4,), 0, 2, "cpu", 1)
    serve = importlib.import_module("sextant_triton.serve")
    start = lambda: serve._start("m", [], signature, settings, "127.0.0.1", {}, tmp_path / "w", tmp_path / "log")  # noqa: E731
    if started_on is None:
        with pytest.raises(RuntimeError):
            start()
        assert all(t.stopped for t in _FakeTriton.made)
        assert len(_FakeTriton.made) == (3 if len(errors) == 3 else 1)
    else:
        assert start() is _FakeTriton.made[-1]
        assert len(_FakeTriton.made) == started_on
        assert [t.stopped for t in _FakeTriton.made] == [True] * (started_on - 1) + [False]
