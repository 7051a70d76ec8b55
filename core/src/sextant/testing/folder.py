"""A second deployer, written against the core's deployer API only: ``sextant deploy folder PACKAGE
--to DIR`` writes a plain folder that serves the chosen candidate with sextant's own runner::

    DIR/package/     the candidate alone as a package (its record, its artifact, a manifest)
    DIR/serve.py     python serve.py INPUTS.npz OUTPUTS.npz: loads it with ``sextant.load(...)``
                     and answers the inputs in batches of at most the derived max batch size
    DIR/README.md    what was deployed, and the serving settings derived from its profile

It is a test deployer (register it with ``SEXTANT_PLUGIN_MODULES=sextant.testing.folder``) and the
example a target's plugin module copies: one spec (its target option and the shared serving
overrides), one ``deploy(request) -> Deployment``, and nothing of the core re-implemented.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sextant.api import SERVING_OPTIONS, DeployerSpec, Deployment, DeployOption, DeployRequest, UsageError, hookimpl

SERVE = '''"""Serve {name} ({candidate}), written by `sextant deploy folder`.

    python serve.py INPUTS.npz OUTPUTS.npz

Needs sextant and the plugin of its runner ({runner}) installed."""

import sys
from pathlib import Path

import numpy as np
import sextant

HERE = Path(__file__).resolve().parent
MAX_BATCH = {max_batch}  # 0: the model is not batched; each file is one call


def main(inputs: str, outputs: str) -> None:
    runner = sextant.load(HERE / "package").best().load(trust_source={trust})
    with np.load(inputs) as data:
        feed = {{name: data[name] for name in data.files}}
    rows = len(next(iter(feed.values())))
    step = MAX_BATCH or rows
    parts = [runner.infer({{n: a[start : start + step] for n, a in feed.items()}}) for start in range(0, rows, step)]
    np.savez(outputs, **{{n: np.concatenate([np.asarray(p[n]) for p in parts]) for n in parts[0]}})
    runner.close()


if __name__ == "__main__":
    main(*sys.argv[1:3])
'''


@hookimpl
def sextant_register_deployers() -> list[DeployerSpec]:
    return [
        DeployerSpec(
            "folder",
            deploy="sextant.testing.folder:deploy",
            description="a plain folder: the candidate, a serve.py using sextant's API, a README",
            target=DeployOption("to", "path", required=True, help="The folder to write (created; empty or absent)."),
            options=SERVING_OPTIONS,
        )
    ]


def deploy(request: DeployRequest) -> Deployment:
    """Write the folder (see the module's docstring); a folder with other content is refused
    unless ``request.force``."""
    from sextant.api import (
        Package,
        ServingOptions,
        choose_candidate,
        one_candidate_package,
        served_name,
        serving_settings,
    )

    package = Package(request.package)
    serving = ServingOptions(**request.options)
    choice = choose_candidate(package, request.candidate, serving.max_batch_size)
    view = choice.view
    name = served_name(package, request.name)
    settings = serving_settings(view, serving)
    folder = Path(request.target)
    occupied = folder.exists() and any(folder.iterdir())
    if occupied and not request.force:
        raise UsageError(
            f"{folder} already exists and is not empty; nothing was written",
            hint="Pass --force to replace it, or choose another --to.",
        )
    view.verify(trust_source=request.trust_source)  # serve.py loads it with sextant's runner
    if occupied:
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    one_candidate_package(view, folder / "package")
    serve = folder / "serve.py"
    serve.write_text(
        SERVE.format(
            name=name,
            candidate=view.id,
            runner=view.record.runner,
            max_batch=settings.max_batch_size,
            trust=request.trust_source,
        )
    )
    readme = folder / "README.md"
    lines = [f"# {name}", "", f"Candidate `{view.id}`, served by `python serve.py INPUTS.npz OUTPUTS.npz`.", ""]
    notes = (*([choice.reason] if choice.regime else []), *settings.reasons)
    readme.write_text("\n".join([*lines, *(f"- {note}" for note in notes), ""]))
    return Deployment(
        target=str(folder),
        name=name,
        files=(serve, readme, folder / "package"),
        notes=notes,
        candidate=view.id,
        next_steps=(f"run:    python {serve} INPUTS.npz OUTPUTS.npz",),
        details={"max_batch_size": settings.max_batch_size, "choice": choice.to_json()},
    )
