"""The single-model run (``optimize``): plan, export and convert in isolation, check correctness, profile, verify, select.

The optimizer knows no framework by name: it composes what the catalog holds. It reads top to
bottom as the job goes; each stage lives in its own module of this package:

- :mod:`.workspace`: the package folder, the source model written into it, pruning;
- :mod:`sextant.records`: typed step and candidate records (``Status``, ``Cause``);
- :mod:`.ledger`: the one owner of ``status.json`` and of the events the CLI shows;
- :mod:`.context`: what steps and candidates share, and handing a job to a child;
- :mod:`.steps`: running one export or conversion (or reusing it);
- :mod:`.duplicates`: a chain with the same bytes as an earlier one is built and measured once;
- :mod:`.candidates`: judging a candidate's outputs, profiling it (or reusing it);
- :mod:`.reference`: the baseline's outputs as the reference, its profile later, why it failed;
- :mod:`.schedule`: the order the plan runs in: the reference, history's favourites, the rest;
- :mod:`.learned`: this machine's history: the order candidates are measured in, slow builds;
- :mod:`.variants`: runner option variants and option search, on the best artifact only;
- :mod:`sextant.selection`: choosing the best under the objective;
- :mod:`.seal`: how a run (this one or a text-generation run) begins and ends in its workspace:
  the earlier run's status, the report, the manifest, the error when nothing was selected.

Every step and candidate is keyed by content; a re-run reuses what the workspace's ``status.json``
recorded under the same key, and redoes only what a changed option touches.
"""
