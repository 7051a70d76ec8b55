"""``optimize``: plan, export and convert in isolation, check correctness, profile, verify, select.

The pipeline knows no framework by name: it composes what the catalog holds. Every step and
candidate is keyed by content (``sextant.cache``); a re-run reuses what is recorded in the
workspace's ``status.json`` under the same key, and redoes only what a changed option touches.
"""

from __future__ import annotations

import platform
import shutil
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sextant import __version__
from sextant.cache import cache_dir, digest, hash_path, library_versions
from sextant.compare import Tolerance, Verdict
from sextant.devices import cpu_threads, device_identity
from sextant.errors import CorrectnessError, NothingRunnableError, SampleError, UsageError
from sextant.inputs import prepare_inputs
from sextant.isolation import ChildResult, Isolator
from sextant.options import OptimizeOptions
from sextant.package import SCHEMA_VERSION, STATUS, Package, write_json
from sextant.planner import SOURCE, Plan, PlannedCandidate, PlannedStep, make_plan, with_options
from sextant.plugins import Catalog, availability, load_catalog
from sextant.profiler import ProfilerConfig
from sextant.references import resolve_model
from sextant.samples import load_batches, save_batches
from sextant.search import Goal, ResultsStore, run_search
from sextant.selection import Objective, select
from sextant.signature import batch_size, infer_tensors
from sextant.specs import PRECISIONS, SourceModel, resolve

