"""A model of the analyzed repository, as read from its folder: :mod:`.space` searches its serving
fields, :mod:`.inputs` and :mod:`.llm` build the requests it is measured with."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sextant.api import UsageError

from sextant_triton import config as triton_config


@dataclass(frozen=True)
class ModelInfo:
    """A model of the repository: its configuration as written (a dict in protobuf's JSON field
    names) and a digest of its files (the model content a measurement is keyed by)."""

    name: str
    config: Mapping[str, Any]
    content: str

    @property
    def batching(self) -> bool:
        return int(self.config.get("max_batch_size", 0)) > 0

    @property
    def is_ensemble(self) -> bool:
        return self.config.get("platform") == "ensemble"

    @property
    def steps(self) -> tuple[str, ...]:
        """The models an ensemble's steps call."""
        return tuple(s["model_name"] for s in self.config.get("ensemble_scheduling", {}).get("step", []))


def read_model(repository: Path, name: str) -> ModelInfo:
    """A model of ``repository``; a missing one names the models there."""
    folder = repository / name
    if not (folder / "config.pbtxt").is_file():
        present = sorted(p.name for p in repository.iterdir() if (p / "config.pbtxt").is_file())
        raise UsageError(
            f"the repository {repository} has no model {name!r}",
            hint=f"Models there: {', '.join(present) or 'none'}.",
        )
    config = triton_config.to_dict(triton_config.read(folder / "config.pbtxt"))
    config.setdefault("name", name)
    return ModelInfo(name, config, model_content(folder))


def model_content(folder: Path) -> str:
    """A digest of a model folder's files (names and bytes, as ``hash_path`` takes them) less the
    ``__pycache__`` that a Python-backend model gains when the server first imports it: else a run
    would not find what the run before it measured."""
    sha = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        sha.update(str(file.relative_to(folder)).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
    return sha.hexdigest()
