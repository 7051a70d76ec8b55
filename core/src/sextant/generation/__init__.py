"""Generative models: a causal LM optimized as the loop users run, not as one forward pass.

A generation run (``sextant optimize MODEL --task text-generation``) judges and measures each
generation backend (a :class:`~sextant.specs.GeneratorSpec`) on token prompts:

- :mod:`.config`: what is measured (prompt lengths, new tokens, batch sizes) and the constraints;
- :mod:`.prompts`: the prompts, from ``.npz`` token ids or generated at the given lengths, checked
  against the model's vocabulary and positions;
- :mod:`.loop`: the greedy loop over ``prefill`` / ``decode``, teacher forcing, and the
  :class:`~.loop.TextGenerator` a package's candidate loads as;
- :mod:`.judge`: teacher forcing on the reference's greedy continuation, token agreement;
- :mod:`.measure`: time to first token, inter-token latency, output tokens per second, memory;
- :mod:`.screen`: the short look at a candidate before its full measurement (``--cutoff``);
- :mod:`.worker`: the job an isolated child runs for one candidate;
- :mod:`.run`: the run itself (workspace, cache, records, selection), reusing the single-model
  run's machinery.

Nothing here is imported by ``sextant --help``.
"""
