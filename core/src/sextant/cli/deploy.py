"""``sextant deploy TARGET PACKAGE``: one subcommand per installed deployer, built from its spec.

The core owns the command (as datasette's core owns ``publish``): the options every target shares
(``--candidate``, ``--name``, ``--trust-source``, ``--force``, ``--json``) are declared here, the
target's own ones come from its ``DeployerSpec`` (``target`` and ``options``: data, so listing
the targets imports no plugin); the command builds a :class:`~sextant.runtime.DeployRequest`,
calls :func:`sextant.deploying.deploy`, and renders the :class:`~sextant.runtime.Deployment`. A
plugin may still add a subcommand of its own to the group (``sextant_register_commands``).
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from sextant.cli._common import Debug, Json, print_json

if TYPE_CHECKING:
    from sextant.runtime import Deployment
    from sextant.specs import DeployerSpec, DeployOption

PANEL = "Serving"
_TYPES: dict[str, Any] = {"text": str, "int": int, "bool": bool, "path": Path, "ints": str}


class DeployGroup(TyperGroup):
    """The ``deploy`` group: its registered subcommands plus one per deployer in the run's catalog."""

    def _specs(self, ctx: Any) -> dict[str, DeployerSpec]:
        state = ctx.find_root().obj
        catalog = getattr(state, "catalog", None)
        if catalog is None:
            from sextant.plugins import load_catalog

            catalog = load_catalog()
        return {c.name: c.spec for c in catalog.of("deployer")}

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._specs(ctx)})

    def get_command(self, ctx: Any, name: str) -> Any:
        command = super().get_command(ctx, name)
        if command is None and name in (specs := self._specs(ctx)):
            single = typer.Typer(add_completion=False)
            single.command(name, help=_help(specs[name]))(target_command(specs[name]))
            command = typer.main.get_command(single)
        return command


group = typer.Typer(
    name="deploy",
    cls=DeployGroup,
    help="Write a package's candidate to a serving target (one subcommand per installed deployer).",
    no_args_is_help=True,
)


def _help(spec: DeployerSpec) -> str:
    text = f"Write a package's candidate to {spec.description or spec.name}."
    return text[0].upper() + text[1:]


def _ints(text: str | None, option: DeployOption) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise typer.BadParameter(f"{text!r}: give {option.flag} as integers separated by commas, e.g. 4,8") from None


def _parameter(option: DeployOption) -> inspect.Parameter:
    """``option`` as a Typer option of the generated command's signature."""
    flags = [f"{option.flag}/--no-{option.flag[2:]}"] if option.kind == "bool" else [option.flag]
    flags += [option.short] if option.short else []
    kind = _TYPES[option.kind]
    annotation = Annotated[kind if option.required else kind | None, typer.Option(*flags, help=option.help)]
    default = inspect.Parameter.empty if option.required else option.default
    return inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def target_command(spec: DeployerSpec) -> Any:
    """The ``sextant deploy NAME`` command of ``spec``: a function whose signature Typer reads."""
    package_help = "A package folder written by sextant optimize."
    candidate_help = (
        "A candidate id (default: the package's selected best; when the package names a pick per serving regime, "
        "the one faster at the serving max batch size, --max-batch-size or derived from the profile)."
    )
    name_help = "The served model's name (default: the package's)."
    shared_before = {
        "ctx": (typer.Context, inspect.Parameter.empty),
        "package": (Annotated[Path, typer.Argument(help=package_help)], inspect.Parameter.empty),
    }
    shared = {
        "candidate": (Annotated[str | None, typer.Option("--candidate", help=candidate_help)], None),
        "name": (Annotated[str | None, typer.Option("--name", help=name_help)], None),
    }
    shared_after = {
        "force": (Annotated[bool, typer.Option("--force", help="Replace what differs at the target.")], False),
        "trust_source": (
            Annotated[
                bool,
                typer.Option(
                    "--trust-source",
                    help="Allow loading a candidate that unpickles the package's files (a source nn.Module, Keras "
                    "custom classes), which runs any code they hold: only for packages you made or trust.",
                ),
            ],
            False,
        ),
        "as_json": (Json, False),
        "debug": (Debug, False),
    }

    def parameter(name: str, annotation: Any, default: Any) -> inspect.Parameter:
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD if name in shared_before else inspect.Parameter.KEYWORD_ONLY
        return inspect.Parameter(name, kind, default=default, annotation=annotation)

    own = [_parameter(spec.target), *(_parameter(o) for o in spec.options)]
    parameters = [
        *(parameter(n, a, d) for n, (a, d) in shared_before.items()),
        own[0],
        *(parameter(n, a, d) for n, (a, d) in shared.items()),
        *own[1:],
        *(parameter(n, a, d) for n, (a, d) in shared_after.items()),
    ]

    def command(ctx: typer.Context, package: Path, **values: Any) -> None:
        from sextant.deploying import deploy
        from sextant.runtime import DeployRequest

        options = {}
        for option in spec.options:
            value = values[option.name]
            value = _ints(value, option) if option.kind == "ints" else value
            if value is not None:
                options[option.name] = value
        request = DeployRequest(
            package=package,
            target=str(values[spec.target.name]),
            candidate=values["candidate"],
            name=values["name"],
            options=options,
            force=values["force"],
            trust_source=values["trust_source"],
        )
        render(spec, deploy(spec.name, request, getattr(ctx.find_root().obj, "catalog", None)), values["as_json"])

    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__name__ = spec.name
    return command


def render(spec: DeployerSpec, deployment: Deployment, as_json: bool) -> None:
    """One JSON document on stdout, or what was deployed, its notes, the files and the next steps on stderr."""
    if as_json:
        return print_json(
            {
                "deployer": spec.name,
                "target": deployment.target,
                "name": deployment.name,
                "candidate": deployment.candidate,
                "files": [str(f) for f in deployment.files],
                "notes": list(deployment.notes),
                **deployment.details,
            }
        )
    err = sys.stderr
    print(f"deployed {deployment.name} ({deployment.candidate}) to {deployment.target}", file=err)
    for note in deployment.notes:
        print(f"  {note}", file=err)
    for path in deployment.files:
        print(f"  wrote {path}", file=err)
    for line in deployment.next_steps:
        print(line, file=err)
