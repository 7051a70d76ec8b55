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
    "load_optimized",
    "Module",
    "Objective",
    "optimize",
    "optimize_pipeline",
    "OptimizeOptions",
    "Package",
    "SextantError",
]

_LAZY = {
    "optimize": "sextant.optimizer.run",
    "OptimizeOptions": "sextant.options",
    "Objective": "sextant.objective",
    "load": "sextant.package",
    "Package": "sextant.package",
    "SextantError": "sextant.errors",
    "optimize_pipeline": "sextant.pipelines",
    "load_optimized": "sextant.pipelines",
}

if TYPE_CHECKING:
    from sextant.pipelines import load_optimized, optimize_pipeline
    from sextant.errors import SextantError
    from sextant.objective import Objective
    from sextant.options import OptimizeOptions
    from sextant.package import Package, load
    from sextant.optimizer.run import optimize


def __getattr__(name: str) -> Any:
    if name == "Module":
        return _module_wrapper()
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sextant' has no attribute {name!r}")


def _module_wrapper() -> Any:
    """``sextant.Module``: the torch plugin's wrapper for a pipeline's parts (torch is the only
    framework with one; a second would make this a plugin hook)."""
    try:
        from sextant_torch.pipelines import Module
    except ImportError as exc:
        from sextant.errors import UsageError

        raise UsageError(
            f"sextant.Module needs the torch plugin: {exc}",
            hint="pip install sextant-torch (it wraps torch.nn.Module parts of a pipeline).",
        ) from exc
    return Module
