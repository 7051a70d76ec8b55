"""``optimize()``: the single-model run from the plan to the sealed package, stage by stage."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from sextant.cache import hash_path
from sextant.devices import cpu_threads, host_record, precision_unavailable_reason, unavailable_reason
from sextant.earlystop import cannot_judge
from sextant.errors import NothingRunnableError, UsageError
from sextant.inputs import prepare_inputs
from sextant.isolation import Isolator, preload_for
from sextant.options import OptimizeOptions
from sextant.package import STATUS, Package
from sextant.package.document import RunInfo, Skipped
from sextant.optimizer.budget import Budget
from sextant.optimizer.candidates import VerifyFunc
from sextant.optimizer.context import Run
from sextant.history import disabled as history_disabled
from sextant.optimizer.learned import describe, favourites, learn, note_order, open_history
from sextant.optimizer import unchanged
from sextant.optimizer.events import Done, EventHandler, Noted, Planned
from sextant.optimizer.ledger import Ledger
from sextant.optimizer.lock import WorkspaceLock
from sextant.optimizer.paired import apply_pairing
from sextant.optimizer.seal import open_ledger, previous_status, raise_if_nothing_selected, seal, write_report
from sextant.optimizer.schedule import run_plan
from sextant.optimizer.variants import search_strategy_spec
from sextant.optimizer.workspace import Workspace, workspace_path
from sextant.planner import Plan, make_plan
from sextant.plugins import Catalog, load_catalog
from sextant.references import default_name, packages_imported, resolve_model, top_packages
from sextant.samples import save_batches
from sextant.selection import select, settle_regimes
from sextant.signature import batch_size
from sextant.specs import Format, SourceModel, resolve

__all__ = ["EventHandler", "OptimizeOptions", "VerifyFunc", "optimize"]


def optimize(
    model: Any,
    samples: Any = None,
    *,
    options: OptimizeOptions | None = None,
    catalog: Catalog | None = None,
    verify_func: VerifyFunc | None = None,
    on_event: EventHandler | None = None,
    plan_only: bool = False,
    **kwargs: Any,
) -> Package | Plan:
    """Find the fastest correct way to run ``model``; returns the package written.

    :param model: a model object, a path, or a ``file.py:factory`` / ``module:factory`` reference.
    :param samples: example inputs (see ``sextant.samples``); optional when the model declares
        its inputs.
    :param verify_func: ``(outputs, reference) -> bool`` over every correctness batch; a candidate
        it rejects (or that makes it raise) is never selected.
    :param on_event: called with each progress event (:mod:`sextant.optimizer.events`): the plan,
        each step's and candidate's start and end, profile points, notes, the last status.
    :param plan_only: return the :class:`~sextant.planner.Plan` without running anything.
    :param kwargs: fields of :class:`OptimizeOptions`, as an alternative to ``options``.
    """
    options = replace(options, **kwargs) if options else OptimizeOptions(**kwargs)
    catalog = catalog or load_catalog()
    emit = on_event or (lambda event: None)
    started = time.monotonic()
    budget = Budget(options.budget_s)
    compare = resolve(catalog.get("comparator", options.comparator).spec.run)
    strategy = search_strategy_spec(catalog, options.search)

    _check_names(catalog, options)
    _check_devices(options)
    given = None if plan_only else unchanged.arguments(model, samples)  # None: no re-run answers it unloaded
    host = host_record(options.threads or cpu_threads(), options.devices()) if given is not None else {}
    answer = _unchanged(catalog, model, given, options, host, emit) if given is not None else None
    if answer is not None:
        return answer
    with Isolator(preload=_early_preload(catalog, model, options)) as isolator:
        if not plan_only and not _rerun(options, model):  # the server imports the model's framework
            isolator.start()  # while this process loads the model; a re-run may need no child at all
        if given is None:  # nothing to record: no audit hook for the rest of the process
            (source, samples), loaded = _load(catalog, model, samples, options), None
        else:
            (source, samples), read = unchanged.traced(lambda: _load(catalog, model, samples, options))
            loaded = unchanged.record(read, given, catalog, host)
        if _generates(catalog, source, options):
            if plan_only:
                from sextant.generation.plan import make_generation_plan

                return make_generation_plan(  # type: ignore[return-value]
                    catalog,
                    source.format,
                    devices=options.devices(),
                    precisions=options.precisions,
                    generators=options.runners,
                )
            from sextant.generation.run import optimize_generation

            return optimize_generation(catalog, source, samples, options, emit, isolator)
        plan = _plan(catalog, source.format, options)
        emit(Planned(plan, source))
        if plan_only:
            return plan
        baseline = plan.baseline()
        if baseline is None:
            raise NothingRunnableError(
                f"no reference runner for the source format '{source.format}' is available",
                hint="Install the plugin for this framework; `sextant plugins` shows what is available and why not.",
            )
        prepared = prepare_inputs(source, samples, options)  # bad samples fail before anything is written

        workspace = Workspace.open(workspace_path(options.workspace, source.name))
        with WorkspaceLock(workspace.path) as lock:  # held until the package is whole
            previous, unreadable = previous_status(workspace, options.fresh)
            changed = workspace.discard_changed() if previous else None
            written = workspace.write_source(source)
            threads = options.threads or cpu_threads()
            ledger = open_ledger(
                workspace, source, written.path, options, threads, previous, emit, lock, (unreadable, changed)
            )
            history = None if options.no_history or history_disabled() else open_history(catalog)
            if history is not None and history.note:
                ledger.note(history.note)
            model = describe(source.format.name, written.path, prepared.signature)
            max_batch = options.max_batch_size  # until the samples say otherwise
            server_log = workspace.path / "logs" / "forkserver.log"
            # a re-run may need no child at all: its server imports the plan's modules before a first fork
            isolator.expect(_preload(plan, source), server_log, now=not previous)
            try:
                max_batch = prepared.max_batch
                for note in prepared.notes:
                    ledger.note(note)
                save_batches(workspace.samples, prepared.samples)
                save_batches(workspace.inputs, prepared.checks)
                ledger.set(
                    signature=prepared.signature,
                    correctness_batches=[batch_size(b, prepared.signature) for b in prepared.checks],
                )
                run = Run(
                    options,
                    workspace,
                    ledger,
                    isolator,
                    threads,
                    written,
                    prepared.signature,
                    max_batch,
                    hash_path(workspace.inputs),
                    budget,
                    frozenset(plan.reference_only),
                    probe=source.probe,
                    canonical_hashes=catalog.canonical_hashes(),
                )
                unjudged = cannot_judge(run.objective) if options.cutoff > 0 else None
                if unjudged:
                    ledger.note(f"no sweep stops early: {unjudged}; each is swept to its plateau or largest batch size")
                scores = history.scores(model, options.objective) if history is not None else {}
                first = favourites([c for c in plan.candidates if c is not baseline], scores)
                if history is not None:
                    note_order(ledger, history, first, history.similar(model, options.objective))
                run_plan(run, plan, baseline, compare, verify_func, strategy, scores, first)
            except BaseException:
                _finish(ledger, plan, options, max_batch, time.monotonic() - started, complete=False)
                unchanged.save(workspace.path, None)
                seal(ledger, workspace)
                raise  # what is done is recorded; the original error goes on
            _finish(ledger, plan, options, max_batch, time.monotonic() - started, complete=True)
            if history is not None:
                learn(history, ledger, model, options.objective, options.cutoff)
            workspace.prune(
                [r.artifact for r in ledger.steps.values()] + [r.outputs for r in ledger.candidates.values()]
            )
            write_report(ledger, workspace)
            unchanged.save(workspace.path, loaded)
            seal(ledger, workspace)
        raise_if_nothing_selected(ledger, workspace)
        return Package(workspace.path)


def _check_names(catalog: Catalog, options: OptimizeOptions) -> None:
    """``--formats``, ``--runners`` and ``--steps`` name what the installed plugins provide."""
    runners = {c.name for c in (*catalog.of("runner"), *catalog.of("generator"))}
    formats = {str(c.spec.consumes) for c in catalog.of("runner")}
    steps = {c.name for kind in ("exporter", "converter") for c in catalog.of(kind)}
    for given, known, flag in (
        (options.formats, formats, "--formats"),
        (options.runners, runners, "--runners"),
        (options.steps, steps, "--steps"),
    ):
        unknown = sorted(set(given or ()) - known)
        if unknown:
            raise UsageError(
                f"{flag} names {', '.join(unknown)}, which no installed plugin provides",
                hint=f"Known here: {', '.join(sorted(known))} (`sextant plugins` lists them).",
            )


def _check_devices(options: OptimizeOptions) -> None:
    """A device asked for by name (``--device cuda``) is on this machine, before anything is loaded."""
    for device in options.devices():
        reason = unavailable_reason(device)
        if reason:
            raise NothingRunnableError(
                f"--device {device}: {reason}",
                hint="Run on a machine with an NVIDIA GPU and its driver, or pass --device cpu "
                "(or auto: the GPU where there is one); `sextant plugins` shows what each runner needs.",
            )


def _load(catalog: Catalog, model: Any, samples: Any, options: OptimizeOptions) -> tuple[SourceModel, Any]:
    """The MODEL and samples arguments resolved (paths, ``file.py:factory`` references), the
    model recognised by a loader plugin."""
    name, origin = options.name, None
    if isinstance(model, str):
        origin = model
        model, default_name = resolve_model(model)
        name = name or default_name
    elif isinstance(model, Path):
        name = name or model.stem
    if isinstance(samples, (str, Path)) and not Path(samples).exists() and ":" in str(samples):
        samples, _ = resolve_model(str(samples), what="samples")
    return catalog.load_source(model, name, options.source_options, origin=origin, task=options.task), samples


def _generates(catalog: Catalog, source: SourceModel, options: OptimizeOptions) -> bool:
    """Whether the run is a text-generation run: its source is of a format a generator loads
    (the loaders return one for ``--task text-generation``, and for ``auto`` when the model is a
    causal LM). A generation objective on another model, or a generation task on a source no
    installed generator loads, is a usage error."""
    from sextant.objective import GENERATION_ONLY

    generates = any(c.spec.consumes == source.format for c in catalog.of("generator"))
    if options.task == "text-generation" and not generates:
        raise UsageError(
            f"--task text-generation: no installed generator loads {source.description or source.format} "
            f"(format '{source.format}')",
            hint="Give a transformers causal LM (a factory returning it, or a save_pretrained folder) with the "
            "torch plugin installed; `sextant plugins` lists the generators.",
        )
    if not generates and options.objective in GENERATION_ONLY:
        raise UsageError(
            f"--objective {options.objective} measures text generation, and {source.name} is run as one forward pass",
            hint="Give a causal LM (or --task text-generation), or use --objective throughput, latency or memory.",
        )
    return generates


def _finish(
    ledger: Ledger, plan: Plan, options: OptimizeOptions, max_batch: int, seconds: float, *, complete: bool
) -> None:
    """Select under the objective and write the last status; a finished run keeps only what its
    plan has, an interrupted one keeps every record and says where it stopped. The run's record
    says how long it took, how many results came from the workspace's cache, and which planned
    candidates this run did not get to (``unmeasured``; see :attr:`sextant.package.RunDocument.incomplete`)."""
    if complete:
        ledger.keep_only([s.id for s in plan.steps], [c.id for c in plan.candidates])
        ledger.set(interrupted=None)
    planned = {c.id for c in plan.candidates}
    current = {cid: r for cid, r in ledger.candidates.items() if cid in planned}
    selection, ranked = select(
        current, options.goal(max_batch), ledger.header.baseline, planned - plan.reference_only
    )
    chosen, notes = apply_pairing(selection, ranked, ledger.header.paired if complete else None)
    selection = settle_regimes(chosen, selection)
    for note in notes:
        ledger.note(note)
    ledger.candidates.update(ranked)
    if complete:
        _note_environmental(ledger, selection.best)
    records = [*ledger.steps.values(), *ledger.candidates.values()]
    ledger.set(
        run=replace(
            ledger.header.run or RunInfo(),
            seconds=round(seconds, 3),
            complete=complete,
            cached=sum(r.cached for r in records),
            ran=sum(not r.cached and r.seconds is not None for r in records),
            planned=len(planned),
            unmeasured=tuple(c.id for c in plan.candidates if not ledger.measured(c.id)),
        ),
        skipped=tuple(Skipped(what, reason) for what, reason in plan.skipped),
        reference_only=tuple(sorted(plan.reference_only)),
        selection=selection,
    )
    ledger.emit(Done(ledger.document))


def _note_environmental(ledger: Ledger, best: str | None) -> None:
    """When the baseline won (or nothing did) while other steps or candidates failed for the
    machine's reasons (out of memory, a full disk, a hang: ``Cause.environmental``), say so: the
    result may say more about this machine's state than about the model, and the next run tries
    those again."""
    if best is not None and best != ledger.header.baseline:
        return
    failed: dict[str, list[str]] = {}
    records = [(s, ledger.steps.get(s)) for s in dict.fromkeys(ledger.run_steps)]
    records += [(c, ledger.candidates.get(c)) for c in ledger.run_candidates]
    for rid, record in records:
        if record is not None and record.cause is not None and record.cause.environmental:
            failed.setdefault(str(record.cause), []).append(rid)
    if not failed:
        return
    listed = "; ".join(f"{cause}: {', '.join(ids)}" for cause, ids in sorted(failed.items()))
    outcome = "the baseline was selected" if best is not None else "nothing was selected"
    ledger.note(
        f"{outcome} while others failed for reasons of the machine rather than the model ({listed}); "
        "they are tried again by the next run of the same command (free memory or disk space first)"
    )


def _unchanged(
    catalog: Catalog,
    model: Any,
    given: dict[str, Any],
    options: OptimizeOptions,
    host: dict[str, object],
    emit: EventHandler,
) -> Package | None:
    """The workspace's package, when nothing it depends on changed since the run that wrote it
    (:mod:`sextant.optimizer.unchanged`): the model is not loaded. ``None``: run."""
    if options.fresh or options.reload:
        return None
    name = options.name or default_name(str(model))
    path = workspace_path(options.workspace, name)
    changed = unchanged.why_not(path, given, options.to_record(), catalog, host)
    if changed is not None:
        if (path / unchanged.LOADED).exists():  # not a first run: say what made it load the model
            emit(Noted(f"the model is loaded again: {changed}"))
        return None
    package = Package(path)
    started = package.document.run
    when = f" ({started.started})" if started is not None and started.started else ""
    emit(
        Noted(
            f"nothing this package depends on changed since the run that wrote it{when}: it is the answer, and "
            "the model was not loaded (--reload loads it and measures what changed; --fresh measures all again)"
        )
    )
    return package


def _rerun(options: OptimizeOptions, model: Any) -> bool:
    """Whether the run's workspace (as far as it is known before the model loads) holds a status:
    a re-run, which may find everything cached."""
    name = options.name or (default_name(model) if isinstance(model, str) else None)
    if options.workspace is None and name is None:
        return False  # named after a model object by its loader: not known yet
    return not options.fresh and (workspace_path(options.workspace, name or "") / STATUS).exists()


def _early_preload(catalog: Catalog, model: Any, options: OptimizeOptions) -> list[str]:
    """What the fork server can import before the model is loaded, while this process loads it and
    plans: the packages loading it will import (:func:`~sextant.references.packages_imported`) that
    an installed plugin needs, and what the plans need from each format whose reference runner
    needs one of them (a file that imports torch gives a torch module: the exporters', converters'
    and runners' modules). A guess, made before the format is known: a model of another format
    only makes the server import more while the model loads; ``expect`` adds what the real plan
    needs. No plan is guessed for a text-generation run, nor for a model that imports a package
    only generators need (transformers: it may be one), whose plan is made from the loaded model."""
    imported = packages_imported(model)
    needed = top_packages(m for c in catalog.contributions for m in getattr(c.spec, "requires", ()))
    modules = set(preload_for(sorted(imported & needed)))
    runners = [c.spec for c in catalog.of("runner")]
    for_runners = top_packages(m for spec in runners for m in spec.requires)
    generative = top_packages(m for c in catalog.of("generator") for m in c.spec.requires) - for_runners
    if options.task == "text-generation" or imported & generative:
        return sorted(modules)
    for spec in runners:
        if spec.reference and top_packages(spec.requires) & imported:
            modules.update(_preload(_plan(catalog, spec.consumes, options)))
    return sorted(modules)


def _plan(catalog: Catalog, source_format: Format, options: OptimizeOptions) -> Plan:
    """The plan from ``source_format`` under the run's options."""
    return make_plan(
        catalog,
        source_format,
        devices=options.devices(),
        precisions=options.precisions,
        formats=options.formats,
        runners=options.runners,
        steps=options.steps,
        native=precision_unavailable_reason if options.precision_auto else None,
    )


def _preload(plan: Plan, source: SourceModel | None = None) -> list[str]:
    """What the fork server imports for ``plan`` (its steps' and runners' needs) and ``source``."""
    requires = [m for s in plan.steps for m in s.spec.requires]
    requires += [m for c in plan.candidates for m in c.runner.requires]
    return preload_for(requires, source.imports if source else ())
