"""Real architectures end to end (issue 17): each model of ``tests/zoo.py`` (a ``transformers`` model
with keyword inputs and a ``ModelOutput``, built from a tiny random configuration) is optimized, and
its selected candidate is checked outside sextant's own verdict: loaded through the public API in a
fresh process, run on inputs the run never saw at batch 1 and at the largest batch, and compared with
the model's eager outputs computed here. Every failed step or candidate must be one line in
``sextant inspect``.

Two models run by default (BERT and Wav2Vec2, :data:`DEFAULT`); the rest carry the ``architectures`` marker and run with
``make test-architectures`` (``-m architectures`` selects only them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sextant
from _support import sextant as sextant_cli
from sextant.options import OptimizeOptions
from sextant.testing import FAST
from sextant.testing.requires import importorskip
from zoo import ARCHITECTURES, BY_NAME, Architecture

torch = importorskip("torch")
importorskip("transformers")
importorskip("onnxruntime")

#: the default run's two: dict inputs with a padding mask and a ModelOutput, and a weight-norm
#: convolution (a parametrized module) with a convolutional feature extractor
DEFAULT = ("bert", "wav2vec2")
#: the default two leave out TorchScript, which the full set runs, and build one program and one ONNX
#: file (the dynamo exporter and onnxslim are the full set's), to stay near half a minute each
DEFAULT_RUNNERS = ("torch-eager", "torch-exported", "onnxruntime")
DEFAULT_STEPS = ("torch-export", "torch-onnx-legacy")
#: torch.compile is left out of the tests (its inductor compile takes minutes on 2 cores); the
#: benchmark (benchmarks/architectures.py) runs every runner
FULL_RUNNERS = ("torch-eager", "torchscript", "torch-exported", "onnxruntime")
MAX_BATCH = FAST.max_batch
ATOL, RTOL = 1e-4, 1e-3  # sextant's own fp32 tolerance

LOAD_BEST = """
import sys, numpy as np, sextant
runner = sextant.load(sys.argv[1]).best().load(trust_source=True)  # our own package: eager may win
for source, target in zip(sys.argv[2::2], sys.argv[3::2]):
    np.savez(target, **runner.infer(dict(np.load(source))))
runner.close()
"""

PARAMS = [
    pytest.param(
        arch, id=arch.name, marks=() if arch.name in DEFAULT else (pytest.mark.architectures, pytest.mark.slow)
    )
    for arch in ARCHITECTURES
]


def _eager(model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's own outputs: every tensor of its ``ModelOutput``, by field name."""
    with torch.inference_mode():
        output = model(**{name: torch.from_numpy(value) for name, value in inputs.items()})
    return {name: value.numpy() for name, value in output.items() if isinstance(value, torch.Tensor)}


def _best_in_a_fresh_process(workspace: Path, batches: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """``sextant.load(ws).best().load()`` in a process that never saw the model object, on ``batches``."""
    argv = []
    for index, batch in enumerate(batches):
        np.savez(workspace.parent / f"unseen-{index}.npz", **batch)
        argv += [str(workspace.parent / f"unseen-{index}.npz"), str(workspace.parent / f"outputs-{index}.npz")]
    result = subprocess.run(
        [sys.executable, "-c", LOAD_BEST, str(workspace), *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [dict(np.load(workspace.parent / f"outputs-{index}.npz")) for index in range(len(batches))]


def _failures(status: dict) -> dict[str, tuple[str, str]]:
    """Every step and candidate that failed (or gave wrong answers): its status and its reason."""
    return {
        name: (record["status"], record.get("reason") or "")
        for kind in ("steps", "candidates")
        for name, record in status.get(kind, {}).items()
        if record["status"] in ("failed", "incorrect")
    }


@pytest.mark.parametrize("arch", PARAMS)
def test_the_selected_candidate_is_right_on_unseen_inputs_in_a_fresh_process(arch: Architecture, tmp_path):
    model = arch.build()
    options = OptimizeOptions(
        workspace=tmp_path / "ws",
        runners=DEFAULT_RUNNERS if arch.name in DEFAULT else FULL_RUNNERS,
        steps=DEFAULT_STEPS if arch.name in DEFAULT else None,
        max_batch_size=MAX_BATCH,
        profiler=FAST,
        step_timeout=300,
        paired_rounds=0,  # the pick is checked here, not how close calls are decided (core/tests/test_pairing.py)
    )
    package = sextant.optimize(model, arch.samples(), options=options)
    status = package.status
    best = status["selection"]["best"]
    assert best is not None, status["selection"]
    assert status["candidates"][best]["correctness"]["passed"]

    unseen = [arch.inputs(1, 101), arch.inputs(MAX_BATCH, 102)]  # the samples were seed 0, batch 2
    for batch, got in zip(unseen, _best_in_a_fresh_process(package.path, unseen)):
        expected = _eager(model, batch)
        assert sorted(got) == sorted(expected), f"{best} outputs {sorted(got)}, the model {sorted(expected)}"
        for name, value in expected.items():
            np.testing.assert_allclose(got[name], value, atol=ATOL, rtol=RTOL, err_msg=f"{best}: {name}")

    # each failure is one line of `sextant inspect` (its name, or "N candidates" sharing it): its
    # status and its reason, which is the innermost cause in one line, not a traceback
    result = sextant_cli("inspect", str(package.path), env={"COLUMNS": "400"})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for name, (state, reason) in _failures(status).items():
        assert reason.strip() and "\n" not in reason.strip(), f"{name}: {reason!r}"
        shown = f"{state}: {reason.strip()[:60]}"
        assert any(shown in line for line in result.stderr.splitlines()), f"{name} ({shown}):\n{result.stderr}"


@pytest.mark.parametrize("called_before", [False, True], ids=["as-built", "called-before"])
def test_a_head_that_reads_its_inner_models_hidden_states_is_the_users_model(called_before: bool, tmp_path):
    """transformers records ``hidden_states`` through hooks and a registry filled by the constructor
    (issue 30): the reference, and the pick in a fresh process, must compute what the user's call does,
    whether or not the model was called (and so hooked) before it was given to sextant."""
    arch = BY_NAME["segformer-segmentation"]
    model = arch.build()
    if called_before:
        _eager(model, arch.samples())
    options = OptimizeOptions(
        workspace=tmp_path / "ws", runners=("torch-eager",), max_batch_size=MAX_BATCH, profiler=FAST, step_timeout=300
    )
    package = sextant.optimize(model, arch.samples(), options=options)
    assert package.status["candidates"]["source:torch-eager@cpu"]["status"] == "ok"
    unseen = [arch.inputs(MAX_BATCH, 103)]
    (got,) = _best_in_a_fresh_process(package.path, unseen)
    np.testing.assert_allclose(got["logits"], _eager(model, unseen[0])["logits"], atol=ATOL, rtol=RTOL)
