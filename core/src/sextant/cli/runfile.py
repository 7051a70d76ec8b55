"""Run files: a whole ``sextant optimize`` run in a TOML file that can live in version control.

The keys are the flags' long names (``max-batch-size``, or ``max_batch_size``), plus ``model`` and
``samples``; the values are TOML-typed (``precision = ["fp32", "bf16"]``, ``shape = {x = [1, 8]}``)
or the flags' strings (``precision = "fp32,bf16"``). Paths (``model``, ``samples``,
``workspace``) are relative to the file's folder. Only reading happens here; the values are parsed
by :meth:`sextant.options.OptimizeOptions.from_settings`, like the flags.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sextant.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: what a run file may say besides the options: what to optimize
RUN_KEYS = ("model", "samples")


def read_run_file(path: Path, valid: tuple[str, ...]) -> dict[str, Any]:
    """The settings in ``path``, keyed by canonical flag name (``max-batch-size``).

    :param valid: the option settings' names; ``model`` and ``samples`` are valid too.
    :raises UsageError: the file is missing or not TOML (naming the file and line), or a key is
        unknown (naming it and listing the valid ones).
    """
    from sextant.options import setting_name

    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the run file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    keys = (*RUN_KEYS, *valid)
    settings: dict[str, Any] = {}
    for key, value in document.items():
        name = setting_name(key)
        if name not in keys:
            raise UsageError(f"{path}: unknown key {key!r}", hint=f"Valid keys: {', '.join(keys)}.")
        if name in settings:
            raise UsageError(f"{path}: {key!r} is given twice (as - and _ spellings of one key)")
        settings[name] = value
    folder = path.absolute().parent
    for name in RUN_KEYS:
        if isinstance(settings.get(name), str):
            settings[name] = _relative_reference(settings[name], folder)
    if isinstance(settings.get("workspace"), str):
        settings["workspace"] = folder / settings["workspace"]
    return settings


def _relative_reference(text: str, folder: Path) -> str:
    """A model or samples reference with its path made relative to ``folder``:
    ``mlp.onnx``, ``examples/mlp.py:build``; ``package.module:build`` is left as it is."""
    if (folder / text).exists():
        return str(folder / text)
    target, sep, attr = text.rpartition(":")
    if sep and target and attr.isidentifier():
        return str(folder / target) + sep + attr if target.endswith(".py") else text
    return str(folder / text)
