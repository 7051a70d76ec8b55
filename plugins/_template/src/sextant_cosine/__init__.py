"""The hooks of the sextant-cosine plugin. Keep this module light: import heavy libraries inside
the callables that the specs name, never here."""

from __future__ import annotations

from sextant.api import ComparatorSpec, hookimpl


@hookimpl
def sextant_register_comparators() -> list[ComparatorSpec]:
    return [
        ComparatorSpec(
            name="cosine",
            run="sextant_cosine.compare:compare",
            description="passes when 1 - cosine similarity <= rtol, row by row",
        )
    ]
