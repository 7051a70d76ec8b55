"""What the sextant distributions need on the GPU machine, what it has, and what was carried.

Each distribution's ``dependencies`` and the extras that matter on a GPU (``EXTRAS``) are read from
its ``pyproject.toml``. A requirement is met when the machine's interpreter has a version of it that
the requirement accepts, or when a wheel carried in the wheels folder (``gpu/wheels``) does. The
core's needs and pytest (``REQUIRED``) block the whole check when neither has them; a plugin's
only make that plugin's paths unavailable, which its tests and ``sextant plugins`` then say.

A carried wheel is installed when the machine lacks its project, or has a version one of these
requirements refuses; the machine's own packages (its torch above all) are never replaced. Only the
standard library and pip's vendored ``packaging`` / ``tomli`` are used: nothing else is installed
when this runs.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.version import InvalidVersion, Version
except ImportError:  # a bare interpreter: pip carries its own copy
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
    from pip._vendor.packaging.version import InvalidVersion, Version  # type: ignore[no-redef]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    from pip._vendor import tomli as tomllib

#: the distributions installed from the tree, and the extras of each that a GPU machine wants
EXTRAS: dict[str, tuple[str, ...]] = {
    "core": ("report", "test"),
    "plugins/torch": ("onnx",),
    "plugins/onnx": ("gpu",),
    "plugins/tensorrt": ("runtime",),
    "plugins/search": (),
    "plugins/tensorflow": ("gpu", "onnx"),
    "plugins/openvino": (),
    "plugins/triton": (),
}

#: without these nothing can run (the core's own dependencies, and pytest for the tests)
REQUIRED = frozenset({"pluggy", "numpy", "rich", "typer", "tomli", "pytest"})

#: the build backend every distribution names (``[build-system]``); built without isolation
BUILD_BACKEND = Requirement("setuptools>=77")


def normalize(name: str) -> str:
    """A project name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Need:
    """One requirement of one distribution (``sextant-onnx[gpu]`` needs ``onnxruntime-gpu>=1.18``)
    and how it is met here: ``have`` is the machine's version, ``carried`` the wheel that meets it."""

    requirement: str
    name: str
    owner: str
    have: str | None
    carried: Path | None

    @property
    def met(self) -> bool:
        return self.have is not None or self.carried is not None

    @property
    def required(self) -> bool:
        return self.name in REQUIRED


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def accepts(requirement: Requirement, version: str | None) -> bool:
    if version is None:
        return False
    try:
        return requirement.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def wheels_in(folder: Path) -> dict[str, list[tuple[str, Path]]]:
    """The carried wheels by project name: ``[(version, path), ...]``."""
    found: dict[str, list[tuple[str, Path]]] = {}
    for path in sorted(folder.glob("*.whl")) if folder.is_dir() else []:
        parts = path.name.split("-")
        if len(parts) >= 5:
            found.setdefault(normalize(parts[0]), []).append((parts[1], path))
    return found


def _requirements(root: Path, folder: str) -> tuple[str, list[Requirement]]:
    project = tomllib.loads((root / folder / "pyproject.toml").read_text())["project"]
    extras = EXTRAS[folder]
    texts = list(project.get("dependencies", []))
    for extra in extras:
        texts += project.get("optional-dependencies", {}).get(extra, [])
    owner = project["name"] + (f"[{','.join(extras)}]" if extras else "")
    requirements = [Requirement(t) for t in texts]
    return owner, [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]


def needs(root: Path, wheels: Path) -> list[Need]:
    """Every requirement of the distributions in ``EXTRAS`` (the tree's own sextant ones left out),
    each once, with how it is met."""
    carried = wheels_in(wheels)
    out: dict[str, Need] = {}
    for folder in EXTRAS:
        owner, requirements = _requirements(root, folder)
        for requirement in requirements:
            name = normalize(requirement.name)
            if name.startswith("sextant") or name in out:
                continue
            have = installed_version(name)
            wheel = next((p for v, p in carried.get(name, []) if accepts(requirement, v)), None)
            out[name] = Need(str(requirement), name, owner, have if accepts(requirement, have) else None, wheel)
    return list(out.values())


def wheels_to_install(wanted: list[Need], wheels: Path) -> list[Path]:
    """The carried wheels to install: every one whose project the machine lacks (a dependency of a
    carried wheel included), or whose machine version a requirement here refuses."""
    refused = {n.name for n in wanted if n.have is None}
    chosen = []
    for name, versions in wheels_in(wheels).items():
        if name in refused or installed_version(name) is None:
            need = next((n for n in wanted if n.name == name), None)
            path = need.carried if need is not None and need.carried is not None else versions[-1][1]
            chosen.append(path)
    if not accepts(BUILD_BACKEND, installed_version("setuptools")):
        chosen += [p for v, p in wheels_in(wheels).get("setuptools", []) if accepts(BUILD_BACKEND, v)][-1:]
    return sorted(set(chosen))


def backend_missing(wheels: Path) -> str | None:
    """Why the distributions cannot be built here (no setuptools new enough, none carried), or ``None``."""
    have = installed_version("setuptools")
    if accepts(BUILD_BACKEND, have):
        return None
    if any(accepts(BUILD_BACKEND, v) for v, _ in wheels_in(wheels).get("setuptools", [])):
        return None
    found = f"setuptools {have} is too old" if have else "setuptools is not installed"
    return f"{found}: the distributions are built with {BUILD_BACKEND}; carry its wheel in {wheels}"


def download_command(missing: list[Need], wheels: Path) -> str:
    """The command that fetches the missing wheels on a machine with a network, for this one's
    Python (pip also fetches what they depend on; only what this machine lacks is installed)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    names = " ".join(f"'{n.requirement}'" for n in missing)
    return (
        f"pip download --only-binary=:all: --python-version {version} --platform manylinux_2_28_x86_64 "
        f"-d {wheels} {names}"
    )
