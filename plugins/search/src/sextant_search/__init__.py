"""sextant plugin: search strategies (brute, quick, optuna) and the ``sextant search`` command."""

from __future__ import annotations

from typing import Annotated

import typer  # the CLI's own dependency, already loaded when commands are registered
from sextant.api import SearchStrategySpec, availability, hookimpl

STRATEGIES = [
    SearchStrategySpec(
        "brute",
        create="sextant_search.strategies:Brute",
        description="the whole grid; early exit along exponential dimensions that stop paying",
    ),
    SearchStrategySpec(
        "quick",
        create="sextant_search.strategies:Quick",
        description="hill-climbing from the defaults over the grid's lattice",
    ),
    SearchStrategySpec(
        "optuna",
        create="sextant_search.strategies:OptunaSearch",
        requires=("optuna",),
        description="Optuna TPE; any Optuna storage URL, shared by several workers",
    ),
]


@hookimpl
def sextant_register_search_strategies() -> list[SearchStrategySpec]:
    return STRATEGIES


@hookimpl
def sextant_register_commands(app: typer.Typer) -> None:
    @app.command(rich_help_panel="Plugins")
    def search(
        ctx: typer.Context,
        list_: Annotated[bool, typer.Option("--list", help="List the search strategies installed.")] = True,
    ) -> None:
        """Search strategies: brute (grid), quick (hill-climbing), optuna (TPE). Use them with
        `sextant optimize --search NAME [--search-budget-s S]`."""
        for contribution in ctx.obj.catalog.of("search_strategy"):
            reason = availability(contribution.spec)
            state = "" if reason is None else f" (unavailable: {reason})"
            typer.echo(f"{contribution.name:8s} {contribution.spec.description}{state}")
