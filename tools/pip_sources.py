"""Print the ``uv pip install`` options that make uv install from where pip installs here.

The Makefile installs with uv, which reads none of pip's configuration: on a machine whose pip is
set up to look in a local folder of wheels (``find-links``; a CPU build of torch, say) or in extra
package indexes, or to apply a constraints file, uv would ask PyPI alone and could pull other builds
(for torch, a multi-GB CUDA build). This reads pip's own settings (``pip config list``: its
configuration files and ``PIP_*`` environment variables, the environment first, then the
``install`` section, then ``global``) and prints the same sources as uv options on one line,
shell-quoted. Where pip has none of these settings it prints nothing, and uv uses PyPI.

Standard library only: it runs before any environment exists.
"""

from __future__ import annotations

import shlex
import subprocess
import sys

#: pip's option → uv's (both take several values, separated by white space in pip's settings)
OPTIONS = {
    "index-url": "--default-index",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
}


def pip_settings() -> dict[str, str]:
    """``pip config list`` as a mapping, or an empty one where pip cannot say."""
    try:
        listed = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    settings = {}
    for line in listed.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            settings[key.strip()] = value.strip().strip("'\"")
    return settings


def uv_options(settings: dict[str, str]) -> list[str]:
    options: list[str] = []
    for name, flag in OPTIONS.items():
        value = next((settings[k] for k in (f":env:.{name}", f"install.{name}", f"global.{name}") if k in settings), "")
        for item in value.split():
            options += [flag, item]
    if any(flag in options for flag in ("--extra-index-url", "--find-links")):
        # pip takes the best version across all its sources; uv's default stops at the first index
        # that has the package
        options += ["--index-strategy", "unsafe-best-match"]
    return options


if __name__ == "__main__":
    print(shlex.join(uv_options(pip_settings())))
