import sys
import textwrap

import pytest
from sextant.devices import cuda_unavailable_reason
from sextant.errors import ModelLoadError, PluginError, UsageError
from sextant.plugins import availability, load_catalog
from sextant.specs import ExporterSpec, Format, RunnerSpec
from sextant.testing.contracts import check_plugin


def _write_module(tmp_path, monkeypatch, name: str, body: str) -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    return name


def test_fake_plugin_contributions(fake_catalog):
    names = {(c.kind, c.name) for c in fake_catalog.contributions}
    assert {
        ("exporter", "fake-graph"),
        ("converter", "fake-fp16"),
        ("runner", "numpy-eager"),
        ("runner", "fake-graph"),
        ("comparator", "allclose"),
    } <= names
    assert fake_catalog.reference_runner(Format("numpy-mlp")).name == "numpy-eager"


def test_broken_plugin_is_reported_not_raised(tmp_path, monkeypatch):
    name = _write_module(tmp_path, monkeypatch, "broken_plugin", "raise ImportError('libfoo.so: cannot open')\n")
    catalog = load_catalog(extra_modules=[name], entry_points=False)
    broken = [p for p in catalog.plugins if p.name == name][0]
    assert "libfoo.so" in broken.error


def test_duplicate_names_are_a_loud_error_naming_both(tmp_path, monkeypatch):
    name = _write_module(
        tmp_path,
        monkeypatch,
        "dup_plugin",
        """
        from sextant import hookimpl
        from sextant.specs import RunnerSpec, Format

        @hookimpl
        def sextant_register_runners():
            return [RunnerSpec("numpy-eager", Format("numpy-mlp"), load="x:y")]
    """,
    )
    with pytest.raises(
        PluginError, match=r"named 'numpy-eager'.*sextant \(plugin sextant.testing.fake\).*plugin dup_plugin"
    ):
        load_catalog(extra_modules=["sextant.testing.fake", name], entry_points=False)


def test_wrong_spec_type_is_rejected(tmp_path, monkeypatch):
    name = _write_module(
        tmp_path,
        monkeypatch,
        "wrongtype_plugin",
        """
        from sextant import hookimpl
        from sextant.specs import ComparatorSpec

        @hookimpl
        def sextant_register_runners():
            return [ComparatorSpec("c", run="x:y")]
    """,
    )
    with pytest.raises(PluginError, match="expected RunnerSpec"):
        load_catalog(extra_modules=[name], entry_points=False)


def test_availability_reasons_without_importing():
    missing = ExporterSpec("e", Format("a"), Format("b"), run="m:f", requires=("surely_not_installed_xyz",))
    assert availability(missing) == "surely_not_installed_xyz not importable"
    gpu_only = RunnerSpec("r", Format("a"), load="m:f", devices=("cuda",))
    no_gpu = cuda_unavailable_reason()
    if no_gpu is None:  # a GPU is visible: nothing stops a runner with no requirements and no check
        assert availability(gpu_only, "cuda") is None
    else:
        assert no_gpu.startswith("no CUDA device")
        assert availability(gpu_only, "cuda") == no_gpu
    assert availability(gpu_only, "cpu") == "does not run on cpu"


def test_allow_list_environment(monkeypatch):
    monkeypatch.setenv("SEXTANT_PLUGINS", "nothing-by-this-name")
    catalog = load_catalog()
    assert [p.name for p in catalog.plugins] == ["builtin"]


def test_tracing_writes_hook_calls_to_stderr(monkeypatch, capsys):
    monkeypatch.setenv("SEXTANT_TRACE_PLUGINS", "1")
    load_catalog(extra_modules=["sextant.testing.fake"], entry_points=False)
    assert "sextant_register_runners" in capsys.readouterr().err


def test_loader_says_what_it_could_not_recognise(fake_catalog, tmp_path):
    with pytest.raises(ModelLoadError, match="model.xyz: no such file or folder"):
        fake_catalog.load_source(tmp_path / "model.xyz")
    (tmp_path / "model.xyz").write_text("weights")
    with pytest.raises(ModelLoadError, match="no installed plugin recognises the file") as error:
        fake_catalog.load_source(tmp_path / "model.xyz")
    assert "Loaders asked: sextant.testing.fake." in error.value.hint
    with pytest.raises(ModelLoadError, match="object of type dict"):
        fake_catalog.load_source({})


def test_contract_checks_pass_for_fake_and_fail_for_bad(tmp_path, monkeypatch):
    assert check_plugin("sextant.testing.fake")
    name = _write_module(
        tmp_path,
        monkeypatch,
        "badref_plugin",
        """
        from sextant import hookimpl
        from sextant.specs import RunnerSpec, Format

        @hookimpl
        def sextant_register_runners():
            return [RunnerSpec("r", Format("f"), load="badref_plugin:missing")]
    """,
    )
    with pytest.raises(AssertionError, match="has no attribute 'missing'"):
        check_plugin(name)


def test_a_source_option_no_loader_used_is_an_error(fake_catalog):
    from sextant.testing.fake import NumpyMLP

    assert fake_catalog.load_source(NumpyMLP(), options={}).options == {}
    with pytest.raises(UsageError, match="--source-option signature: the loader of .* does not take this option"):
        fake_catalog.load_source(NumpyMLP(), options={"signature": "serve"})
