"""``optimize_pipeline``: record the parts of a running pipeline, optimize each, check the whole.

1. The user's function runs over the dataloader once with every part recording its calls: those
   results are the reference.
2. Each part, per call structure, goes through the ordinary :func:`sextant.optimize` as a model
   with a flat signature, into its own package folder under ``<workspace>/parts/`` (cached there
   like any workspace: a second run reuses every step and measurement).
3. The function runs again with each part's best candidate swapped in; its results must match the
   reference. When they do not, each part is tried alone to find the ones that break it, and those
   fall back to their next candidate (down to the original module); :mod:`.search` does this.
4. The pipeline is timed with the originals and with the choices; ``pipeline.json`` records it all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sextant import __version__
from sextant.pipelines.outputs import PipelineVerify, flatten, judge
from sextant.pipelines.parts import Part, Recording, live_parts, unbatched_inputs
from sextant.pipelines.records import (
    CompositeRecord,
    ModuleTiming,
    Serving,
    StructureRecord,
    Timing,
    write_record,
)
from sextant.pipelines.search import StructureCursor, keep_original, settle, slower_in_pipeline
from sextant.errors import SampleError, SextantError, UsageError
from sextant.isolation import shared_servers
from sextant.options import OptimizeOptions
from sextant.optimizer.events import EventHandler, PartEnded, PartStarted, PipelineDone
from sextant.optimizer.lock import WorkspaceLock
from sextant.signature import Signature, infer_tensors

PARTS = "parts"


def optimize_pipeline(
    function: Callable[[Any], Any],
    dataloader: Iterable[Any],
    *,
    workspace: Path | str = Path("sextant-workspace") / "pipeline",
    modules: Sequence[Part] | None = None,
    samples_per_structure: int = 4,
    max_structures: int = 8,
    tolerance: tuple[float, float] = (1e-3, 1e-3),
    verify_func: PipelineVerify | None = None,
    repeats: int = 3,
    timed_choice: bool = True,
    options: OptimizeOptions | None = None,
    catalog: Any = None,
    on_event: EventHandler | None = None,
    **kwargs: Any,
) -> CompositeRecord:
    """Optimize every wrapped part (``sextant.Module``) of a pipeline and check the pipeline's results.

    :param function: called once per dataloader item (``function(item)``); it runs the pipeline,
        which calls the wrapped parts, and returns its results. It must be deterministic (seed its
        random generators): its results are compared between runs.
    :param dataloader: the items; read once into a list (every check runs them all again).
    :param workspace: the pipeline workspace: ``pipeline.json`` and one package per part and call
        structure under ``parts/``.
    :param modules: the parts to optimize; by default every ``sextant.Module`` alive in this process.
    :param samples_per_structure: calls recorded per part and structure (new shapes preferred).
    :param tolerance: ``(atol, rtol)`` for the pipeline's results against the original's.
    :param verify_func: ``(results, reference) -> bool`` per dataloader item, after the tolerance.
    :param repeats: timed runs of the whole pipeline, originals and choices each.
    :param timed_choice: put a part whose choices are clearly slower inside the pipeline than its
        original back on the original (see :func:`~sextant.pipelines.search.slower_in_pipeline`);
        ``False`` keeps every choice that passed, whatever it measured (deterministic choices).
    :param options, kwargs: :class:`~sextant.options.OptimizeOptions` for every part's optimize run
        (``workspace`` and ``name`` are set per part).
    :returns: the record written to ``pipeline.json``; the parts serve their original modules
        again afterwards (``sextant.load_optimized(workspace)`` swaps the choices in).
    """
    from sextant.plugins import load_catalog

    options = replace(options, **kwargs) if options else OptimizeOptions(**kwargs)
    catalog = catalog or load_catalog()
    emit = on_event or (lambda event: None)
    parts = _chosen_parts(modules)
    items = list(dataloader)
    if not items:
        raise SampleError("the dataloader yielded no items", hint="Give at least one input to run the pipeline on.")
    folder = Path(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    with WorkspaceLock(folder):  # one pipeline run per workspace, as for a package
        reference, recordings = _record(function, items, parts, samples_per_structure, max_structures)
        reference_flat = [
            {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v for k, v in flatten(r).items()}
            for r in reference
        ]
        units, records = [], []
        with shared_servers():  # the parts' runs fork their children from one warm server
            for part in parts:
                for recording in recordings[part.name]:
                    emit(PartStarted(part.name, recording.description))
                    unit, record = _optimize_part(part, recording, folder, options, catalog, on_event)
                    records.append(record)
                    if unit is not None:
                        units.append(unit)
                    emit(PartEnded(part.name, record))

        def check() -> str | None:
            return judge([function(item) for item in items], reference, reference_flat, *tolerance, verify_func)

        try:
            records, end_to_end = settle(units, records, check, catalog)
            timings, slower = _timings(function, items, parts, units, repeats, timed_choice)
            end_to_end = replace(end_to_end, **timings)
            records = [keep_original(r, slower[r.module]) if r.module in slower else r for r in records]
        finally:
            for part in parts:
                for recording in recordings[part.name]:
                    part.install(recording.key, None)
            for unit in units:
                unit.close()
        record = CompositeRecord(__version__, len(items), tuple(records), end_to_end)
        write_record(folder, record)
    emit(PipelineDone(record))
    return record


def _chosen_parts(modules: Sequence[Part] | None) -> list[Part]:
    parts = [getattr(m, "sextant", m) for m in modules] if modules is not None else live_parts()
    if not parts:
        raise UsageError(
            "no wrapped modules: wrap the parts of the pipeline to optimize first",
            hint='e.g. pipe.unet = sextant.Module(pipe.unet, name="unet"), then call optimize_pipeline.',
        )
    seen: dict[str, Part] = {}
    for part in parts:
        if not isinstance(part, Part):
            raise UsageError(f"{type(part).__name__} is not a wrapped module", hint="Wrap it with sextant.Module(...).")
        if part.name in seen:
            raise UsageError(
                f"two wrapped modules are named {part.name!r}",
                hint="Give every sextant.Module its own name=...; "
                "or pass modules=[...] to choose the ones of this pipeline.",
            )
        seen[part.name] = part
    return parts


def _record(
    function: Callable[[Any], Any], items: list[Any], parts: list[Part], limit: int, max_structures: int
) -> tuple[list[Any], dict[str, list[Recording]]]:
    """Run the pipeline once over every item with the parts recording; the results and the records."""
    for part in parts:
        part.start_recording(limit, max_structures)
    recordings: dict[str, list[Recording]] = {}
    try:
        reference = [function(item) for item in items]
    finally:
        for part in parts:
            recordings[part.name] = part.stop_recording()
    silent = [name for name, recorded in recordings.items() if not recorded]
    if silent:
        raise UsageError(
            f"the pipeline never called the wrapped module{'s' if len(silent) > 1 else ''} {', '.join(map(repr, silent))}",
            hint="Check that the wrapper replaced the module the pipeline really calls (pipe.unet = sextant.Module("
            "pipe.unet, ...)), and that forward= names the method it calls; or leave it out of modules=[...].",
        )
    return reference, recordings


def _optimize_part(
    part: Part,
    recording: Recording,
    workspace: Path,
    options: OptimizeOptions,
    catalog: Any,
    on_event: EventHandler | None,
) -> tuple[StructureCursor | None, StructureRecord]:
    """One part's structure through ``sextant.optimize``; the unit to settle, or why there is none."""
    from sextant.package import Package
    from sextant.optimizer.run import optimize

    name = f"{part.name}-{recording.key}"
    folder = workspace / PARTS / name
    base = StructureRecord(
        part.name,
        recording.key,
        recording.description,
        recording.calls,
        len(recording.batches),
        f"{PARTS}/{name}",
        Serving.ORIGINAL,
        layout=recording.layout,
    )
    batches = list(recording.batches)
    unbatched = unbatched_inputs(batches)
    signature = Signature(infer_tensors(batches, unbatched=unbatched), call_style="positional")
    samples = [tuple(batch[n] for n in signature.input_names) for batch in batches]
    try:
        model = part.model(recording.key, signature)
        optimize(
            model,
            samples,
            options=replace(options, workspace=folder, name=name, unbatched=unbatched),
            catalog=catalog,
            on_event=on_event,
        )
    except SextantError as exc:
        return None, replace(base, reason=f"{type(exc).__name__}: {exc.message}")
    package = Package(folder)
    selection = package.document.selection
    ranking = selection.ranking if selection else ()
    if not ranking:
        return None, replace(base, reason=(selection.reason if selection else None) or "no candidate passed")
    return StructureCursor(part, recording.key, package, ranking), replace(base, ranking=ranking)


