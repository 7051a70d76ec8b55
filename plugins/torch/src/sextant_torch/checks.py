"""Cheap availability checks (no torch import): run by ``sextant plugins`` and the planner."""

from __future__ import annotations

import os
import shutil


def check_compile(device: str) -> str | None:
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if not compiler:
        return "torch.compile needs a C++ compiler (install g++, or set CXX)"
    return None
