"""Cheap checks (no torch import): availability, run by ``sextant plugins`` and the planner, and
what loading an artifact unpickles (``RunnerSpec.pickled``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def pickled_module(artifact: Path) -> str:
    """The eager and compile runners unpickle the whole ``nn.Module`` (see ``sextant_torch.source``)."""
    return f"{artifact.name} is a pickled torch nn.Module (torch.load with weights_only=False, cloudpickle)"


def check_compile(device: str) -> str | None:
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if not compiler:
        return "torch.compile needs a C++ compiler (install g++, or set CXX)"
    return None
