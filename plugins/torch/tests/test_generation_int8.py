"""Weight-only int8 for the torch generators: planned only when --precision allows it and named so,
its weights really int8, its logits judged by teacher forcing as every reduced precision is."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sextant.api import TRANSFORMERS_CAUSAL_LM, GeneratorRequest
from sextant.compare import Tolerance
from sextant.generation.config import GenerationConfig
from sextant.generation.judge import judge_prompt
from sextant.generation.loop import greedy, teacher_forced
from sextant.generation.plan import make_generation_plan

import causal_lms
from sextant_torch.generation import load_dynamic, load_static
from sextant_torch.weight_int8 import Int8WeightLinear


def test_int8_is_planned_only_when_allowed_and_named(catalog):
    def ids(precisions):
        plan = make_generation_plan(
            catalog, TRANSFORMERS_CAUSAL_LM, devices=("cpu",), precisions=precisions, generators=("torch-static-cache",)
        )
        return {c.id: c.precision for c in plan.candidates}

    assert "source:torch-static-cache/int8@cpu" not in ids(("fp32",))
    both = ids(("fp32", "int8"))
    assert both["source:torch-static-cache/int8@cpu"] == "int8"
    assert both["source:torch-generate@cpu"] == "fp32"  # the reference stays fp32


#: linear layers of the tiny models: Llama's q, k, v, o, gate, up, down per layer and the LM head;
#: GPT-2's c_attn, c_proj, c_fc, c_proj (transformers' Conv1D) per layer and the LM head
LINEAR_LAYERS = {"llama": 2 * 7 + 1, "gpt2": 2 * 4 + 1}


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_int8_weights_are_int8_and_within_the_int8_tolerance(family, tmp_path):
    getattr(causal_lms, family)().save_pretrained(tmp_path / "model")
    prompt = np.random.default_rng(1).integers(0, causal_lms.VOCAB, 10)
    ids, logits = greedy(load_dynamic(GeneratorRequest(tmp_path / "model", max_length=32)), prompt, 8)
    int8 = load_static(GeneratorRequest(tmp_path / "model", precision="int8", max_length=32))
    modules = list(int8.model.modules())
    quantized = [m for m in modules if isinstance(m, Int8WeightLinear)]
    assert len(quantized) == LINEAR_LAYERS[family]
    assert all(m.weight.dtype == torch.int8 and m.scales.dtype == torch.float32 for m in quantized)
    assert not [m for m in modules if isinstance(m, torch.nn.Linear) or type(m).__name__ == "Conv1D"]
    forced = teacher_forced(int8, prompt, ids)
    error = np.abs(forced - logits).max()
    assert 1e-6 < error < 0.05  # quantized (not the fp32 weights), and close
    report = judge_prompt(
        "prompt", ids, logits, forced, Tolerance.for_precision("int8"), "int8", GenerationConfig().min_agreement
    )
    assert report.passed, report


def test_an_unknown_precision_is_refused(tmp_path):
    from sextant.api import StepError

    with pytest.raises(StepError, match="fp32 or int8 weights, not int4"):
        load_static(GeneratorRequest(tmp_path, precision="int4"))
