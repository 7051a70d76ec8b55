"""Turning the MODEL argument into a path or a model object.

``MODEL`` is a path to a model file or folder, or a reference to a factory that returns a model:
``path/to/file.py:factory`` or ``package.module:factory``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sextant.errors import ModelLoadError, SampleError

#: modules that ``path/to/file.py:factory`` imports are named with this prefix
USER_MODULE_PREFIX = "sextant_user_"


def is_user_module(name: str) -> bool:
    """Whether a module is the user's script (``__main__``) or a file sextant imported for a
    factory reference: classes defined there are not importable elsewhere and travel by value."""
    return name == "__main__" or name.startswith(USER_MODULE_PREFIX)


def resolve_model(text: str, what: str = "model") -> tuple[Any, str]:
    """Return ``(path or object, name)`` for the MODEL argument (or a ``--samples`` reference)."""
    path = Path(text)
    if path.exists():
        return path, default_name(text)
    target, sep, attr = text.rpartition(":")
    if not sep or not target or not attr.isidentifier():
        raise ModelLoadError(
            f"{text}: no such file or folder",
            hint=f"Give a {what} path, or a factory as path/to/file.py:factory or package.module:factory.",
        )
    module = _import(target)
    if not hasattr(module, attr):
        defined = [
            n for n, v in vars(module).items() if callable(v) and getattr(v, "__module__", None) == module.__name__
        ]
        raise ModelLoadError(
            f"{target} has no attribute {attr!r}",
            hint=f"Check the name after the ':'; {target} defines: {', '.join(defined) or 'no functions'}.",
        )
    factory = getattr(module, attr)
    role = "factory" if what == "model" else f"{what} function"
    error = ModelLoadError if what == "model" else SampleError
    try:
        model = factory() if callable(factory) else factory
    except Exception as exc:
        raise error(
            f"the {role} {text} raised {type(exc).__name__}: {exc}",
            hint=f"Fix the {role} so that calling it with no arguments returns the {what}.",
        ) from exc
    if model is None:
        raise error(
            f"the {role} {text} returned None" if callable(factory) else f"{text} is None",
            hint=f"It must return the {what} (is a `return` missing?).",
        )
    return model, default_name(text)


def default_name(text: str) -> str:
    """The name a MODEL argument gives its run (its default workspace's): a path's stem;
    examples/mlp.py:build is "mlp"; package.models:resnet50 is "resnet50"."""
    path = Path(text)
    if path.exists():
        return path.stem or path.name
    target, _, attr = text.rpartition(":")
    return Path(target).stem if target.endswith(".py") else attr


def _import(target: str) -> Any:
    if target.endswith(".py"):
        file = Path(target)
        if not file.exists():
            raise ModelLoadError(f"{file}: no such file", hint="Check the path before the ':'.")
        name = f"{USER_MODULE_PREFIX}{file.stem}"
        spec = importlib.util.spec_from_file_location(name, file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        sys.path.insert(0, str(file.parent.resolve()))
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ModelLoadError(f"importing {file} raised {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(target)
    except Exception as exc:
        raise ModelLoadError(
            f"cannot import {target}: {type(exc).__name__}: {exc}",
            hint="Check the module path and that its directory is importable (PYTHONPATH).",
        ) from exc


def top_packages(modules: Iterable[str]) -> set[str]:
    """The top-level packages of dotted module names (``torch._dynamo`` → ``torch``)."""
    return {m.split(".", 1)[0] for m in modules}


def packages_imported(model: Any) -> set[str]:
    """The top-level packages that loading the MODEL argument will import, found without importing
    anything: those a ``file.py:factory`` file's import statements name, the package of a
    ``package.module:factory`` reference, those of a model object's classes. Empty for a path to a
    saved model (its loader decides). A guess: what a run can import ahead of time."""
    if not isinstance(model, str):
        modules = (getattr(c, "__module__", None) for c in type(model).__mro__)
        return top_packages(m for m in modules if isinstance(m, str) and m != "builtins")
    target = model.rpartition(":")[0]
    if Path(model).exists() or not target:
        return set()
    if not target.endswith(".py"):
        return {target.split(".", 1)[0]}
    try:
        tree = ast.parse(Path(target).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return set()  # loading it says what is wrong
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return top_packages(names)
