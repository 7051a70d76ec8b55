"""A two-part toy pipeline optimized in place: python examples/pipeline.py [WORKSPACE]."""

import sys

import sextant
import torch
from torch import nn


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 16)

    def forward(self, x):
        return torch.tanh(self.proj(x))


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.o = nn.Linear(16, 16), nn.Linear(16, 16)

    def forward(self, seq, hidden, scale=1.0, mask=None):
        attention = torch.softmax(self.q(seq) @ hidden.transpose(1, 2) * scale, -1)
        return {"logits": self.o(attention @ hidden), "pooled": hidden.mean(1)}


torch.manual_seed(0)
encoder = sextant.Module(Encoder().eval(), name="encoder")
decoder = sextant.Module(Decoder().eval(), name="decoder")


@torch.no_grad()
def pipeline(x):
    hidden = encoder(x)
    hidden = torch.cat([hidden, hidden])  # classifier-free guidance doubles the batch
    seq = torch.zeros(hidden.shape[0], 1, 16)
    for _ in range(3):  # the sequence grows by one each step
        out = decoder(seq, hidden, scale=0.5, mask=None)["logits"]
        seq = torch.cat([seq, out[:, -1:]], 1)
    return seq[: x.shape[0]]


if __name__ == "__main__":
    workspace = sys.argv[1] if len(sys.argv) > 1 else "sextant-workspace/pipeline"
    data = [torch.randn(1, 5, 8), torch.randn(2, 7, 8)]
    sextant.optimize_pipeline(
        pipeline, data, workspace=workspace, runners=("torch-eager", "torchscript", "onnxruntime")
    )
    print(sextant.load_optimized(workspace, trust_source=True))
    print(pipeline(data[0]).shape)
