"""Installing one deployment into a Triton model repository, however it was decided
(:mod:`sextant_triton.repository`, :mod:`sextant_triton.stream_deploy`, :mod:`sextant_triton.vllm_deploy`).

Everything is written to a staging folder first; it replaces nothing: an existing model folder
with other content, or a client file that differs, is a refusal unless ``force``. Deploying the
same thing twice is a no-op.
"""

from __future__ import annotations

import filecmp
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sextant.api import Deployment, UsageError

from sextant_triton import config


@dataclass(frozen=True)
class Contents:
    """What one deployment writes: the model folder's contents (``fill`` writes them into an empty
    folder), the client example's files next to the repository, and the notes."""

    name: str
    fill: Callable[[Path], None]
    client_files: Mapping[Path, bytes]
    notes: tuple[str, ...]
    details: Mapping[str, Any] = field(default_factory=dict)  # more for Deployment.details (--json)
    #: why the tritonserver bundled here cannot load the config (a backend it lacks), or ``None``
    bundled_cannot: str | None = None


def _same_tree(a: Path, b: Path) -> bool:
    """The same files with the same bytes under both folders; what serving a model adds
    (``__pycache__``) and when a one-candidate package's manifest was written do not count."""

    def files(root: Path) -> set[Path]:
        return {
            p.relative_to(root) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.relative_to(root).parts
        }

    def same(name: Path) -> bool:
        if name.name == "manifest.json" and "package" in name.parts:
            try:
                ours, theirs = (json.loads((root / name).read_text()) for root in (a, b))
            except ValueError:
                return False
            return {**ours, "written": None} == {**theirs, "written": None}
        return filecmp.cmp(a / name, b / name, shallow=False)

    names = files(a)
    return names == files(b) and all(same(n) for n in names)


def install(repository: Path, contents: Contents, force: bool) -> Deployment:
    """Write ``contents`` through a staging folder: nothing is replaced unless ``force`` (writing the
    same thing again is a no-op)."""
    model_dir = repository / contents.name
    client_files = contents.client_files
    staging = Path(tempfile.mkdtemp(prefix=f"sextant-deploy-{contents.name}-"))
    try:
        staged = staging / contents.name
        staged.mkdir()
        contents.fill(staged)

        unchanged = model_dir.exists() and _same_tree(staged, model_dir)
        occupied = model_dir.exists() and any(model_dir.iterdir()) and not unchanged
        differing = [p for p, data in client_files.items() if p.exists() and p.read_bytes() != data]
        if (occupied or differing) and not force:
            what = [str(model_dir)] if occupied else []
            raise UsageError(
                f"{' and '.join(what + [str(p) for p in differing])} already exist{'s' if len(what + differing) == 1 else ''} "
                "with other content; nothing was written",
                hint="Pass --force to replace them, or choose another --name or --repository.",
            )
        repository.mkdir(parents=True, exist_ok=True)
        if not unchanged:
            if model_dir.exists():
                shutil.rmtree(model_dir)
            shutil.move(str(staged), str(model_dir))
        for path, data in client_files.items():
            path.write_bytes(data)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = tuple(
        sorted(
            p
            for p in model_dir.rglob("*")
            if p.is_file() and not {"package", "__pycache__"} & set(p.relative_to(model_dir).parts)
        )
    )
    notes = (*contents.notes, "unchanged: the repository already held exactly this model") if unchanged else contents.notes
    written = config.to_dict(config.read(model_dir / "config.pbtxt"))
    client_script = next((f for f in client_files if f.name.endswith("_client.py")), None)
    return Deployment(
        target=str(repository),
        name=contents.name,
        files=(*files, *client_files),
        notes=notes,
        candidate=written.get("parameters", {}).get("sextant_candidate", {}).get("string_value", ""),
        next_steps=(
            f"start:  python -m sextant_triton.server {repository}"
            if contents.bundled_cannot is None
            else f"start:  tritonserver --model-repository {repository} (NVIDIA's tritonserver images); "
            f"python -m sextant_triton.server cannot load it here: {contents.bundled_cannot}",
            *([f"client: python {client_script}"] if client_script else []),
        ),
        details={"repository": str(repository), "config": written, **contents.details},
    )
