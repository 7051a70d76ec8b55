"""``sextant analyze``: search serving configurations of models against a real Triton server.

- :mod:`.settings`: what is searched and how it is measured (``analyze.yaml``, the command line);
- :mod:`.inputs`: the target (a package is deployed first) and the requests perf_analyzer sends;
- :mod:`.llm`: ``--model-type llm``: the prompts a streaming generation model is measured with, its checks;
- :mod:`.model`: a model of the repository (its configuration, a digest of its files);
- :mod:`.space`: a model's serving space, and the configurations a point of it loads;
- :mod:`.control`: the server (local: started by sextant; remote: ``--url``);
- :mod:`.store`: every measurement, keyed and claimed (resuming, ``--rerank``, shared workers);
- :mod:`.explore`: measuring points (the search loop is the core's ``run_search``), concurrency sweeps;
- :mod:`.job`: :func:`analyze`, top to bottom; :mod:`.records`: what it found;
- :mod:`.outputs`, :mod:`.report`: the best repository, the CSV, ``analysis.json``, ``report.html``.

Importing this package imports nothing heavy (the CLI registers ``sextant analyze`` from it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sextant_triton.analyze.records import Analysis

__all__ = ["analyze"]


def analyze(*args: Any, **kwargs: Any) -> Analysis:
    """:func:`sextant_triton.analyze.job.analyze`: analyze a package or a model repository."""
    from sextant_triton.analyze.job import analyze as run

    return run(*args, **kwargs)
