"""Plugin discovery across distributions, the README's plugin guide, and light start-up."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import json
import re
import shlex
import shutil
import subprocess
import sys

import sextant.hookspecs as hookspecs
import sextant.specs as specs
from _support import ROOT, sextant
from sextant.devices import cuda_unavailable_reason
from sextant.testing.contracts import check_light_start_up


def _hook_table(readme: str) -> dict[str, list[str]]:
    """The rows of the hook table in the README's "Writing a plugin" section, by hook name: the call
    as shown, what it returns, what it is for (escaped pipes unescaped)."""
    section = readme[readme.index("## Writing a plugin") :]
    section = section[: section.find("\n## ", 1)]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `sextant_"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
            rows[cells[0].strip("`").split("(")[0]] = cells
    return rows


def _documented_callables(spec: type) -> set[str]:
    """What a spec's docstring says its callables take and return (``run`` names ``(...) -> ...``),
    written as the README writes them: module paths left out (``sextant.runtime.StepRequest``:
    ``StepRequest``)."""
    text = " ".join(inspect.getdoc(spec).split())

    def short(part: str) -> str:
        return re.sub(r"\b(?:\w+\.)+(\w+)", r"\1", part)

    return {f"{a}({short(p)}) -> {short(r)}" for a, p, r in re.findall(r"``(\w+)`` names ``\((.*?)\) -> (.+?)``", text)}


def test_every_hook_is_documented_in_the_readme():
    """Every hook has a row in the README's hook table showing its real parameters and return type,
    and the spec callables that row shows take what the spec's docstring says."""
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    rows = _hook_table(readme)
    hooks = {name: f for name, f in vars(hookspecs).items() if name.startswith("sextant_") and inspect.isfunction(f)}
    assert len(hooks) >= 7
    assert not set(hooks) - set(rows), f"hooks missing from README.md: {sorted(set(hooks) - set(rows))}"
    assert not set(rows) - set(hooks), f"README.md documents hooks that do not exist: {sorted(set(rows) - set(hooks))}"
    for name, hook in hooks.items():
        call, returns, what = rows[name]
        signature = inspect.signature(hook)
        assert call == f"`{name}({', '.join(signature.parameters)})`", call
        annotation = signature.return_annotation  # a string: hookspecs uses postponed annotations
        assert returns == ("—" if annotation == "None" else f"`{annotation}`"), (name, returns)
        listed = re.fullmatch(r"list\[(\w+)\]", annotation)
        if listed:
            spec = getattr(specs, listed.group(1))
            fields = {f.name for f in dataclasses.fields(spec)}
            shown = {c for c in re.findall(r"`(\w+\(.*?\) -> [^`]+)`", what) if c.split("(")[0] in fields}
            assert shown == _documented_callables(spec), (name, what)


def test_installed_plugins_are_listed_with_their_contributions():
    document = json.loads(sextant("plugins", "--json").stdout)
    by_name = {p["name"]: p for p in document["plugins"]}
    assert {"builtin", "torch", "onnx"} <= set(by_name)
    torch_runners = {c["name"]: c for c in by_name["torch"]["contributions"] if c["kind"] == "runner"}
    assert torch_runners["torch-eager"]["devices"]["cpu"] is None
    # on CUDA, torch-eager has no check of its own: available exactly where a GPU is visible
    no_gpu = cuda_unavailable_reason()
    if no_gpu is None:
        assert torch_runners["torch-eager"]["devices"]["cuda"] is None
    else:
        assert no_gpu.startswith("no CUDA device")
        assert torch_runners["torch-eager"]["devices"]["cuda"] == no_gpu


def test_cli_start_up_imports_no_framework():
    check_light_start_up(["torch", "onnx", "onnxruntime", "tensorflow", "keras", "tf2onnx", "onnxslim"])


