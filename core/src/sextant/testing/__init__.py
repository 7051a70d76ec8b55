"""Helpers for testing sextant and its plugins without any ML framework.

- ``sextant.testing.fake``: a plugin for a tiny numpy "framework" (an MLP object, an exporter to a
  JSON graph, an fp16 converter, two runners). Register it with
  ``SEXTANT_PLUGIN_MODULES=sextant.testing.fake`` or ``load_catalog(extra_modules=[...])``.
- ``sextant.testing.faults``: exporters that crash, hang, raise or give wrong answers, to test
  how a pipeline survives them.
- ``sextant.testing.contracts``: checks a plugin author runs against their own specs.
"""
