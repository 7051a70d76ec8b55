"""Real architectures from ``transformers``, built in code from tiny random configurations (issue 17).

Each :class:`Architecture` builds a model exactly as a user would get it from ``transformers``
(``ResNetModel(config)``, ...: keyword inputs, a ``ModelOutput`` returned, nothing wrapped away) and
makes inputs for it at any batch size from a seed, so a test or a benchmark can optimize it on some
inputs and check the result on others it never saw. Shared by ``tests/test_architectures.py`` and
``benchmarks/architectures.py``; needs torch and transformers, and nothing downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Inputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class Architecture:
    """One model of the zoo: ``build()`` gives it in eval mode with fixed random weights,
    ``inputs(batch, seed)`` a dict of arrays its ``forward`` takes as keywords."""

    name: str
    what: str  # what about it is hard for an exporter
    build: Callable[[], object]
    inputs: Callable[[int, int], Inputs]

    def samples(self) -> Inputs:
        """What sextant optimizes from (batch 2, seed 0)."""
        return self.inputs(2, 0)


def _model(config_class: str, model_class: str, module: str | None = None, **config) -> Callable[[], object]:
    def build():
        import importlib

        import torch
        import transformers

        torch.manual_seed(0)
        conf = getattr(transformers, config_class)(**config)
        owner = importlib.import_module(module) if module else transformers
        return getattr(owner, model_class)(conf).eval()

    return build


def _text(vocab: int, length: int = 16, pad: int = 0, token_types: bool = False) -> Callable[[int, int], Inputs]:
    """Token ids with an attention mask whose later rows are right-padded with ``pad`` (every row
    keeps at least half its tokens), so a mask that is ignored or baked in gives other numbers."""

    def inputs(batch: int, seed: int) -> Inputs:
        rng = np.random.default_rng(seed)
        mask = np.ones((batch, length), np.int64)
        for row in range(1, batch):
            mask[row, rng.integers(length // 2, length) :] = 0
        ids = rng.integers(3, vocab, (batch, length)).astype(np.int64)
        ids[mask == 0] = pad
        out = {"input_ids": ids, "attention_mask": mask}
        if token_types:
            out["token_type_ids"] = np.tile((np.arange(length) >= length // 2).astype(np.int64), (batch, 1))
        return out

    return inputs


def _floats(name: str, *shape: int) -> Callable[[int, int], Inputs]:
    def inputs(batch: int, seed: int) -> Inputs:
        return {name: np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)}

    return inputs


_TINY_BERT = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
)

ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture(
        "bert",
        "encoder, three keyword inputs, padding mask, pooler",
        _model("BertConfig", "BertModel", **_TINY_BERT),
        _text(99, token_types=True),
    ),
    Architecture(
        "gpt2",
        "decoder, causal mask combined with the padding mask",
        _model(
            "GPT2Config",
            "GPT2Model",
            vocab_size=99,
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=64,
            use_cache=False,
            bos_token_id=0,
            eos_token_id=0,
            pad_token_id=0,
        ),
        _text(99),
    ),
    Architecture(
        "vit",
        "patch embedding by convolution, CLS token, pooler",
        _model(
            "ViTConfig",
            "ViTModel",
            image_size=32,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
        ),
        _floats("pixel_values", 3, 32, 32),
    ),
    Architecture(
        "resnet",
        "convolutions with batch norm, pooler",
        _model(
            "ResNetConfig", "ResNetModel", embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic"
        ),
        _floats("pixel_values", 3, 32, 32),
    ),
    Architecture(
        "convnext",
        "depthwise 7x7 convolutions, channels-last layer norm, layer scale",
        _model("ConvNextConfig", "ConvNextModel", hidden_sizes=[16, 32], depths=[1, 1], num_stages=2),
        _floats("pixel_values", 3, 32, 32),
    ),
    Architecture(
        "swin",
        "shifted-window attention (roll, window partition, attention mask), patch merging",
        _model(
            "SwinConfig",
            "SwinModel",
            image_size=32,
            patch_size=2,
            embed_dim=16,
            depths=[1, 2],
            num_heads=[2, 2],
            window_size=4,
        ),
        _floats("pixel_values", 3, 32, 32),
    ),
    Architecture(
        "wav2vec2",
        "convolutional feature extractor with group norm, weight-norm positional convolution",
        _model(
            "Wav2Vec2Config",
            "Wav2Vec2Model",
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            conv_dim=(16, 16, 16),
            conv_stride=(4, 4, 4),
            conv_kernel=(8, 8, 8),
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2,
        ),
        _floats("input_values", 1024),
    ),
    Architecture(
        "t5-encoder",
        "relative position buckets, RMS norm, no bias",
        _model(
            "T5Config",
            "T5EncoderModel",
            vocab_size=99,
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
        ),
        _text(99),
    ),
    Architecture(
        "distilbert",
        "encoder without token types, sinusoid-free learned positions",
        _model("DistilBertConfig", "DistilBertModel", vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37),
        _text(99),
    ),
    Architecture(
        "roberta",
        "position ids computed from the padding in the input ids",
        _model("RobertaConfig", "RobertaModel", **_TINY_BERT),
        _text(99, pad=1),
    ),
    Architecture(
        "mobilevit",
        "convolutions and attention over unfolded patches (reshapes that depend on the image size)",
        _model(
            "MobileViTConfig",
            "MobileViTModel",
            image_size=64,
            patch_size=2,
            hidden_sizes=[16, 24, 32],
            neck_hidden_sizes=[8, 8, 16, 16, 24, 24, 32],
            num_attention_heads=2,
        ),
        _floats("pixel_values", 3, 64, 64),
    ),
    Architecture(
        "segformer-segmentation",
        "a task head that reads its inner model's hidden_states (output_hidden_states=True, recorded by hooks)",
        _model(
            "SegformerConfig",
            "SegformerForSemanticSegmentation",
            num_encoder_blocks=2,
            depths=[1, 1],
            sr_ratios=[2, 1],
            hidden_sizes=[8, 16],
            patch_sizes=[7, 3],
            strides=[4, 2],
            num_attention_heads=[1, 1],
            mlp_ratios=[2, 2],
            decoder_hidden_size=16,
            num_labels=3,
        ),
        _floats("pixel_values", 3, 32, 32),
    ),
    Architecture(
        "whisper-encoder",
        "two 1-D convolutions over mel features, a fixed input length, sinusoidal positions",
        _model(
            "WhisperConfig",
            "WhisperEncoder",
            "transformers.models.whisper.modeling_whisper",
            vocab_size=99,
            d_model=32,
            encoder_layers=2,
            encoder_attention_heads=4,
            encoder_ffn_dim=37,
            decoder_layers=1,
            decoder_attention_heads=4,
            decoder_ffn_dim=37,
            num_mel_bins=16,
            max_source_positions=32,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=1,
        ),
        _floats("input_features", 16, 64),
    ),
)

BY_NAME = {a.name: a for a in ARCHITECTURES}
