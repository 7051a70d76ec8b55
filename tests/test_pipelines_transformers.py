"""Pipelines (issue 15) with a real transformers ``generate`` loop: a tiny random T5 encoder-decoder
built in code, its encoder and decoder wrapped in place, greedy decoding of a few tokens.

``generate`` runs with ``use_cache=True``: transformers 5 passes the decoder an
``EncoderDecoderCache`` object, which the decoder grows in place and returns. sextant records the
cache as part of the call's structure (its layers' keys and values as tensors), so the decoder has
two structures: the first step's, with an empty cache (cache-free: no cache tensors in, the new
keys and values out), and every later step's, whose cache sequence axis grows (a dynamic axis of
its package). Served, the flat model takes the cache's tensors and returns the grown ones, and the
wrapper fills the caller's cache object in place, as the original decoder does.
"""

from __future__ import annotations

import json

import pytest
from sextant.testing.requires import importorskip

torch = importorskip("torch", reason="the pipeline wrapper is torch's")
importorskip("sextant_onnx", reason="the test restricts candidates to ones that include onnxruntime")
transformers = importorskip("transformers", reason="needs transformers (the torch plugin's 'pipelines' extra)")

import sextant  # noqa: E402
from _support import PIPELINE_OPTIONS, tiny_t5  # noqa: E402
from sextant.testing import FAST  # noqa: E402

#: ONNX Runtime candidates only: torch-eager (the reference) could otherwise win the ranking, and then
#: the comparisons below would hold the original model against itself
OPTIONS = {**PIPELINE_OPTIONS, "runners": ("onnxruntime",), "profiler": FAST}
NEW_TOKENS = 6


