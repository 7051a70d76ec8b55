"""A ~1M-parameter MLP (512 → 1024 → 512 → 10) with random weights, and samples for it.

sextant optimize examples/mlp.py:build --samples examples/mlp.py:samples
"""

import numpy as np
import torch
from torch import nn


def build() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(512, 1024), nn.GELU(), nn.Linear(1024, 512), nn.GELU(), nn.Linear(512, 10)).eval()


def samples() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((8, 512)).astype(np.float32) for _ in range(2)]
