"""Every plugin under plugins/ imports the core's declared plugin API (``sextant.api``) only.

The files are parsed, not imported, so modules that need a GPU or TensorRT are checked here too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import sextant.api
from _support import ROOT

PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())


def _sextant_imports(path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """``(line, module, names)`` for every import of ``sextant`` or a ``sextant.*`` module, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, ()) for a in node.names if a.name.split(".")[0] == "sextant"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "sextant":
            found.append((node.lineno, node.module, tuple(a.name for a in node.names)))
    return found


def test_every_plugin_is_checked():
    assert {p.name for p in PLUGINS} >= {"torch", "onnx", "tensorflow", "tensorrt", "search", "_template"}
    for plugin in PLUGINS:
        assert list((plugin / "src").rglob("*.py")), f"{plugin.name}: no sources under src/"


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_plugin_sources_import_only_the_plugin_api(plugin):
    wrong, unknown = [], []
    for path in sorted((plugin / "src").rglob("*.py")):
        where = path.relative_to(ROOT)
        for line, module, names in _sextant_imports(path):
            if module == "sextant.api" or (module == "sextant" and names == ("api",)):
                unknown += [
                    f"{where}:{line} {n}" for n in names if module == "sextant.api" and n not in sextant.api.__all__
                ]
            else:
                wrong.append(f"{where}:{line} {module}" + (f" ({', '.join(names)})" if names else ""))
    assert not wrong, "plugins may import sextant.api only, not:\n" + "\n".join(wrong)
    assert not unknown, "names that sextant.api does not export:\n" + "\n".join(unknown)


def test_the_check_sees_a_forbidden_import(tmp_path):
    source = tmp_path / "bad.py"
    source.write_text(
        "from sextant.api import hookimpl\n\ndef f():\n    from sextant.specs import Format\n    import sextant.cache\n"
    )
    assert [(m, n) for _, m, n in _sextant_imports(source)] == [
        ("sextant.api", ("hookimpl",)),
        ("sextant.specs", ("Format",)),
        ("sextant.cache", ()),
    ]
