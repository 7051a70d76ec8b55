"""sextant: find the fastest way to run a trained model that still gives the right answers.

The public API is imported lazily, so ``import sextant`` (and ``sextant --help``) stays fast::

    import sextant
    package = sextant.optimize(model, samples)
    runner = package.best().load()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sextant.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "hookimpl",
    "load",
    "Objective",
    "optimize",
    "OptimizeOptions",
    "Package",
    "SextantError",
]

_LAZY = {
    "optimize": "sextant.pipeline",
    "OptimizeOptions": "sextant.options",
    "Objective": "sextant.objective",
    "load": "sextant.package",
    "Package": "sextant.package",
    "SextantError": "sextant.errors",
}

if TYPE_CHECKING:
    from sextant.errors import SextantError
    from sextant.objective import Objective
    from sextant.options import OptimizeOptions
    from sextant.package import Package, load
    from sextant.pipeline import optimize


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sextant' has no attribute {name!r}")