def test_a_third_party_plugin_installed_from_a_folder_is_listed_and_used(tmp_path):
    source = tmp_path / "my-plugin"
    shutil.copytree(ROOT / "plugins" / "_template", source)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(source)],
        check=True,
        timeout=300,
    )
    env = {"PYTHONPATH": str(target)}
    document = json.loads(sextant("plugins", "--json", env=env).stdout)
    cosine = next(p for p in document["plugins"] if p["name"] == "cosine")
    assert cosine["distribution"] == "sextant-cosine"
    assert [c["name"] for c in cosine["contributions"]] == ["cosine"]
    # and the pipeline can use what it contributes
    model = tmp_path / "tiny.npmlp"
    from sextant.testing.fake import NumpyMLP

    NumpyMLP().save(model)
    env["SEXTANT_PLUGIN_MODULES"] = "sextant.testing.fake"
    result = sextant(
        "optimize",
        str(model),
        "--comparator",
        "cosine",
        "-w",
        str(tmp_path / "ws"),
        "--json",
        "--max-batch-size",
        "2",
        "--batch-budget-s",
        "0.1",
        "--window-ms",
        "2",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["options"]["comparator"] == "cosine"


def _results_tables(readme: str) -> list[tuple[list[str], list[str], list[str], list[str]]]:
    """``(command, header cells, candidate ids, other lines)`` of each results table in the README's
    console blocks; an id that wraps onto a second row (its other cells empty) is joined back."""
    tables = []
    for block in re.findall(r"```console\n(.*?)```", readme, re.S):
        lines = block.splitlines()
        header = [line for line in lines if line.startswith("┃")]
        if not header:
            continue
        ids: list[str] = []
        for line in lines:
            if line.startswith("│"):
                cells = [c.strip() for c in line.strip("│").split("│")]
                if ids and not any(cells[1:]):
                    ids[-1] += cells[0]
                else:
                    ids.append(cells[0])
        other = [line for line in lines[1:] if not line.startswith(("┃", "│", "┏", "┡", "└"))]
        tables.append(
            (shlex.split(lines[0].removeprefix("$ ")), [c.strip() for c in header[0].strip("┃").split("┃")], ids, other)
        )
    return tables


def test_readme_example_output_is_current(monkeypatch):
    """The README's example runs show what the code renders today: the results table's columns, the
    candidates the planner makes for that command with the installed plugins (on the CPU), and a best
    line naming the starred candidate."""
    import sextant
    from sextant.cli.tables import results_table

    tables = _results_tables((ROOT / "README.md").read_text())
    assert len(tables) >= 2  # the MLP and the Keras examples
    empty = {"model": {"name": "m"}, "selection": {}, "steps": {}, "candidates": {}}
    columns = [str(c.header) for c in results_table(empty).columns]
    monkeypatch.chdir(ROOT)  # the commands are run from the repository's root
    generation = [str(c.header) for c in results_table({**empty, "task": "text-generation"}).columns]
    for command, header, ids, other in tables:
        assert command[:2] == ["sextant", "optimize"]
        if "--samples" not in command:  # a text-generation example: its prompts are generated
            assert header == generation, command
            runners = tuple(command[command.index("--runners") + 1].split(",")) if "--runners" in command else None
            plan = sextant.optimize(command[2], plan_only=True, device="cpu", runners=runners)
            # the second table marks the screened ones (a wrapped row is joined back without its space)
            shown = {re.sub(r"\s*\(screened\)$", "", i.removeprefix("★ ")) for i in ids}
            assert shown == {c.id for c in plan.candidates}, command
            continue
        assert header == columns, command
        model, samples = command[2], command[command.index("--samples") + 1]
        if model.startswith("examples/keras") and importlib.util.find_spec("sextant_tensorflow") is None:
            continue
        (starred,) = [i for i in ids if i.startswith("★ ")]
        steps = {i.removesuffix(" (step)") for i in ids if i.endswith(" (step)")}  # a step's own row: a duplicate
        ids = [i for i in ids if not i.endswith(" (step)")]
        shown = {i.removeprefix("★ ") for i in ids}
        assert len(shown) == len(ids), "a candidate listed twice"
        plan = sextant.optimize(model, samples, plan_only=True, device="cpu")
        planned = {c.id for c in plan.candidates}
        assert steps <= {s.id for s in plan.steps}, f"{model}: a step row the planner does not make: {steps}"
        # a candidate whose runner cannot run on this machine (a C++ compiler for torch.compile, say) is
        # skipped here, with its id; any other difference is the README drifting from the planner
        unavailable_here = {what for what, _ in plan.skipped}
        assert planned <= shown, f"{model}: planned, not in the README: {sorted(planned - shown)}"
        assert shown - planned <= unavailable_here, (
            f"{model}: never planned: {sorted(shown - planned - unavailable_here)}"
        )
        (best,) = [line for line in other if line.startswith("best: ")]
        assert re.match(rf"best: {re.escape(starred.removeprefix('★ '))} — [\d,]+/s at batch \d+, p50 [\d.]+ ms", best)
