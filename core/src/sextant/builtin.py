"""What the core itself contributes through the same hooks as every plugin."""

from __future__ import annotations

from sextant.hookspecs import hookimpl
from sextant.specs import ComparatorSpec


@hookimpl
def sextant_register_comparators() -> list[ComparatorSpec]:
    return [
        ComparatorSpec(
            name="allclose",
            run="sextant.compare:compare",
            description="per-output atol/rtol (fails where both are exceeded), NaN/Inf aware",
        )
    ]