EventHandler = Callable[[str, Mapping[str, Any]], None]
VerifyFunc = Callable[[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]], bool]
RETRIED = ("timeout", "lost", "interrupted")  # causes of failure worth retrying on a re-run


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
        it rejects is never selected.
    :param kwargs: fields of :class:`OptimizeOptions`, as an alternative to ``options``.
    """
    if "precisions" in kwargs and kwargs["precisions"] in ("auto", ("auto",)):
        kwargs["precisions"] = PRECISIONS
    options = replace(options, **kwargs) if options else OptimizeOptions(**kwargs)
    catalog = catalog or load_catalog()
    return _Run(catalog, options, on_event or (lambda kind, data: None), verify_func).go(model, samples, plan_only)


class _Run:
    def __init__(self, catalog: Catalog, options: OptimizeOptions, emit: EventHandler, verify: VerifyFunc | None):
        self.catalog = catalog
        self.options = options
        self.emit = emit
        self.verify = verify
        self.threads = options.threads or cpu_threads()
        self.comparator = resolve(catalog.get("comparator", options.comparator).spec.run)
        if options.search:  # an unknown or unavailable strategy fails now, not after the profiling
            reason = availability(catalog.get("search_strategy", options.search).spec)
            if reason:
                raise UsageError(f"search strategy {options.search!r} is unavailable: {reason}")
        self.previous: dict[str, Any] = {}
        self.recorded_steps: list[str] = []  # recorded by this run, in order
        self.recorded_candidates: list[str] = []

    # -- set-up ---------------------------------------------------------------------------------

    def go(self, model: Any, samples: Any, plan_only: bool) -> Package | Plan:
        name = self.options.name
        if isinstance(model, str):
            model, default_name = resolve_model(model)
            name = name or default_name
        elif isinstance(model, Path):
            name = name or model.stem
        if isinstance(samples, (str, Path)) and not Path(samples).exists() and ":" in str(samples):
            samples, _ = resolve_model(str(samples), what="samples")
        source = self.catalog.load_source(model, name, self.options.source_options)
        plan = make_plan(
            self.catalog,
            source.format,
            devices=self.options.devices(),
            precisions=self.options.precisions,
            formats=self.options.formats,
            runners=self.options.runners,
        )
        self.emit("plan", {"plan": plan, "source": source})
        if plan_only:
            return plan
        if plan.baseline() is None:
            raise NothingRunnableError(
                f"no reference runner for the source format '{source.format}' is available",
                hint="Install the plugin for this framework; `sextant plugins` shows what is available and why not.",
            )
        self.ws = Path(self.options.workspace or Path("sextant-workspace") / source.name)
        self._open_workspace(source)
        self.isolator = Isolator(preload=_preload(plan), server_log=self.ws / "logs" / "forkserver.log")
        try:
            self.isolator.start()  # it imports the heavy modules while the samples are prepared
            self._prepare_samples(source, samples)
            self._run_baseline(plan)
            for step in plan.steps:
                self._run_step(step)
            baseline = plan.baseline()
            variants = [c for c in plan.candidates if c.options != c.runner.defaults()]
            for candidate in plan.candidates:
                if candidate is not baseline and candidate not in variants:
                    self._run_candidate(candidate)
            if self.options.search:
                self._search(plan, variants)
            else:
                for candidate in variants:
                    self._run_variant(plan, candidate)
        except BaseException:
            self._finish(plan, complete=False)  # record what is done; the original error goes on
            raise
        finally:
            self.isolator.close()
        self._finish(plan, complete=True)
        self._raise_if_nothing_selected()
        return Package(self.ws)

    def _open_workspace(self, source: SourceModel) -> None:
        ws = self.ws
        ws.mkdir(parents=True, exist_ok=True)
        if not self.options.fresh and (ws / STATUS).exists():
            try:
                self.previous = Package(ws).status
            except Exception:
                self.previous = {}
        for sub in ("logs", "artifacts", "outputs"):
            (ws / sub).mkdir(exist_ok=True)
        tmp = ws / "source.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        written = source.write(tmp)
        self.source_key = source.fingerprint() if source.fingerprint else hash_path(tmp)
        if source.options:
            self.source_key = digest({"source": self.source_key, "options": dict(source.options)})
        shutil.rmtree(ws / "source", ignore_errors=True)
        tmp.rename(ws / "source")
        self.source_path = ws / "source" / written.relative_to(tmp)
        self.status: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "sextant": __version__,
            "model": {
                "name": source.name,
                "format": source.format.name,
                "source": str(self.source_path.relative_to(ws)),
            },
            "options": self.options.to_record(),
            "host": {"threads": self.threads, "devices": self.options.devices()},
            # records of earlier runs stay until this run replaces them, so an interrupted
            # re-run loses nothing; a finished run drops those its plan no longer has
            "steps": dict(self.previous.get("steps", {})),
            "candidates": dict(self.previous.get("candidates", {})),
            "notes": [],
        }

    def _prepare_samples(self, source: SourceModel, samples: Any) -> None:
        prepared = prepare_inputs(source, samples, self.options)
        for note in prepared.notes:
            self._note(note)
        self.signature, self.max_batch = prepared.signature, prepared.max_batch
        save_batches(self.ws / "samples.npz", prepared.samples)
        save_batches(self.ws / "inputs.npz", prepared.checks)
        self.inputs_key = hash_path(self.ws / "inputs.npz")
        self.status["signature"] = self.signature.to_dict()
        self.status["correctness_batches"] = [batch_size(b, self.signature) for b in prepared.checks]
        self._save()

    # -- steps ----------------------------------------------------------------------------------

    def _step_key(self, step: PlannedStep) -> str:
        parent = self.source_key if step.parent is None else self.status["steps"][step.parent]["key"]
        return digest(
            {
                "parent": parent,
                "step": step.spec.name,
                "plugin": step.plugin,
                "run": step.spec.run,
                "options": dict(step.spec.options),
                "signature": self.signature.to_dict(),
                "max_batch": self.max_batch,
                "libraries": library_versions(step.spec.requires),
                "device": device_identity(step.device),
            }
        )

    def _run_step(self, step: PlannedStep) -> None:
        key = self._step_key(step)
        record: dict[str, Any] = {
            "kind": step.kind,
            "spec": step.spec.name,
            "plugin": step.plugin,
            "from": step.parent or SOURCE,
            "format": step.format.name,
            "precision": step.precision,
            "device": step.device,
            "key": key,
        }
        parent = self.status["steps"].get(step.parent) if step.parent else None
        if parent is not None and parent["status"] != "ok":
            self._record_step(step.id, {**record, "status": "skipped", "reason": f"{step.parent} did not succeed"})
            return
        old = self.previous.get("steps", {}).get(step.id)
        if (
            old
            and old.get("key") == key
            and old.get("cause") not in RETRIED
            and (old["status"] != "ok" or (self.ws / old["artifact"]).exists())
        ):
            self._record_step(step.id, {**old, "cached": True})
            return
        out_dir = self.ws / "artifacts" / f"{_slug(step.id)}-{key[:10]}"
        shutil.rmtree(out_dir, ignore_errors=True)
        input_path = (
            self.source_path if step.parent is None else self.ws / self.status["steps"][step.parent]["artifact"]
        )
        payload = {
            "run": step.spec.run,
            "input": str(input_path),
            "output_dir": str(out_dir),
            "signature": self.signature.to_dict(),
            "samples": str(self.ws / "samples.npz"),
            "device": step.device,
            "max_batch": self.max_batch,
            "options": dict(step.spec.options),
        }
        self.emit("step_start", {"id": step.id, "kind": step.kind})
        result = self._child("sextant.worker:run_step", payload, step.id)
        record.update(_outcome(result), log=self._log_name(step.id))
        if result.ok:
            record["artifact"] = str(Path(result.value).relative_to(self.ws))
            record["content"] = hash_path(out_dir)
            twin = self._same_content(step.id, record)
            if twin:
                record.update(status="duplicate", reason=f"same bytes as {twin}")
                shutil.rmtree(out_dir, ignore_errors=True)
                del record["artifact"]
        self._record_step(step.id, record)

    def _same_content(self, step_id: str, record: dict[str, Any]) -> str | None:
        """An earlier step of this run that produced the very same artifact (a no-op conversion)."""
        for other_id in self.recorded_steps:
            other = self.status["steps"].get(other_id, {})
            if (
                other_id != step_id
                and other.get("status") == "ok"
                and other.get("content") == record["content"]
                and other.get("format") == record["format"]
                and other.get("key") != record["key"]
            ):
                return other_id
        return None

    def _record_step(self, step_id: str, record: dict[str, Any]) -> None:
        self.status["steps"][step_id] = record
        self.recorded_steps.append(step_id)
        self._save()
        self.emit("step_end", {"id": step_id, "record": record})

    # -- candidates -----------------------------------------------------------------------------

    def _run_baseline(self, plan: Plan) -> None:
        baseline = plan.baseline()
        assert baseline is not None
        self.status["baseline"] = baseline.id
        self.reference: list[dict[str, np.ndarray]] | None = None
        self._run_candidate(baseline)
        record = self.status["candidates"][baseline.id]
        if self.reference is None:
            raise SampleError(
                f"the source model could not run the correctness inputs "
                f"(batch sizes {self.status['correctness_batches']}): {record.get('reason')}",
                hint=f"See {self.ws / record['log']}. If the model only takes a fixed batch size, "
                "pass --max-batch-size with that size; check input names, dtypes and shapes.",
            )

    def _candidate_keys(self, candidate: PlannedCandidate) -> dict[str, str]:
        artifact = self.source_key if candidate.step is None else self.status["steps"][candidate.step]["key"]
        outputs = digest(
            {
                "artifact": artifact,
                "runner": candidate.runner.name,
                "plugin": candidate.plugin,
                "device": candidate.device,
                "precision": candidate.precision,
                "options": candidate.options,
                "threads": self.threads,
                "inputs": self.inputs_key,
                "libraries": library_versions(candidate.runner.requires),
            }
        )
        return {"outputs": outputs, "profile": digest({"outputs": outputs, "profiler": self._profiler().to_dict()})}

    def _profiler(self) -> ProfilerConfig:
        return replace(self.options.profiler, max_batch=self.max_batch)

    def _base_record(self, candidate: PlannedCandidate) -> dict[str, Any]:
        return {
            "step": candidate.step or SOURCE,
            "format": candidate.format.name,
            "runner": candidate.runner.name,
            "plugin": candidate.plugin,
            "device": candidate.device,
            "precision": candidate.precision,
            "options": candidate.options,
            "status": "pending",
        }

    def _run_candidate(self, candidate: PlannedCandidate) -> None:
        record = self._base_record(candidate)
        if candidate.step is not None:
            step = self.status["steps"].get(candidate.step)
            if step is None or step["status"] != "ok":
                record.update(status="skipped", reason=f"{candidate.step} did not succeed")
                return self._record_candidate(candidate.id, record)
            record["artifact"] = step["artifact"]
        else:
            record["artifact"] = str(self.source_path.relative_to(self.ws))
        keys = self._candidate_keys(candidate)
        record["keys"] = keys
        record["outputs"] = f"outputs/{_slug(candidate.id)}-{keys['outputs'][:10]}.npz"
        record["log"] = self._log_name(candidate.id)
        old = self.previous.get("candidates", {}).get(candidate.id)
        if old and old.get("keys") == keys and old.get("cause") not in RETRIED:
            if old["status"] == "failed":
                record.update(status="failed", reason=old.get("reason"), cached=True)
                return self._record_candidate(candidate.id, record)
            if (self.ws / old["outputs"]).exists():
                judged = self._judge(candidate, load_batches(self.ws / old["outputs"]), record)
                if judged != "profile" or old.get("profile", {}).get("points"):
                    if judged == "profile":
                        record.update(status="ok", profile=old["profile"])
                    record["cached"] = True
                    return self._record_candidate(candidate.id, record)
        self.emit("candidate_start", {"id": candidate.id})
        points: list[dict[str, Any]] = []

        def handle(kind: str, data: Any) -> Any:
            if kind == "outputs":
                verdict = self._judge(candidate, load_batches(Path(data)), record)
                self._save()
                if verdict != "profile":
                    return {"profile": False}
                return {
                    "profile": True,
                    "config": self._profiler().to_dict(),
                    "rivals": self._rivals(),
                    "cutoff": self.options.cutoff,
                }
            if kind == "point":
                points.append(data)
                self.emit("candidate_point", {"id": candidate.id, "point": data})
            if kind == "loaded":
                record["load_seconds"] = round(float(data), 3)
            return None

        payload = {
            "load": candidate.runner.load,
            "artifact": str(self.ws / record["artifact"]),
            "signature": self.signature.to_dict(),
            "device": candidate.device,
            "precision": candidate.precision,
            "threads": self.threads,
            "options": candidate.options,
            "inputs": str(self.ws / "inputs.npz"),
            "outputs": str(self.ws / record["outputs"]),
        }
        try:
            result = self._child("sextant.worker:run_candidate", payload, candidate.id, handle)
        finally:
            if points:
                record["profile"] = {"points": points, "threads": self.threads}
        if record["status"] == "pending":  # never reached the verdict
            record.update(_outcome(result))
        elif record["status"] == "profiling":
            if result.ok and points:
                record["status"] = "ok"
                record["profile"].update(stopped=result.value.get("stopped"), threads=result.value.get("threads"))
            else:
                record.update(status="failed", reason=f"while profiling: {result.reason()}")
                record.update({k: v for k, v in _outcome(result).items() if k not in ("status", "reason")})
        record["seconds"] = round(result.seconds, 3)
        self._record_candidate(candidate.id, record)

    def _objective(self) -> Objective:
        return Objective(self.options.objective, self.options.latency_budget_ms, self.max_batch)

    def _best_default(self, plan: Plan, runner: Any, device: str) -> PlannedCandidate | None:
        """Where the runner with its default options did best (option variants are measured there
        only: a runtime option changes how a graph runs, not which graph is fastest)."""
        objective = self._objective()
        scored = []
        for c in plan.candidates:
            record = self.status["candidates"].get(c.id, {})
            if (
                c.runner == runner
                and c.device == device
                and c.options == runner.defaults()
                and record.get("status") == "ok"
            ):
                point = objective.best_point(record["profile"]["points"])
                if point is not None:
                    scored.append((objective.score(point), c))
        return max(scored, key=lambda sc: sc[0])[1] if scored else None

    def _search(self, plan: Plan, variants: list[PlannedCandidate]) -> None:
        """Search each runner's option space on its best artifact with the chosen strategy."""
        spec = self.catalog.get("search_strategy", self.options.search).spec
        goal = Goal(
            weights={"p50_ms": 1.0} if self.options.objective == "latency" else {"throughput": 1.0},
            max_p99_ms=self.options.latency_budget_ms,
        )
        store = ResultsStore(self.ws / "search.sqlite")
        hardware = f"{platform.machine()}-{self.threads}threads"
        searched: dict[str, Any] = {}
        try:
            pairs = {
                (c.runner.name, c.device): (c.runner, c.device) for c in plan.candidates if c.runner.space(c.device)
            }
            for runner, device in pairs.values():
                start = self._best_default(plan, runner, device)
                if start is None:
                    continue
                strategy = resolve(spec.create)(runner.space(device), seed=0, workspace=self.ws, name=start.id)

                def measure(config: dict[str, Any], start: PlannedCandidate = start) -> dict[str, float] | None:
                    candidate = with_options(start, config)
                    if candidate not in plan.candidates:
                        plan.candidates.append(candidate)  # a searched configuration is a candidate like any other
                    if candidate.id not in self.recorded_candidates:
                        self._run_candidate(candidate)
                    record = self.status["candidates"][candidate.id]
                    point = self._objective().best_point(record.get("profile", {}).get("points", []))
                    if record["status"] != "ok" or point is None:
                        return None
                    return {"throughput": point["throughput"], "p50_ms": point["p50_ms"], "p99_ms": point["p99_ms"]}

                result = run_search(
                    strategy,
                    measure,
                    goal=goal,
                    store=store,
                    candidate=self._candidate_keys(start)["outputs"],  # content, not name: a new model misses
                    hardware=hardware,
                    budget_s=self.options.search_budget_s,
                )
                searched[start.id] = {
                    "strategy": spec.name,
                    "best_options": result.best,
                    "gain_over_defaults": (
                        round(goal.gain(result.best_metrics, result.baseline), 4)
                        if result.best_metrics and result.baseline
                        else None
                    ),
                    "measured": result.measured,
                    "configurations": len(result.history),
                    "stopped": result.stopped,
                }
                for config, _ in result.history:  # configurations found in the store are candidates too
                    candidate = with_options(start, config)
                    if candidate not in plan.candidates:
                        plan.candidates.append(candidate)
                    if candidate.id not in self.recorded_candidates:
                        self._run_candidate(candidate)  # recorded in the workspace: reused, not measured
        finally:
            store.close()
        self.status["search"] = searched
        for candidate in variants:
            if candidate.id not in self.recorded_candidates:
                self._record_candidate(
                    candidate.id,
                    {
                        **self._base_record(candidate),
                        "status": "skipped",
                        "reason": f"not proposed by the {spec.name} search",
                    },
                )

    def _run_variant(self, plan: Plan, candidate: PlannedCandidate) -> None:
        best = self._best_default(plan, candidate.runner, candidate.device)
        if best is not None:
            if best.step == candidate.step and best.precision == candidate.precision:
                return self._run_candidate(candidate)
            reason = f"variants run on {best.step or SOURCE} only, where the defaults did best"
        else:
            reason = f"{candidate.runner.name} with default options did not succeed on any artifact"
        self._record_candidate(candidate.id, {**self._base_record(candidate), "status": "skipped", "reason": reason})

    def _judge(self, candidate: PlannedCandidate, outputs: list[dict[str, np.ndarray]], record: dict[str, Any]) -> str:
        """Compare (or, for the baseline, adopt) outputs; sets the record's status; 'profile' to go on."""
        if self.reference is None:  # the baseline: its outputs are the reference
            self.reference = outputs
            save_batches(self.ws / "reference.npz", outputs)
            sizes = self.status["correctness_batches"]
            unbatched = [  # outputs whose first axis does not follow the inputs' batch size
                name
                for name in outputs[0]
                if any(o[name].ndim == 0 or o[name].shape[0] != size for o, size in zip(outputs, sizes))
            ]
            self.signature = self.signature.with_outputs(infer_tensors(outputs, what="output", unbatched=unbatched))
            self.status["signature"] = self.signature.to_dict()
        tolerance = Tolerance.for_precision(
            candidate.precision, self.options.atol, self.options.rtol, self.options.tolerances
        )
        if len(outputs) != len(self.reference):
            record.update(status="incorrect", reason=f"{len(outputs)} output batches, expected {len(self.reference)}")
            return "stop"
        verdict = Verdict.merge([self.comparator(r, o, tolerance) for r, o in zip(self.reference, outputs)])
        record["correctness"] = {
            **verdict.to_dict(),
            "atol": tolerance.atol,
            "rtol": tolerance.rtol,
            "summary": verdict.summary(),
        }
        if not verdict.passed:
            record.update(status="incorrect", reason=f"correctness: {verdict.summary()}")
            return "stop"
        if self.verify is not None:
            try:
                accepted = bool(self.verify(outputs, self.reference))
            except Exception as exc:
                accepted = False
                record["verify_error"] = f"{type(exc).__name__}: {exc}"
            record["verified"] = accepted
            if not accepted:
                record.update(status="rejected", reason="rejected by verify_func " + record.get("verify_error", ""))
                return "stop"
        record["status"] = "profiling"
        return "profile"

    def _rivals(self) -> dict[int, float]:
        """The best throughput measured so far at or below each batch size: a batch of b can always
        be served as smaller batches, so what a rival reached at b' <= b it can reach at b."""
        best: dict[int, float] = {}
        for cid in self.recorded_candidates:  # this run's, not stale records of an earlier model
            record = self.status["candidates"][cid]
            if record["status"] != "ok":
                continue
            for point in record.get("profile", {}).get("points", []):
                best[point["batch"]] = max(best.get(point["batch"], 0.0), point["throughput"])
        envelope, running = {}, 0.0
        for batch in self._profiler().batch_sizes():
            running = max(running, best.get(batch, 0.0))
            if running:
                envelope[batch] = running
        return envelope

    def _record_candidate(self, cid: str, record: dict[str, Any]) -> None:
        self.status["candidates"][cid] = record
        self.recorded_candidates.append(cid)
        self._save()
        self.emit("candidate_end", {"id": cid, "record": record})

    # -- plumbing -------------------------------------------------------------------------------

    def _child(self, target: str, payload: dict[str, Any], name: str, handle: Any = None) -> ChildResult:
        log = self.ws / self._log_name(name)
        job = log.with_suffix(".job.json")
        write_json(job, {"target": target, "payload": payload, "profiler": self._profiler().to_dict()})
        log.write_text(f"# {name}\n# reproduce in this process: python -m sextant.worker {job}\n")
        try:
            return self.isolator.run(
                target, payload, log_path=log, timeout=self.options.step_timeout, handler=handle, env=_child_env()
            )
        except KeyboardInterrupt:
            self.status["interrupted"] = name
            raise

    def _log_name(self, name: str) -> str:
        return f"logs/{_slug(name)}.log"

    def _note(self, text: str) -> None:
        self.status["notes"].append(text)
        self.emit("note", {"text": text})

    def _save(self) -> None:
        write_json(self.ws / STATUS, self.status)

    def _finish(self, plan: Plan, complete: bool) -> None:
        if complete:
            self.status["steps"] = {s.id: self.status["steps"][s.id] for s in plan.steps}
            self.status["candidates"] = {c.id: self.status["candidates"][c.id] for c in plan.candidates}
            self.status.pop("interrupted", None)
        planned = {c.id for c in plan.candidates}
        self.status["skipped"] = [{"what": what, "reason": reason} for what, reason in plan.skipped]
        self.status["reference_only"] = sorted(plan.reference_only)
        max_batch = getattr(self, "max_batch", self.options.max_batch_size)  # unset if the samples were refused
        objective = Objective(self.options.objective, self.options.latency_budget_ms, max_batch)
        current = {cid: r for cid, r in self.status["candidates"].items() if cid in planned}
        self.status["selection"] = select(
            current, objective, self.status.get("baseline"), planned - plan.reference_only
        )
        self._save()
        if complete:
            self._prune()
        self.emit("done", {"status": self.status})

    def _raise_if_nothing_selected(self) -> None:
        if self.status["selection"]["best"] is not None:
            return
        competing = set(self.status["candidates"]) - set(self.status["reference_only"])
        ran = [
            r
            for c, r in self.status["candidates"].items()
            if c in competing and r["status"] in ("ok", "incorrect", "rejected")
        ]
        if ran and all(r["status"] in ("incorrect", "rejected") for r in ran):
            raise CorrectnessError(
                "every candidate that ran failed correctness: " + self.status["selection"]["reason"],
                hint=f"See `sextant inspect {self.ws}`; loosen --atol/--rtol only if the errors are acceptable.",
            )
        raise NothingRunnableError(
            f"no candidate could be selected: {self.status['selection']['reason']}",
            hint=f"See `sextant inspect {self.ws}` and the logs in {self.ws / 'logs'}.",
        )

    def _prune(self) -> None:
        """Remove artifacts and outputs no record refers to (left by older runs)."""
        used = {r.get("artifact") for r in self.status["steps"].values()}
        used |= {r.get("outputs") for r in self.status["candidates"].values()}
        for sub in ("artifacts", "outputs"):
            for path in (self.ws / sub).iterdir():
                if f"{sub}/{path.name}" not in used and not any(
                    u and u.startswith(f"{sub}/{path.name}/") for u in used
                ):
                    shutil.rmtree(path) if path.is_dir() else path.unlink()


def _outcome(result: ChildResult) -> dict[str, Any]:
    out: dict[str, Any] = {"status": "ok" if result.ok else "failed", "seconds": round(result.seconds, 3)}
    if not result.ok:
        if result.timed_out:
            out["cause"] = "timeout"
        elif result.error:
            out["cause"] = "exception"
        elif result.exitcode is not None and result.exitcode < 0:
            out["cause"] = "crash"
        else:
            out["cause"] = "lost"
        out["reason"] = result.reason()
        out["log_tail"] = result.log_tail
        if result.traceback:
            out["traceback"] = result.traceback
    return out


def _child_env() -> dict[str, str]:
    return {"SEXTANT_CACHE_DIR": str(cache_dir())}


def _preload(plan: Plan) -> list[str]:
    import importlib.util

    modules = {m.split(".", 1)[0] for s in plan.steps for m in s.spec.requires}
    modules |= {m.split(".", 1)[0] for c in plan.candidates for m in c.runner.requires}
    return sorted(m for m in modules if importlib.util.find_spec(m) is not None)


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)
