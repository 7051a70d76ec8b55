"""The flat-signature model of one call structure: what ``sextant.optimize`` sees of a part.

It takes the structure's tensors positionally (named in ``sextant_signature``, which the torch
loader declares as the source's signature), rebuilds the original call with the structure's
constants, calls the wrapped module and returns its output's tensors as a flat dict by path. It is
an ordinary ``nn.Module``, so every exporter and runner of the torch plugin applies to it.
"""

from __future__ import annotations

from typing import Any

import torch

from sextant_torch.composite.structure import Tree, describe, join, split


class FlatAdapter(torch.nn.Module):
    """``module`` (its ``forward_name`` method, or its call) behind a flat signature."""

    def __init__(self, module: torch.nn.Module, forward_name: str | None, call: Tree, signature: Any) -> None:
        super().__init__()
        self.module = module
        self.forward_name = forward_name
        self.call = call
        self.sextant_signature = signature  # read by sextant_torch.source.module_source

    def forward(self, *tensors: torch.Tensor) -> dict[str, torch.Tensor]:
        args, kwargs = join(self.call, list(tensors))
        target = getattr(self.module, self.forward_name) if self.forward_name else self.module
        _, flat = split(target(*args, **kwargs))
        return dict(flat)

    def extra_repr(self) -> str:  # joins the source fingerprint: two structures are two models
        return f"call={describe(self.call)}, forward={self.forward_name or '__call__'}"
