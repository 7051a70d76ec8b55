"""Untrusted packages with the real plugins: a torch source (a pickled nn.Module), Keras custom
classes (a cloudpickle) and Keras Lambda layers (safe mode) load from a package only with
``trust_source``; the optimize run needs no flag; exported formats need none; changed files are
refused."""

from __future__ import annotations

import textwrap
from dataclasses import replace

import numpy as np
import pytest
import sextant
from sextant.errors import ModelLoadError, PackageError, UntrustedSourceError
from sextant.options import OptimizeOptions
from sextant.testing import FAST
from sextant.testing.requires import importorskip

torch = importorskip("torch")


@pytest.fixture
def options(tmp_path):
    return OptimizeOptions(workspace=tmp_path / "ws", max_batch_size=4, profiler=FAST, step_timeout=300)


def _ok(package, runner):
    return next(cid for cid, c in package.status["candidates"].items() if c["runner"] == runner and c["status"] == "ok")


def test_a_torch_source_loads_only_with_trust_and_torchscript_without(options):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 3)).eval()
    x = np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)
    written = sextant.optimize(model, [x], options=replace(options, runners=("torch-eager", "torchscript")))
    package = sextant.load(written.path)  # later, from the folder
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()

    eager = package.candidate("source:torch-eager@cpu")
    with pytest.raises(UntrustedSourceError) as refused:
        eager.load()
    assert "model.pt is a pickled torch nn.Module" in refused.value.message
    assert "trust_source=True" in refused.value.hint
    runner = eager.load(trust_source=True)
    np.testing.assert_allclose(runner.infer({"input_0": x})["output_0"], expected, rtol=1e-5, atol=1e-6)

    script = package.candidate(_ok(package, "torchscript"))
    np.testing.assert_allclose(script.load().infer({"input_0": x})["output_0"], expected, rtol=1e-5, atol=1e-6)
    script.artifact.write_bytes(script.artifact.read_bytes() + b"\0")
    with pytest.raises(PackageError, match=f"{script.artifact.name} changed since the package was written"):
        script.load(trust_source=True)


CUSTOM = """
import keras
import numpy as np


class Scale(keras.layers.Layer):
    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        return x * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def custom():
    inputs = keras.Input((6,), name="x")
    return keras.Model(inputs, Scale(2.5)(keras.layers.Dense(3)(inputs)))


def plain():
    inputs = keras.Input((6,), name="x")
    return keras.Model(inputs, keras.layers.Dense(3)(inputs))


def samples():
    return [np.ones((2, 6), np.float32)]
"""


def test_keras_custom_classes_are_a_pickle_and_a_plain_keras_model_is_not(options, tmp_path):
    importorskip("tensorflow")
    script = tmp_path / "custom_model.py"
    script.write_text(textwrap.dedent(CUSTOM))
    keras_only = replace(options, runners=("keras",), formats=("keras",))
    written = sextant.optimize(f"{script}:custom", f"{script}:samples", options=keras_only)
    source = sextant.load(written.path).candidate("source:keras@cpu")
    assert (source.artifact.parent / "custom_objects.pkl").exists()
    with pytest.raises(UntrustedSourceError, match="custom_objects.pkl holds the model's custom Keras classes"):
        source.load()
    ones = np.ones((2, 6), np.float32)
    assert source.load(trust_source=True).infer({"x": ones})["output_0"].shape == (2, 3)

    plain = sextant.optimize(
        f"{script}:plain", f"{script}:samples", options=replace(keras_only, workspace=tmp_path / "p")
    )
    assert sextant.load(plain.path).candidate("source:keras@cpu").load().infer({"x": ones})["output_0"].shape == (2, 3)


def test_a_keras_lambda_layer_needs_the_safe_mode_opt_in_and_then_trust(options, tmp_path):
    keras = importorskip("keras")
    inputs = keras.Input((4,), name="x")
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    keras_only = replace(options, runners=("keras",), formats=("keras",))
    with pytest.raises(ModelLoadError) as refused:
        sextant.optimize(path, None, options=keras_only)
    assert "--source-option safe_mode=false" in refused.value.hint

    written = sextant.optimize(path, None, options=replace(keras_only, source_options={"safe_mode": "false"}))
    assert written.status["candidates"]["source:keras@cpu"]["status"] == "ok"
    source = sextant.load(written.path).candidate("source:keras@cpu")
    with pytest.raises(UntrustedSourceError, match="safe_mode=False"):
        source.load()
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(source.load(trust_source=True).infer({"x": x})["output_0"], x * 2.0)
