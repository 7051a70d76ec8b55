"""The analysis job: :func:`analyze` reads top to bottom as the job goes: resolve the target (a package is deployed
first), read each unit (model, ensemble or BLS model with the models it calls), start or reach the
server, search each group of units (one at a time, or all at once with ``concurrent``), sweep the
top configurations over concurrency, and write the results (:mod:`.outputs`, :mod:`.report`).
With ``rerank`` nothing is measured: the stored measurements are ranked again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from sextant.api import (
    Budget,
    Param,
    SearchResult,
    SextantError,
    UsageError,
    cpu_model,
    digest,
    ranked,
    run_search,
    search_strategy_factory,
)

from sextant_triton.analyze import confirm, explore, outputs
from sextant_triton.analyze.control import LocalServer, RemoteServer, ServerControl
from sextant_triton.analyze.database import check_url, open_store
from sextant_triton.analyze.inputs import Inputs, Target, perf_inputs, resolve_target
from sextant_triton.analyze.records import Analysis, GroupResult
from sextant_triton.analyze.settings import AnalyzeSettings
from sextant_triton.analyze.space import Coordinates, ServedModel, Space, read_served_model
from sextant_triton.analyze.store import Record, Store, connection_lost, stopped_answering


def _gpus() -> list[str]:
    folder = Path("/proc/driver/nvidia/gpus")
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def hardware_key(settings: AnalyzeSettings) -> str:
    """Where measurements were made: they are reused only on the same CPU, GPUs and server."""
    where = f"remote {settings.url}" if settings.launch_mode == "remote" else "local"
    return f"{cpu_model()} x{os.cpu_count()}; {len(_gpus())} GPU; {where}"


def instance_kind(settings: AnalyzeSettings) -> str | None:
    """``KIND_CPU`` without a GPU (never ``KIND_GPU`` there); with one, each model keeps its own."""
    return settings.instance_kind or (None if _gpus() else "KIND_CPU")


def _group_key(units: Sequence[ServedModel], settings: AnalyzeSettings) -> str:
    parts = [f"{u.name}@{u.content}" for u in units]
    w = settings.windows
    key = "+".join(parts) + f"|batch {settings.batch_size}|windows {w.interval_ms}/{w.stability:g}/{w.max_trials}"
    if settings.model_type != "llm":
        return key
    prompts = Path(settings.llm.prompt_file) if settings.llm.prompt_file else None
    content = digest(prompts.read_text()) if prompts is not None and prompts.is_file() else ""
    return key + f"|{settings.llm!r}{content}"  # every prompt setting, and a prompt file's content


def _strategy(settings: AnalyzeSettings, params: list[Param], output: Path, key: str, catalog: object) -> Any:
    """The chosen strategy over ``params``, given its options as ``settings`` say (the analysis's
    defaults, then the YAML's), and ``--storage`` where it declares a ``storage`` option."""
    offered = {"storage": settings.storage}
    factory = search_strategy_factory(settings.search, catalog, settings.search_options(), offered)  # type: ignore[arg-type]
    seed, name = int(settings.optuna.get("seed", 0)), settings.study or f"analyze-{key[:40]}"
    return factory(params, seed=seed, workspace=output, name=name)


def analyze(
    target: Path,
    settings: AnalyzeSettings,
    *,
    output: Path | None = None,
    rerank: bool = False,
    catalog: object = None,
    on_measured: Callable[[Coordinates, Record], None] | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> Analysis:
    """Analyze ``target`` (a package or a model repository) as ``settings`` say; see the module."""
    if settings.storage is not None:
        check_url(settings.storage)  # before anything is deployed or started
    found: Target = resolve_target(Path(target), settings, output, log)
    settings = replace(settings, models=found.models)
    units = [read_served_model(found.repository, m) for m in found.models]
    groups = [units] if settings.concurrent else [[u] for u in units]
    kind = instance_kind(settings)
    hardware = hardware_key(settings)
    found.output.mkdir(parents=True, exist_ok=True)
    counters = explore.Counters()

    def note(line: str) -> None:
        log(f"note: {line}")
        counters.events.append(line)

    store = open_store(settings.storage, found.output, note)
    results: list[GroupResult] = []
    try:
        if rerank:
            for group in groups:
                space = Space(group, settings, kind)
                key = _group_key(group, settings)
                stored = [(r.point, r) for r in store.all(key, hardware)]
                if not stored:
                    raise UsageError(
                        f"nothing stored for {', '.join(u.name for u in group)} on this hardware with these settings",
                        hint="Run the analysis once without --rerank.",
                    )
                counters.reused += len(stored)
                default = confirm.default_best(space, stored, settings.objective, stored[0][1])
                again = confirm.Confirmation(default, not_measured="--rerank measures nothing")
                results.append(
                    GroupResult(space, key, tuple(stored), stored[0][1], "re-ranked stored measurements", again)
                )
        else:
            inputs = {u.name: _inputs(found, settings, u) for u in units}
            results = _measure(
                found, settings, groups, inputs, kind, hardware, store, counters, catalog, on_measured, log
            )
    finally:
        store.release()
        store.close()
    counters.events.extend(store.took_over)
    return outputs.write(found, settings, results, counters, hardware)


def _inputs(found: Target, settings: AnalyzeSettings, unit: ServedModel) -> Inputs:
    """What perf_analyzer sends ``unit``: the prompts of an LLM analysis (checked: a model that does not
    stream, or a prompt longer than its context, is refused before the server starts), else samples."""
    if settings.model_type == "llm":
        from sextant_triton.analyze import llm

        return llm.write_prompts(unit.top, settings.llm, found.output / "perf" / f"{unit.name}_prompts.json"), {}
    return perf_inputs(found.repository, unit.settings, unit.top, found.output)


def _measure(
    found: Target,
    settings: AnalyzeSettings,
    groups: list[list[ServedModel]],
    inputs: Mapping[str, Inputs],
    kind: str | None,
    hardware: str,
    store: Store,
    counters: explore.Counters,
    catalog: object,
    on_measured: Callable[[Coordinates, Record], None] | None,
    log: Callable[[str], None],
) -> list[GroupResult]:
    names = [m.name for group in groups for u in group for m in u.models]
    control: ServerControl
    if settings.launch_mode == "remote":
        control = RemoteServer(str(settings.url), names)
    else:
        log(f"starting tritonserver on {found.repository}")
        control = LocalServer(found.repository, found.output / "server")
    results = []
    try:
        for group in groups:
            space = Space(group, settings, kind)
            key = _group_key(group, settings)
            budget = Budget(settings.budget_s, measurements=settings.max_measurements)
            session = explore.Session(
                space,
                control,
                store,
                key=key,
                hardware=hardware,
                windows=settings.windows,
                inputs={u.name: inputs[u.name] for u in group},
                workdir=found.output / "perf",
                counters=counters,
                on_measured=on_measured,
                give_up=lambda budget=budget: budget.stop(counters.measured),
            )
            log(f"searching {space.size()} points of {', '.join(u.name for u in group)} ({settings.search})")
            results.append(search_group(settings, space, session, budget, found.output, key, catalog))
    except SextantError:
        raise
    except Exception as exc:  # the Optuna study shares --storage: its database going away is said the same way
        lost = connection_lost(exc) if settings.storage else None
        if lost is None:
            raise
        raise stopped_answering(settings.storage or "", lost) from exc
    finally:
        control.close()
    return results


def search_group(
    settings: AnalyzeSettings,
    space: Space,
    session: explore.Session,
    budget: Budget,
    output: Path,
    key: str,
    catalog: object,
) -> GroupResult:
    """One group: the search, the top configurations swept over concurrency, then the best
    re-measured interleaved with the default before any gain is claimed."""
    outcome = _search(settings, space, session, budget, output, key, catalog)
    history = list(outcome.history)
    history += _top_sweeps(settings, space, session, history, outcome.baseline)
    history = _unique(history)
    checked = confirm.confirm(
        session, space, settings.objective, history, outcome.baseline, budget, settings.paired_rounds
    )
    return GroupResult(space, key, tuple(history), outcome.baseline, outcome.stopped, checked)


def _search(
    settings: AnalyzeSettings,
    space: Space,
    session: explore.Session,
    budget: Budget,
    output: Path,
    key: str,
    catalog: object,
) -> SearchResult:
    objective, params, expand = settings.objective, list(space.params), None
    if settings.search == "brute" and space.load_params and space.load_params[0].name == "concurrency":
        params = [p for p in space.params if p.name != "concurrency"]  # each point swept over concurrency
        values = list(space.load_params[0].grid())
        expand = lambda point: explore.sweep(session, point, objective, values, session.give_up)  # noqa: E731
    strategy = _strategy(settings, params, output, key, catalog)
    return run_search(
        strategy,
        session.load,
        objective,
        session.store,
        budget,
        key=key,
        hardware=session.hardware,
        tally=session.counters,
        expand=expand,
        on_measured=session.on_measured,
    )


def _top_sweeps(
    settings: AnalyzeSettings,
    space: Space,
    session: explore.Session,
    history: list[tuple[Coordinates, Record]],
    baseline: Record,
) -> list[tuple[Coordinates, Record]]:
    """The top N configurations (and the default) over concurrency, for the curves."""
    if settings.top_n == 0 or settings.request_rate or settings.search == "brute" and space.load_params:
        return []
    order = ranked(history, settings.objective, baseline)
    configs: list[Coordinates] = []
    for point, _ in [(space.defaults(), baseline), *order]:
        config = {k: v for k, v in point.items() if k != "concurrency"}
        if config not in configs:
            configs.append(config)
        if len(configs) > settings.top_n:
            break
    top = (
        settings.concurrency.high
        if settings.concurrency
        else 2 * max(space.load(u, space.defaults()).concurrency or 1 for u in space.units)
    )
    values = Param("concurrency", "exponential", (1, max(top, 2)), 1).grid()
    out = []
    for config in configs:
        out += explore.sweep(session, config, settings.objective, values, session.give_up, patience=2)
    return out


def _unique(history: list[tuple[Coordinates, Record]]) -> list[tuple[Coordinates, Record]]:
    seen, out = set(), []
    for point, record in history:
        key = tuple(sorted((k, str(v)) for k, v in point.items()))
        if key not in seen:
            seen.add(key)
            out.append((point, record))
    return out
