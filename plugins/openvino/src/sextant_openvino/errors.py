"""OpenVINO's exception messages as one readable line, for the reasons sextant records."""

from __future__ import annotations


def reason(exc: BaseException) -> str:
    """OpenVINO's message without its source locations (``Exception from src/...``, ``Check ... failed at``)."""
    lines = [line.strip() for line in str(exc).splitlines()]
    kept = [line for line in lines if line and not line.startswith(("Exception from ", "Check '"))]
    return " ".join(kept) or type(exc).__name__
