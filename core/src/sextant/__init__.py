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
    """``sextant.Module``: the wrapper for a pipeline's parts that a framework plugin contributes
    (``sextant_register_part_wrappers``; torch's is the only one so far)."""
    from sextant.errors import UsageError
    from sextant.plugins import load_catalog
    from sextant.specs import resolve

    wrappers = [c.spec for c in load_catalog().of("part_wrapper")]
    if not wrappers:
        raise UsageError(
            "sextant.Module needs a plugin that wraps a pipeline's parts, and none is installed",
            hint="pip install sextant-torch (it wraps torch.nn.Module parts of a pipeline).",
        )
    if len(wrappers) > 1:
        names = ", ".join(f"{w.name} ({w.framework})" for w in wrappers)
        raise UsageError(
            f"sextant.Module is ambiguous: several plugins wrap pipeline parts: {names}",
            hint="Import the wrapper of your framework from its plugin (sextant_torch.pipelines.Module).",
        )
    try:
        return resolve(wrappers[0].wrapper)
    except ImportError as exc:
        raise UsageError(
            f"sextant.Module ({wrappers[0].name}) cannot be imported: {exc}",
            hint=wrappers[0].install or f"Install what {wrappers[0].name} requires: {', '.join(wrappers[0].requires)}.",
        ) from exc