def _timings(
    function: Callable[[Any], Any],
    items: list[Any],
    parts: list[Part],
    units: list[StructureCursor],
    repeats: int,
    timed_choice: bool,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The pipeline and each part timed over every item, with the originals and with the choices;
    a part whose choices are clearly slower inside the pipeline is put back on its original (and the
    choices timed again), with the reason per part name."""

    def measure() -> tuple[Timing, dict[str, Timing]]:
        totals: list[float] = []
        per_part: dict[str, list[float]] = {p.name: [] for p in parts}
        for _ in range(repeats):
            for part in parts:
                part.start_timing()
            started = time.perf_counter()
            for item in items:
                function(item)
            totals.append((time.perf_counter() - started) * 1e3)
            for part in parts:
                per_part[part.name].append(sum(part.stop_timing()) * 1e3)
        return Timing(tuple(totals)), {n: Timing(tuple(v)) for n, v in per_part.items()}

    for unit in units:
        unit.install(None)
    original, original_parts = measure()
    for unit in units:
        unit.install(unit.current)
    optimized, optimized_parts = measure()
    slower = (
        slower_in_pipeline({n: (original_parts[n], optimized_parts[n]) for n in original_parts}) if timed_choice else {}
    )
    if slower:
        for unit in units:
            if unit.part.name in slower:
                unit.install(None)
        optimized, optimized_parts = measure()
    modules = tuple(ModuleTiming(p.name, original_parts[p.name], optimized_parts[p.name]) for p in parts)
    return {"original": original, "optimized": optimized, "modules": modules}, slower
