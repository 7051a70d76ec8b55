"""A 4-layer, 256-wide transformer encoder over token ids with an attention mask (dict inputs and
dict outputs, like a Hugging Face encoder), random weights.

    sextant optimize examples/transformer.py:build --samples examples/transformer.py:samples
"""

import numpy as np
import torch
from torch import nn


class Encoder(nn.Module):
    def __init__(
        self, vocab: int = 1000, width: int = 256, layers: int = 4, heads: int = 4, max_len: int = 512
    ) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(max_len, width)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        hidden = self.tokens(input_ids) + self.positions(positions)
        hidden = self.encoder(hidden, src_key_padding_mask=attention_mask == 0)
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return {"last_hidden_state": hidden, "pooled": pooled}


def build() -> nn.Module:
    torch.manual_seed(0)
    return Encoder().eval()


def samples(seq: int = 128) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1000, size=(2, seq)).astype(np.int64)
    mask = np.ones((2, seq), dtype=np.int64)
    mask[1, seq // 2 :] = 0  # the second sequence is padded
    return [{"input_ids": ids, "attention_mask": mask}]
