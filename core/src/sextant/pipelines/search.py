"""Settling the choices: which candidate serves each part so that the pipeline's results hold.

Every part's best candidate is swapped in and the pipeline checked. When its results no longer
match, the parts are tried one at a time (the others original) to find those that break it; a part
that breaks it falls back to the next candidate of its package's ranking, down to the original
module. Every candidate tried is recorded as an :class:`~sextant.pipelines.records.Attempt`.

A package ranks its candidates standalone (throughput over batch sizes); inside the pipeline a part
may be called once at batch 1, where a runtime's per-call cost dominates. So the choices are timed
in the pipeline too, and a part whose choices are clearly slower there than its original (the
fastest run with them slower than the original's median) serves its original:
:func:`slower_in_pipeline`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sextant.pipelines.records import Attempt, EndToEnd, Serving, StructureRecord, Timing
from sextant.errors import SampleError

if TYPE_CHECKING:
    from sextant.pipelines.parts import Part
    from sextant.package import Package
    from sextant.runtime import Runner

Check = Callable[[], "str | None"]


@dataclass
class StructureCursor:
    """One part's structure with its package's ranking: which candidate it is at, what was tried.

    (Mutable on purpose: it is the search's cursor, private to one settle.)"""

    part: Part
    key: str
    package: Package
    ranking: tuple[str, ...]
    position: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    runners: dict[str, Runner] = field(default_factory=dict)

    @property
    def current(self) -> str | None:
        return self.ranking[self.position] if self.position < len(self.ranking) else None

    def runner_name(self, cid: str) -> str:
        return self.package.candidate(cid).record.runner

    def install(self, cid: str | None, catalog: Any = None) -> None:
        """Serve the structure with candidate ``cid`` (loaded once; this run wrote its package, so
        a pickled candidate is trusted), or with the original module for ``None``."""
        if cid is None:
            self.part.install(self.key, None)
            return
        if cid not in self.runners:
            self.runners[cid] = self.package.candidate(cid).load(catalog, trust_source=True, shared=True)
        self.part.install(self.key, self.runners[cid], f"{cid} ({self.runner_name(cid)})")

    def close(self) -> None:
        for runner in self.runners.values():
            close = getattr(runner, "close", None)
            if close is not None:
                close()
        self.runners.clear()


def settle(
    units: Sequence[StructureCursor], records: Sequence[StructureRecord], check: Check, catalog: Any = None
) -> tuple[list[StructureRecord], EndToEnd]:
    """Choose a candidate per unit so that ``check()`` (the pipeline against its reference) passes;
    the records updated with what serves, and the end-to-end verdict."""
    for unit in units:
        unit.install(None)
    problem = check()
    if problem is not None:
        raise SampleError(
            f"the pipeline's results changed between two runs with the original modules ({problem})",
            hint="The function must give the same results for the same item: seed its random generators "
            "(e.g. generator=torch.Generator().manual_seed(0) for a diffusers pipeline).",
        )
    detail = "the results match the original pipeline's"
    if units:
        for unit in units:
            _install(unit, catalog)
        problem = check()
        if problem is None:
            for unit in units:
                unit.attempts.append(Attempt(unit.current or "", unit.runner_name(unit.current or ""), True))
        else:
            detail = f"with every best swapped in: {problem}; each module was then tried alone"
            for unit in units:
                unit.install(None)
            for unit in units:
                _alone(unit, check, catalog)
                unit.install(None)
            for unit in units:
                _install(unit, catalog)
            problem = check()
            if problem is not None:  # each passes alone, together they do not: keep the originals
                detail += f"; together they still failed ({problem}), so every module serves its original"
                for unit in units:
                    unit.position = len(unit.ranking)
                    unit.install(None)
            else:
                detail += "; the choices below pass together"
    by_key = {(u.part.name, u.key): u for u in units}
    return [_settled(record, by_key.get((record.module, record.key))) for record in records], EndToEnd(True, detail)


def _install(unit: StructureCursor, catalog: Any) -> None:
    """Install the unit's current candidate; one that fails to load counts as a failed attempt."""
    while unit.current is not None:
        try:
            unit.install(unit.current, catalog)
            return
        except Exception as exc:  # a candidate that does not load here: the next one
            unit.attempts.append(Attempt(unit.current, unit.runner_name(unit.current), False, f"load failed: {exc}"))
            unit.position += 1
    unit.install(None)


def _alone(unit: StructureCursor, check: Check, catalog: Any) -> None:
    """Walk the unit's ranking, the other parts original, until the pipeline's results hold."""
    while unit.current is not None:
        _install(unit, catalog)
        if unit.current is None:
            return
        problem = check()
        unit.attempts.append(Attempt(unit.current, unit.runner_name(unit.current), problem is None, problem or ""))
        if problem is None:
            return
        unit.position += 1


def _settled(record: StructureRecord, unit: StructureCursor | None) -> StructureRecord:
    if unit is None:
        return record
    attempts = tuple(unit.attempts)
    chosen = unit.current
    if chosen is None:
        return replace(
            record,
            serving=Serving.ORIGINAL,
            attempts=attempts,
            reason=record.reason or "every candidate changed the pipeline's results",
        )
    return replace(record, serving=Serving.OPTIMIZED, chosen=chosen, runner=unit.runner_name(chosen), attempts=attempts)


def slower_in_pipeline(timings: Mapping[str, tuple[Timing, Timing]]) -> dict[str, str]:
    """Per part name whose (original, optimized) times per pipeline run say the choices are clearly
    slower (the optimized minimum above the original median): why it keeps its original."""
    slower = {}
    for name, (original, optimized) in timings.items():
        if optimized.samples_ms and original.median_ms is not None and min(optimized.samples_ms) > original.median_ms:
            slower[name] = (
                f"slower inside the pipeline than the original: {optimized.spread()} against "
                f"{original.spread()} per pipeline run"
            )
    return slower


def keep_original(record: StructureRecord, reason: str) -> StructureRecord:
    """``record`` served by its original module, for ``reason`` (its attempts kept)."""
    if record.serving is not Serving.OPTIMIZED:
        return record
    return replace(record, serving=Serving.ORIGINAL, chosen=None, runner=None, reason=reason)