def _cache_argument() -> str:
    """The name the T5 decoder takes its cache by: ``past_key_values``, ``cache`` in newer ones (5.25 here)."""
    import inspect

    from transformers.models.t5 import modeling_t5

    parameters = inspect.signature(modeling_t5.T5Stack.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


CACHE = _cache_argument()


INPUTS = [
    torch.tensor([[5, 6, 7, 8, 9, 1], [12, 13, 14, 1, 0, 0]]),  # a padded batch of two
    torch.tensor([[20, 21, 22, 23, 24, 25, 26, 1]]),  # one longer input
]


def generator(model, use_cache=True):
    def generate(ids, **options):
        mask = (ids != 0).long()
        return model.generate(
            ids, attention_mask=mask, max_new_tokens=NEW_TOKENS, do_sample=False, use_cache=use_cache, **options
        )

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


def decoder_structures(record):
    """The decoder's two structures: the first step's (empty cache) and the later steps'."""
    decoder = [s for s in record.structures if s.module == "decoder"]
    empty = [s for s in decoder if "self: 2 empty layers" in s.description]
    cached = [s for s in decoder if "self: 2 layers float32[4d]" in s.description]
    assert len(decoder) == 2 and len(empty) == len(cached) == 1, [s.description for s in decoder]
    return empty[0], cached[0]


def signature(workspace, structure):
    status = json.loads((workspace / structure.package / "status.json").read_text())
    return {t["name"]: t for t in status["signature"]["inputs"] + status["signature"]["outputs"]}, status


def test_the_decoder_has_a_cache_free_and_a_cached_structure(t5_run):
    _, _, _, workspace, record, reference = t5_run
    assert len(set(reference[0][0].tolist())) > 3  # varied ids: a comparison that could fail
    empty, cached = decoder_structures(record)
    assert f"{CACHE}=EncoderDecoderCache(self: 2 empty layers, cross: 2 empty layers, is_updated=False)" in (
        empty.description
    )
    assert "cross: 2 layers float32[4d], is_updated=True" in cached.description
    for structure in (empty, cached):
        assert "input_ids: int64[2d]" in structure.description and "use_cache=True" in structure.description
    assert empty.calls == 2  # the first step of each generate
    assert cached.calls == 2 * (NEW_TOKENS - 1)  # every later step

    tensors, _ = signature(workspace, empty)
    assert not any(name.startswith(f"{CACHE}.self.0.key") for name in tensors)  # nothing cached yet
    assert tensors[f"{CACHE}.self.0.present_key"]["shape"] == [None, 4, 1, 8]  # one step's keys out
    assert tensors[f"{CACHE}.cross.1.present_value"]["shape"] == [None, 4, None, 8]  # the encoder's length

    tensors, _ = signature(workspace, cached)
    assert tensors["input_ids"]["shape"] == [None, 1]  # one new token per step
    assert tensors[f"{CACHE}.self.0.key"]["shape"] == [None, 4, None, 8]  # batch, heads, the cache that grows
    assert tensors[f"{CACHE}.self.1.present_value"]["shape"] == [None, 4, None, 8]
    assert tensors[f"{CACHE}.cross.0.key"]["shape"] == [None, 4, None, 8]  # the inputs' lengths differ
    # the cross-attention cache is only read in a cached step: the flat model does not return it
    assert f"{CACHE}.cross.0.present_key" not in tensors
    assert by_module(record)["encoder"].calls == 2


def by_module(record):
    return {s.module: s for s in record.structures}


def test_an_onnx_runtime_candidate_serves_each_decoder_structure(t5_run):
    _, _, _, workspace, record, _ = t5_run
    for structure in decoder_structures(record):
        _, status = signature(workspace, structure)
        passed = [name for name, c in status["candidates"].items() if c["status"] == "ok" and "onnxruntime" in name]
        assert passed, (structure.description, {n: c["status"] for n, c in status["candidates"].items()})
        assert structure.serving.value == "optimized", (structure.module, structure.reason)
    assert by_module(record)["encoder"].serving.value == "optimized", by_module(record)["encoder"].reason
    for structure in record.structures:  # what serves each part: never the original (torch-eager) itself
        assert structure.runner == "onnxruntime", (structure.module, structure.chosen)
    assert record.end_to_end.passed, record.end_to_end.detail


def test_the_generated_ids_and_the_cache_equal_the_originals_after_load_optimized(t5_run):
    model, generate, parts, workspace, record, reference = t5_run
    served = sextant.load_optimized(workspace, modules=parts, trust_source=True)
    assert set(served) == {"encoder", "decoder"}
    assert set(served["decoder"]) == {s.key for s in decoder_structures(record)}
    labels = [label for structures in served.values() for label in structures.values()]
    assert len(labels) == 3 and all(label.endswith("@cpu (onnxruntime)") for label in labels), served
    try:
        with torch.no_grad():
            for ids, want in zip(INPUTS, reference):
                assert torch.equal(generate(ids), want)
            got = generate(INPUTS[0], return_dict_in_generate=True)
            with parts[0].sextant.original(), parts[1].sextant.original():
                original = generate(INPUTS[0], return_dict_in_generate=True)
        assert torch.equal(got.sequences, original.sequences)
        # the cache the caller holds was grown in place by the served decoder, as by the original
        for cache in ("self_attention_cache", "cross_attention_cache"):
            mine, theirs = getattr(got.past_key_values, cache), getattr(original.past_key_values, cache)
            assert mine.get_seq_length() == theirs.get_seq_length() > 0
            for a, b in zip(mine.layers, theirs.layers):
                torch.testing.assert_close(a.keys, b.keys, atol=1e-4, rtol=1e-4)
                torch.testing.assert_close(a.values, b.values, atol=1e-4, rtol=1e-4)
        assert got.past_key_values.is_updated == original.past_key_values.is_updated
        # without the cache, the decoder's calls are of structures never recorded: the original serves
        with pytest.warns(UserWarning, match="never recorded"):
            assert torch.equal(generator(model, use_cache=False)(INPUTS[0]), reference[0])
    finally:
        for part in parts:
            for key in list(part.sextant.installed()):
                part.sextant.install(key, None)
