"""An exported graph that dropped an input the model never reads is fed what it takes (issue 30).

The TorchScript-based ONNX exporter leaves out inputs that no output depends on: a decoder's cached
step that ignores the encoder states (Whisper's, any encoder-decoder's) lost every ONNX candidate to
"no input named ['encoder_hidden_states']". The run still passes every input it knows; the graph's
runners leave out what it does not take, and still refuse a name nobody knows.
"""

from __future__ import annotations

import numpy as np
import pytest
import sextant
from sextant.api import RunnerRequest, SampleError

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from sextant.options import OptimizeOptions  # noqa: E402
from sextant.signature import Signature  # noqa: E402
from sextant.testing import FAST  # noqa: E402


class CachedStep(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(8, 8)

    def forward(self, hidden, encoder_hidden_states):  # the cached step does not attend to the encoder again
        return self.linear(hidden)


def test_every_runner_of_a_graph_without_an_unused_input_takes_the_runs_inputs(tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    samples = {
        "hidden": rng.standard_normal((2, 8)).astype(np.float32),
        "encoder_hidden_states": rng.standard_normal((2, 5, 8)).astype(np.float32),
    }
    options = OptimizeOptions(
        workspace=tmp_path / "ws",
        runners=("torch-eager", "onnxruntime", "openvino"),
        steps=("torch-onnx-legacy",),
        max_batch_size=FAST.max_batch,
        profiler=FAST,
        step_timeout=300,
        cutoff=0.0,
    )
    package = sextant.optimize(CachedStep().eval(), samples, options=options)
    status = package.status
    step = status["steps"]["torch-onnx-legacy"]
    assert step["status"] == "ok", step.get("reason")
    import onnx

    graph = onnx.load(str(package.path / step["artifact"]))
    assert [i.name for i in graph.graph.input] == ["hidden"]  # the exporter did drop it
    for name in ("torch-onnx-legacy:onnxruntime@cpu", "torch-onnx-legacy:openvino@cpu"):
        assert status["candidates"][name]["status"] == "ok", (name, status["candidates"][name].get("reason"))

    from sextant_onnx.runner import OrtRunner

    signature = Signature.from_dict(status["signature"])
    request = RunnerRequest(artifact=package.path / step["artifact"], signature=signature)
    runner = OrtRunner(request, ["CPUExecutionProvider"])
    with pytest.raises(SampleError, match="no input named \\['nobody'\\]"):
        runner.infer({**samples, "nobody": samples["hidden"]})
