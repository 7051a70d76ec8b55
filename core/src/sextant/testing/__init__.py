"""Helpers for testing sextant and its plugins without any ML framework.

- ``sextant.testing.fake``: a plugin for a tiny numpy "framework" (an MLP object, an exporter to a
  JSON graph, an fp16 converter, two runners). Register it with
  ``SEXTANT_PLUGIN_MODULES=sextant.testing.fake`` or ``load_catalog(extra_modules=[...])``.
- ``sextant.testing.faults``: exporters that crash, hang, raise or give wrong answers, to test
  how a pipeline survives them.
- ``sextant.testing.contracts``: checks a plugin author runs against their own specs.
"""

from sextant.profiler import ProfilerConfig

#: a profiler shortened for tests: tests check behaviour, benchmarks measure speed
FAST = ProfilerConfig(window_s=0.002, warmup_s=0.001, batch_budget_s=0.1, max_batch=4, stability=1.0)
