"""What the composite optimizer needs from a wrapped part of a pipeline, framework-free.

A *part* is one module of a larger program (a pipeline's text encoder, UNet, VAE decoder) wrapped
by a framework plugin (``sextant.Module`` for torch). It records the calls it sees while the
program runs, grouped by *structure* (the shape of the call with its tensors taken out: nesting,
keyword names, ``None`` and other constants, tensor dtypes and ranks), and later serves a loaded
runner per structure. The core talks to parts through :class:`Part` only, so it never imports a
framework; parts announce themselves with :func:`register` when they are built.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from sextant.runtime import Runner
    from sextant.signature import Signature


@dataclass(frozen=True)
class Recording:
    """The calls of one part with one structure.

    ``key`` names the structure (stable across runs and processes), ``description`` says what it
    is in words, ``calls`` how many calls had it, ``batches`` the recorded flat inputs (at most the
    recording limit), each a dict of input name to array, in calling order. ``layout`` is the
    wrapper's own JSON-able description of the structure, kept in ``pipeline.json`` and given back to
    :meth:`Part.install` so that a fresh process can serve it.
    """

    key: str
    description: str
    calls: int
    batches: tuple[Mapping[str, np.ndarray], ...]
    layout: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Part(Protocol):
    """A wrapped module, as the composite optimizer drives it."""

    @property
    def name(self) -> str: ...

    def start_recording(self, limit: int, max_structures: int) -> None:
        """Record up to ``limit`` calls per structure (calls with new shapes preferred), for at
        most ``max_structures`` structures; later calls still run the original module."""

    def stop_recording(self) -> list[Recording]:
        """Stop recording; return what was recorded since :meth:`start_recording`."""

    def model(self, key: str, signature: Signature) -> Any:
        """A flat-signature model for one structure: it takes the structure's tensors positionally
        in ``signature`` order and returns named tensors; what ``sextant.optimize`` is given."""

    def install(
        self, key: str, runner: Runner | None, label: str = "", layout: Mapping[str, Any] | None = None
    ) -> None:
        """Serve calls of structure ``key`` with ``runner`` (``None``: the original module again);
        ``layout`` is the recording's, for a structure this process did not record."""

    def installed(self) -> dict[str, str]:
        """The label of what serves each structure now (structures served by the original are absent)."""

    def start_timing(self) -> None:
        """Measure the wall time of every call from now on (the previous measurements are dropped)."""

    def stop_timing(self) -> list[float]:
        """Stop measuring; the seconds of each call measured."""


_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()


def register(part: Part) -> None:
    """Announce a part (called by the wrapper when it is built); the registry holds it weakly."""
    _LIVE.add(part)


def live_parts() -> list[Part]:
    """Every part built in this process and still alive, in no particular order."""
    return sorted(_LIVE, key=lambda p: p.name)


def unbatched_inputs(batches: Sequence[Mapping[str, np.ndarray]]) -> tuple[str, ...]:
    """The inputs that carry no batch axis: in some call, their axis 0 differs from the call's
    batch (the axis-0 size most inputs share). A pipeline's batch need not be the part's (a
    classifier-free-guidance UNet runs at twice the prompt batch): each call's own batch counts."""
    unbatched: set[str] = set()
    for batch in batches:
        sizes = [a.shape[0] for a in batch.values() if a.ndim > 0]
        if not sizes:
            return tuple(batch)
        common = max(set(sizes), key=lambda s: (sizes.count(s), -sizes.index(s)))
        unbatched |= {name for name, a in batch.items() if a.ndim == 0 or a.shape[0] != common}
    return tuple(name for name in batches[0] if name in unbatched) if batches else ()
