"""Optimizing the parts of a larger program (a pipeline) in place, and checking the whole.

Each part is optimized by the single-model run, :mod:`sextant.optimizer`.

- :mod:`.parts`: what a wrapped module (``sextant.Module``, from a framework plugin) offers the core;
- :mod:`.run`: :func:`optimize_pipeline`: record, optimize each part, check the whole, time it;
- :mod:`.search`: which candidate serves each part so that the pipeline's results hold;
- :mod:`.outputs`: a pipeline's results as arrays, and judging them against the reference;
- :mod:`.records`: ``pipeline.json``;
- :mod:`.load`: :func:`load_optimized`, swapping the choices in.
"""

from __future__ import annotations

from sextant.pipelines.load import load_optimized
from sextant.pipelines.run import optimize_pipeline

__all__ = ["load_optimized", "optimize_pipeline"]
