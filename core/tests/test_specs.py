import pytest
from sextant.errors import PluginError, UsageError
from sextant.specs import Format, Param, RunnerSpec, least_exact


def test_format_is_a_value_object():
    assert Format("onnx") == Format("onnx")
    assert str(Format("tf-savedmodel")) == "tf-savedmodel"
    with pytest.raises(PluginError, match="invalid format name"):
        Format("ONNX file")


def test_param_grids():
    assert Param("t", "exponential", (1, 16), 1).grid() == (1, 2, 4, 8, 16)
    assert Param("l", "linear", (1, 4), 1).grid() == (1, 2, 3, 4)
    assert Param("m", "categorical", ("a", "b"), "a").grid() == ("a", "b")
    with pytest.raises(PluginError):
        Param("bad", "linear", (1,), 1)


def test_a_thread_count_is_searched_only_below_the_runs_threads():
    threads = Param("threads", "categorical", (0, 1, 2, 4, 8, 16), 0, thread_count=True)
    assert threads.within(2).values == (0, 1)  # 2 would repeat 0; 4, 8 and 16 oversubscribe two cores
    assert threads.within(8).values == (0, 1, 2, 4)
    assert Param("t", "categorical", (0, 4, 8), 8, thread_count=True).within(2).values == (0, 8)  # the default stays
    other = Param("streams", "categorical", (0, 1, 2, 4, 8), 0)
    assert other.within(2) is other


def test_runner_option_sets_and_parsing():
    spec = RunnerSpec(
        "r",
        Format("x"),
        load="m:f",
        options=(Param("impl", "categorical", ("a", "b"), "a"), Param("n", "linear", (1, 3), 1)),
        variants=({"impl": "b"}, {"impl": "a"}),
    )
    assert spec.option_sets("cpu") == [{"impl": "a", "n": 1}, {"impl": "b", "n": 1}]
    assert spec.parse_options({"n": 2}, "cpu") == {"impl": "a", "n": 2}
    with pytest.raises(UsageError, match="no option nope"):
        spec.parse_options({"nope": 1}, "cpu")
    with pytest.raises(PluginError, match="undeclared options"):
        RunnerSpec("r", Format("x"), load="m:f", variants=({"ghost": 1},))
    with pytest.raises(PluginError, match="unknown device"):
        RunnerSpec("r", Format("x"), load="m:f", devices=("tpu",))


def test_an_option_of_one_device_is_no_option_of_a_candidate_elsewhere():
    bind = Param("bind", "categorical", (False, True), False, devices=("cuda",))
    spec = RunnerSpec(
        "r",
        Format("x"),
        load="m:f",
        devices=("cpu", "cuda"),
        options=(Param("impl", "categorical", ("a", "b"), "a"), bind),
        variants=({"bind": True}, {"impl": "b", "bind": True}),
    )
    assert spec.defaults("cpu") == {"impl": "a"}
    assert spec.defaults("cuda") == {"impl": "a", "bind": False}
    # a variant's CUDA-only option is left out on the CPU, where the first variant is the defaults again
    assert spec.option_sets("cpu") == [{"impl": "a"}, {"impl": "b"}]
    assert spec.option_sets("cuda") == [
        {"impl": "a", "bind": False},
        {"impl": "a", "bind": True},
        {"impl": "b", "bind": True},
    ]
    assert spec.space("cpu") == (spec.options[0],) and spec.space("cuda") == spec.options
    assert spec.parse_options({"bind": True}, "cpu") == {"impl": "a"}  # declared, but no option on the CPU
    assert spec.parse_options({"bind": True}, "cuda") == {"impl": "a", "bind": True}
    with pytest.raises(UsageError, match="no option nope"):
        spec.parse_options({"nope": 1}, "cuda")


def test_least_exact_precision():
    assert least_exact() == "fp32"
    assert least_exact("fp32", "fp16") == "fp16"
    assert least_exact("bf16", "int8", "fp32") == "int8"


def test_a_deployer_is_a_contribution_listed_with_what_it_serves(tmp_path, monkeypatch):
    import sys

    from sextant.plugins import load_catalog
    from sextant.cli.tables import plugins_document

    (tmp_path / "toy_deployer.py").write_text(
        "from sextant.api import ONNX, DeployerSpec, hookimpl\n"
        "@hookimpl\n"
        "def sextant_register_deployers():\n"
        "    return [DeployerSpec('toy', deploy='toy_deployer:deploy', formats=(ONNX,), runners=('onnxruntime',))]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    catalog = load_catalog(extra_modules=["toy_deployer"], entry_points=False)
    (deployer,) = catalog.of("deployer")
    assert deployer.spec.formats[0].name == "onnx"
    listed = [c for p in plugins_document(catalog)["plugins"] for c in p["contributions"] if c["kind"] == "deployer"]
    assert listed == [
        {
            "kind": "deployer",
            "name": "toy",
            "description": "",
            "formats": ["onnx"],
            "runners": ["onnxruntime"],
            "available": True,
            "reason": None,
            "requires": [],
        }
    ]
    sys.modules.pop("toy_deployer", None)


def test_deployer_names_are_checked():
    from sextant.specs import DeployerSpec

    with pytest.raises(PluginError, match="invalid deployer name"):
        DeployerSpec("Triton Server", deploy="x:y")
