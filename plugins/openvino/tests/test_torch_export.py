"""torch.export program → OpenVINO IR: names as sextant's, fixed axes static, fp32 weights, and the
IR's outputs against torch's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sextant.api import Signature, StepError, TensorSpec
from sextant.samples import save_batches
from sextant.testing.contracts import check_plugin, check_runner, check_step

torch = pytest.importorskip("torch")
ov = pytest.importorskip("openvino")

SPECS = {(c.kind, c.spec.name): c.spec for c in check_plugin("sextant_openvino")}
AUTO = torch.export.Dim.AUTO


class Tagger(torch.nn.Module):
    """Keyword inputs, a dict of outputs (as the torch plugin's programs return them)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encode = torch.nn.Linear(16, 8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = torch.relu(self.encode(tokens)) * mask
        return {"scores": self.head(hidden), "hidden": hidden}


def _convert(tmp_path: Path, program, signature: Signature, batch: dict[str, np.ndarray]) -> Path:
    torch.export.save(program, str(tmp_path / "model.pt2"))
    save_batches(tmp_path / "samples.npz", [batch])
    return check_step(
        SPECS[("converter", "openvino")], tmp_path / "model.pt2", tmp_path / "ir", signature, tmp_path / "samples.npz"
    )


def test_keyword_program_with_dict_outputs(tmp_path):
    model = Tagger().eval()
    example = {"tokens": torch.randn(2, 5, 16), "mask": torch.ones(2, 5, 8)}
    program = torch.export.export(
        model, (), example, dynamic_shapes={"tokens": {0: AUTO, 1: AUTO}, "mask": {0: AUTO, 1: AUTO}}
    )
    signature = Signature(
        (TensorSpec("tokens", "float32", (None, None, 16)), TensorSpec("mask", "float32", (None, None, 8))),
        call_style="keyword",
    )
    artifact = _convert(tmp_path, program, signature, {k: v.numpy() for k, v in example.items()})
    assert artifact.name == "model.xml" and artifact.with_suffix(".bin").exists()
    ir = ov.Core().read_model(str(artifact))
    assert [(p.get_any_name(), str(p.get_partial_shape())) for p in ir.inputs] == [
        ("tokens", "[?,?,16]"),  # the axes the samples vary stay dynamic, the others are fixed
        ("mask", "[?,?,8]"),
    ]
    assert [p.get_any_name() for p in ir.outputs] == ["scores", "hidden"]
    constants = {op.get_output_element_type(0).to_string() for op in ir.get_ops() if op.get_type_name() == "Constant"}
    assert "f16" not in constants  # save_model's default would have compressed the weights

    rng = np.random.default_rng(1)
    for rows, length in ((1, 3), (4, 7)):
        batch = {
            "tokens": rng.standard_normal((rows, length, 16)).astype(np.float32),
            "mask": (rng.random((rows, length, 8)) > 0.3).astype(np.float32),
        }
        got = check_runner(SPECS[("runner", "openvino-ir")], artifact, signature, batch, threads=2)
        with torch.no_grad():
            expected = model(**{k: torch.from_numpy(v) for k, v in batch.items()})
        assert set(got) == {"scores", "hidden"}
        for name, tensor in expected.items():
            np.testing.assert_allclose(got[name], tensor.numpy(), rtol=1e-5, atol=1e-5)


def test_positional_program_takes_the_signatures_names(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.GELU()).eval()
    x = torch.randn(2, 6)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: AUTO},))
    signature = Signature(
        (TensorSpec("input_0", "float32", (None, 6)),),
        (TensorSpec("output_0", "float32", (None, 4)),),  # the reference's, as a run has them
        call_style="positional",
    )
    artifact = _convert(tmp_path, program, signature, {"input_0": x.numpy()})
    got = check_runner(SPECS[("runner", "openvino-ir")], artifact, signature, {"input_0": x.numpy()})
    np.testing.assert_allclose(got["output_0"], model(x).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_a_file_that_is_no_program_fails_the_step_saying_so(tmp_path):
    (tmp_path / "model.pt2").write_bytes(b"not a zip archive")
    save_batches(tmp_path / "samples.npz", [{"x": np.zeros((1, 2), np.float32)}])
    signature = Signature((TensorSpec("x", "float32", (None, 2)),))
    with pytest.raises(StepError, match=r"torch\.export\.load cannot read model\.pt2: "):
        check_step(
            SPECS[("converter", "openvino")],
            tmp_path / "model.pt2",
            tmp_path / "ir",
            signature,
            tmp_path / "samples.npz",
        )
