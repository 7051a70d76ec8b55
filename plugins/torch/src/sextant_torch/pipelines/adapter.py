"""The flat-signature model of one call structure: what ``sextant.optimize`` sees of a part.

It takes the structure's tensors positionally (named in ``sextant_signature``, which the torch
loader declares as the source's signature), rebuilds the original call with the structure's
constants (a key/value cache is built new from its layers' tensors), calls the wrapped module and
returns its output's tensors as a flat dict by path: a cache's grown keys and values
(``past_key_values.self.0.present_key``) among them, and without the tensors that are the call's own
(a cross-attention cache the model only read). It is an ordinary ``nn.Module``, so every exporter
and runner of the torch plugin applies to it.
"""

from __future__ import annotations

from typing import Any

import torch

from sextant_torch.pipelines.structure import Flat, Tree, describe, join, split


class FlatAdapter(torch.nn.Module):
    """``module`` (its ``forward_name`` method, or its call) behind a flat signature."""

    def __init__(self, module: torch.nn.Module, forward_name: str | None, call: Tree, signature: Any) -> None:
        super().__init__()
        self.module = module
        self.forward_name = forward_name
        self.call = call
        self.sextant_signature = signature  # read by sextant_torch.source.module_source

    def forward(self, *tensors: torch.Tensor) -> dict[str, torch.Tensor]:
        made: list[Any] = []
        args, kwargs = join(self.call, list(tensors), made=made)
        target = getattr(self.module, self.forward_name) if self.forward_name else self.module
        call = Flat(self.call, [("", t) for t in tensors], made)
        return dict(split(target(*args, **kwargs), call=call).tensors)

    def extra_repr(self) -> str:  # joins the source fingerprint: two structures are two models
        return f"call={describe(self.call)}, forward={self.forward_name or '__call__'}"
