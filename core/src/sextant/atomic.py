"""Atomic file writes: a reader never sees half a file, and a failed write leaves the last content.

Every module that writes a file others read while a run goes (``status.json``, the manifest, the
report, the pipelines' records) writes through here; this module imports nothing of sextant's at
load time, so no import circle closes through it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (:func:`write_text`)."""
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str))


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically: a temporary file, then a rename, so a reader never sees half a
    file. On any failure (a full disk included: :class:`~sextant.errors.DiskFullError`) the file
    keeps its last content and no temporary is left."""
    from sextant.diskspace import guarded

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with guarded(path, temporary=tmp):
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
