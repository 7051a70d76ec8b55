"""The ``sextant`` command line: parse, call one pipeline function, render. No ML logic here.

One module per group of commands: :mod:`~sextant.cli.root` (the app, ``--debug``/``--version``,
the entry point and exit codes), :mod:`~sextant.cli.optimize` (``optimize``, ``inspect``),
:mod:`~sextant.cli.plugins` (``plugins``, ``formats``), :mod:`~sextant.cli.deploy` (``deploy TARGET``), :mod:`~sextant.cli.runfile` (``-c
run.toml``) and :mod:`~sextant.cli._common` (state, consoles, JSON, errors). Messages and progress
go to stderr; ``--json`` prints exactly one JSON document on stdout. Exit codes come from
:class:`sextant.errors.ExitCode`.
"""

from __future__ import annotations

from sextant.cli._common import State
from sextant.cli.root import app, entry, main, with_plugin_commands

__all__ = ["State", "app", "entry", "main", "with_plugin_commands"]
