"""Pipelines (issue 15) with a real transformers ``generate`` loop: a tiny random T5 encoder-decoder
built in code, its encoder and decoder wrapped in place, greedy decoding of a few tokens.

``generate`` runs with ``use_cache=False``: with the cache on, the decoder takes and returns
``Cache`` objects, which a recording cannot hold (they are state, not tensors or constants), so
sextant would refuse the call by name. Without the cache the decoder sees the whole sequence so
far at every step: its sequence axis grows, and becomes a dynamic axis of its package.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch", reason="the pipeline wrapper is torch's")
pytest.importorskip("sextant_onnx", reason="the test restricts candidates to ones that include onnxruntime")
transformers = pytest.importorskip("transformers", reason="needs transformers (the torch plugin's 'pipelines' extra)")

import sextant  # noqa: E402
from sextant.testing import FAST  # noqa: E402

OPTIONS = {"runners": ("torch-eager", "onnxruntime"), "profiler": FAST, "max_batch_size": 4, "repeats": 1}
NEW_TOKENS = 6


def tiny_t5():
    """A random 2-layer T5 whose greedy outputs vary (a large initializer factor: at the default
    scale a random T5 repeats one token, which would make the comparison weak)."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(3)
    config = T5Config(
        vocab_size=64,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        initializer_factor=8.0,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    return T5ForConditionalGeneration(config).eval()


INPUTS = [
    torch.tensor([[5, 6, 7, 8, 9, 1], [12, 13, 14, 1, 0, 0]]),  # a padded batch of two
    torch.tensor([[20, 21, 22, 23, 24, 25, 26, 1]]),  # one longer input
]


def generator(model):
    def generate(ids):
        mask = (ids != 0).long()
        return model.generate(ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, do_sample=False, use_cache=False)

    return generate


@pytest.fixture(scope="module")
def t5_run(tmp_path_factory):
    model = tiny_t5()
    generate = generator(model)
    with torch.no_grad():
        reference = [generate(ids) for ids in INPUTS]
    model.encoder = sextant.Module(model.encoder, name="encoder")
    model.decoder = sextant.Module(model.decoder, name="decoder")
    parts = [model.encoder, model.decoder]
    workspace = tmp_path_factory.mktemp("t5") / "ws"
    record = sextant.optimize_pipeline(generate, INPUTS, workspace=workspace, modules=parts, **OPTIONS)
    return model, generate, parts, workspace, record, reference


def test_the_decoder_sees_a_growing_sequence_as_a_dynamic_axis(t5_run):
    _, _, _, workspace, record, reference = t5_run
    assert len(set(reference[0][0].tolist())) > 3  # varied ids: a comparison that could fail
    by_module = {s.module: s for s in record.structures}
    decoder = by_module["decoder"]
    assert "input_ids: int64[2d]" in decoder.description and "use_cache=False" in decoder.description
    assert "encoder_attention_mask: int64[2d]" in decoder.description
    assert decoder.calls == 2 * NEW_TOKENS  # one call per new token, per generate
    status = json.loads((workspace / decoder.package / "status.json").read_text())
    inputs = {t["name"]: t for t in status["signature"]["inputs"]}
    assert inputs["input_ids"]["shape"] == [None, None]  # batch, and the sequence that grows
    assert inputs["encoder_hidden_states"]["shape"] == [None, None, 32]  # the inputs' lengths differ
    assert by_module["encoder"].calls == 2
    for structure in record.structures:
        assert structure.serving.value == "optimized", (structure.module, structure.reason)
    assert record.end_to_end.passed


def test_the_generated_ids_equal_the_originals_after_load_optimized(t5_run):
    _, generate, parts, workspace, _, reference = t5_run
    served = sextant.load_optimized(workspace, modules=parts, trust_source=True)
    assert set(served) == {"encoder", "decoder"}
    try:
        with torch.no_grad():
            for ids, want in zip(INPUTS, reference):
                assert torch.equal(generate(ids), want)
    finally:
        for part in parts:
            for key in list(part.sextant.installed()):
                part.sextant.install(key, None)
