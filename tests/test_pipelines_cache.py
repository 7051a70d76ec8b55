"""Pipelines (issue 15): transformers key/value caches in a wrapped module's calls, without optimizing.

A tiny random T5's decoder, wrapped, records its ``generate(use_cache=True)`` calls; each structure
is then served by its own flat adapter behind a runner that takes and returns numpy arrays (as
ONNX Runtime does), installed from the JSON layout (as in a fresh process). The generated ids, and
the cache object the caller holds afterwards, must equal the original's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sextant.testing.requires import importorskip

torch = importorskip("torch", reason="the pipeline wrapper is torch's")
transformers = importorskip("transformers", reason="needs transformers (the torch plugin's 'pipelines' extra)")

import sextant  # noqa: E402
from _support import tiny_t5  # noqa: E402
from sextant.pipelines.parts import unbatched_inputs  # noqa: E402
from sextant.errors import SampleError  # noqa: E402
from sextant.signature import Signature, infer_tensors  # noqa: E402
from sextant_torch.pipelines import structure  # noqa: E402

INPUTS = [torch.tensor([[5, 6, 7, 8, 9, 1], [12, 13, 14, 1, 0, 0]]), torch.tensor([[20, 21, 22, 23, 1]])]


def generate(model, ids, **options):
    with torch.no_grad():
        return model.generate(
            ids, attention_mask=(ids != 0).long(), max_new_tokens=5, do_sample=False, use_cache=True, **options
        )


class AdapterRunner:
    """A flat adapter behind numpy in and out, the way every runner is called."""

    def __init__(self, model, signature):
        self.model, self.names = model, list(signature.input_names)

    def infer(self, batch):
        with torch.no_grad():
            outputs = self.model(*(torch.from_numpy(np.asarray(batch[n])) for n in self.names))
        return {name: tensor.numpy() for name, tensor in outputs.items()}


def test_a_served_decoder_grows_the_callers_cache_in_place():
    model = tiny_t5(heads=2)
    reference = [generate(model, ids, return_dict_in_generate=True) for ids in INPUTS]
    model.decoder = sextant.Module(model.decoder, name="decoder")
    part = model.decoder.sextant
    part.start_recording(4, 8)
    for ids in INPUTS:
        generate(model, ids)
    recordings = part.stop_recording()
    assert sorted(r.calls for r in recordings) == [2, 8]  # the first steps, the later steps
    for recording in recordings:
        layout = json.loads(json.dumps(recording.layout))  # as pipeline.json keeps it
        call = structure.from_json(layout["call"])
        assert structure.key(call) == recording.key  # the same structure in a fresh process
        batches = list(recording.batches)
        unbatched = unbatched_inputs(batches)
        signature = Signature(infer_tensors(batches, unbatched=unbatched), call_style="positional")
        part.install(recording.key, AdapterRunner(part.model(recording.key, signature), signature), "adapter", layout)
    assert len(part.installed()) == 2
    for ids, want in zip(INPUTS, reference):
        got = generate(model, ids, return_dict_in_generate=True)
        assert torch.equal(got.sequences, want.sequences)
        for cache in ("self_attention_cache", "cross_attention_cache"):
            mine, theirs = getattr(got.past_key_values, cache), getattr(want.past_key_values, cache)
            assert len(mine.layers) == len(theirs.layers) == 2
            for a, b in zip(mine.layers, theirs.layers):
                assert a.keys.shape == b.keys.shape and a.keys.shape[2] > 0
                torch.testing.assert_close(a.keys, b.keys)
                torch.testing.assert_close(a.values, b.values)
        assert got.past_key_values.is_updated == want.past_key_values.is_updated == {0: True, 1: True}


def test_a_cache_keeps_its_layout_and_names_its_tensors():
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    keys = torch.randn(1, 2, 3, 4)
    cache.self_attention_cache.update(keys, keys + 1, 0)
    call = structure.split_call(lambda past_key_values: None, (), {"past_key_values": cache})
    assert [name for name, _ in call.tensors] == ["past_key_values.self.0.key", "past_key_values.self.0.value"]
    assert call.caches == [cache]
    assert structure.from_json(json.loads(json.dumps(structure.to_json(call.tree)))) == call.tree
    _, kwargs = structure.join(call.tree, [keys * 2, keys * 3])  # a new cache of the same layout
    rebuilt = kwargs["past_key_values"]
    assert type(rebuilt) is EncoderDecoderCache and rebuilt is not cache
    assert rebuilt.get_seq_length() == 3 and rebuilt.cross_attention_cache.get_seq_length() == 0
    assert torch.equal(rebuilt.self_attention_cache.layers[0].values, keys * 3)
    other = EncoderDecoderCache(DynamicCache(), DynamicCache())
    assert structure.key(structure.split_call(lambda past_key_values: None, (), {"past_key_values": other}).tree) != (
        structure.key(call.tree)
    )  # an empty cache is another structure


def test_a_static_cache_is_refused_by_name():
    from transformers.cache_utils import StaticCache

    model = tiny_t5(heads=2)
    wrapped = sextant.Module(model.decoder, name="static-decoder")
    wrapped.sextant.start_recording(4, 8)
    cache = StaticCache(config=model.config, max_cache_len=8)
    try:
        with pytest.raises(SampleError, match="past_key_values is a StaticCache"):
            wrapped(input_ids=torch.tensor([[0]]), past_key_values=cache, use_cache=True)
    finally:
        wrapped.sextant.stop_recording()
