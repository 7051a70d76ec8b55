"""``sextant deploy triton --backend vllm`` of a text-generation package: Triton's vLLM-backend folder
(``config.pbtxt`` and ``model.json`` against golden files, the source model copied), and what it
refuses. Golden-tested only: vLLM needs a GPU and is not installed here, so nothing loads it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _causal_lm import POSITIONS
from sextant.api import UsageError
from sextant_triton.repository import deploy_package
from sextant_triton.testing import needs_triton

pytestmark = needs_triton(modules=("torch", "transformers"))

GOLDEN = Path(__file__).with_name("golden")
UPDATE = os.environ.get("SEXTANT_UPDATE_GOLDEN") == "1"


def _golden(name: str, text: str) -> None:
    if UPDATE:
        (GOLDEN / name).write_text(text)
    assert text == (GOLDEN / name).read_text()


def test_the_vllm_folder_matches_the_golden_files_and_says_it_is_not_loaded_here(generation_deployment, tmp_path):
    package = generation_deployment[0].parent / "ws"
    repository = tmp_path / "models"
    deployment = deploy_package(package, repository, name="lm", backend="vllm")
    _golden("vllm_generation.pbtxt", (repository / "lm" / "config.pbtxt").read_text())
    args = json.loads((repository / "lm" / "1" / "model.json").read_text())
    copied = repository.absolute() / "lm" / "1" / "hf"
    assert args["model"] == str(copied) and args["max_model_len"] == POSITIONS
    _golden("vllm_generation.json", json.dumps({**args, "model": "<REPOSITORY>/lm/1/hf"}, indent=2) + "\n")
    assert (copied / "config.json").is_file() and (copied / "tokenizer.json").is_file()
    assert list(copied.glob("*.safetensors"))
    assert "never loaded here" in deployment.notes[0] and "vllm-python-py3" in deployment.notes[0]
    assert not (tmp_path / "lm_client.py").exists()  # the vLLM backend's tensors: Triton's generate endpoint
    assert "/v2/models/lm/generate" in deployment.notes[2]


def test_what_vllm_cannot_take_is_refused(generation_deployment, packages, tmp_path):
    package = generation_deployment[0].parent / "ws"
    with pytest.raises(UsageError, match="vLLM batches sequences itself") as info:
        deploy_package(package, tmp_path / "a", backend="vllm", max_batch_size=8)
    assert "model.json" in info.value.hint
    with pytest.raises(UsageError, match="--max-sequences 4 do not apply") as info:
        deploy_package(package, tmp_path / "d", backend="vllm", max_sequences=4)
    assert "max_num_seqs" in info.value.hint
    with pytest.raises(UsageError, match="only a text-generation package"):
        deploy_package(packages["onnx"].path, tmp_path / "b", backend="vllm")
    with pytest.raises(UsageError, match=r"choose native, python or auto \(or vllm for a text-generation package\)"):
        deploy_package(package, tmp_path / "c", backend="tensorrtllm")
