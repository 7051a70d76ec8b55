"""sextant plugin: search strategies (brute, quick, optuna) and the ``sextant search`` command."""

from __future__ import annotations

from typing import Annotated

import typer  # the CLI's own dependency, already loaded when commands are registered
from sextant.api import Param, SearchStrategySpec, availability, hookimpl

STRATEGIES = [
    SearchStrategySpec(
        "brute",
        create="sextant_search.strategies:Brute",
        description="the whole grid; early exit along exponential dimensions that stop paying",
        options=(
            Param("min_gain", "categorical", (), 0.05, "a doubling gaining less than this share does not pay"),
            Param("patience", "linear", (1, 64), 2, "doublings in a row that do not pay before a dimension stops"),
        ),
    ),
    SearchStrategySpec(
        "quick",
        create="sextant_search.strategies:Quick",
        description="hill-climbing from the defaults over the grid's lattice",
        options=(Param("radius", "linear", (1, 8), 1, "grid steps to the neighbours measured around a point"),),
    ),
    SearchStrategySpec(
        "optuna",
        create="sextant_search.strategies:OptunaSearch",
        requires=("optuna",),
        description="Optuna TPE; any Optuna storage URL, shared by several workers",
        options=(
            Param("trials", "linear", (1, 100_000), None, "trials in all (default: share of the grid)"),
            Param("share", "categorical", (), 0.3, "the share of the grid tried, when trials is not set"),
            Param("min_trials", "linear", (1, 100_000), 2, "trials at least, when trials is not set"),
            Param("max_trials", "linear", (1, 100_000), None, "trials at most, when trials is not set"),
            Param("patience", "linear", (1, 100_000), 20, "trials in a row without improvement before it stops"),
            Param("storage", "categorical", (), None, "the study's database URL (default: in the workspace)"),
            Param("study_name", "categorical", (), None, "the study's name (default: what is searched)"),
        ),
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
