"""The plan: every path from the source through exporters and converters to runners.

Planning reads specs only; nothing heavy is imported. Each artifact node is a step (or the source
itself); each (artifact, runner, device, precision, option set) that is available here is a
candidate. What cannot be planned is listed with the reason, so the report can say why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sextant.plugins import Catalog, Contribution, availability
from sextant.specs import ConverterSpec, ExporterSpec, Format, GeneratorSpec, RunnerSpec, least_exact

SOURCE = "source"
MAX_CHAIN = 2  # an exporter and at most one converter: longer chains multiply candidates for little gain


@dataclass(frozen=True)
class PlannedStep:
    """One export or conversion; ``parent`` is the step it reads (``None``: the source)."""

    id: str
    kind: str
    spec: ExporterSpec | ConverterSpec
    plugin: str
    parent: str | None
    precision: str
    device: str = "cpu"

    @property
    def format(self) -> Format:
        return self.spec.produces


@dataclass(frozen=True)
class PlannedCandidate:
    """One thing to check and profile: an artifact on a runner, device, precision and options."""

    id: str
    step: str | None
    format: Format
    runner: RunnerSpec
    plugin: str
    device: str
    precision: str
    options: dict[str, Any]

    @property
    def default_options(self) -> bool:
        """Whether it runs its runner's default options (those that matter on its device)."""
        return self.options == self.runner.defaults(self.device)


def with_options(candidate: PlannedCandidate, options: dict[str, Any]) -> PlannedCandidate:
    """The same artifact, runner, device and precision with other runner options."""
    base = candidate.id[: candidate.id.rindex("@")]
    if "[" in base:
        base = base[: base.index("[")]
    options = candidate.runner.parse_options(options, candidate.device)
    label = option_label(candidate.runner, options, candidate.device)
    return replace(candidate, id=f"{base}{label}@{candidate.device}", options=options)


@dataclass
class Plan:
    source: Format
    steps: list[PlannedStep] = field(default_factory=list)
    candidates: list[PlannedCandidate] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: candidates planned only to compute the reference, left out of the selection by a filter
    reference_only: set[str] = field(default_factory=set)

    def step(self, step_id: str) -> PlannedStep:
        return next(s for s in self.steps if s.id == step_id)

    def baseline(self) -> PlannedCandidate | None:
        """The source on its reference runner, CPU, fp32, default options."""
        for candidate in self.candidates:
            if (
                candidate.step is None
                and candidate.runner.reference
                and candidate.device == "cpu"
                and candidate.precision == "fp32"
                and candidate.default_options
            ):
                return candidate
        return None


def option_label(spec: RunnerSpec | GeneratorSpec, options: dict[str, Any], device: str) -> str:
    """The options that differ from the spec's defaults on ``device``, as a candidate id shows them
    (``[intra_op_threads=1]``; empty for the defaults)."""
    defaults = spec.defaults(device)
    changed = {k: v for k, v in options.items() if defaults.get(k) != v}
    return "" if not changed else "[" + ",".join(f"{k}={v}" for k, v in sorted(changed.items())) + "]"


def make_plan(
    catalog: Catalog,
    source: Format,
    *,
    devices: Sequence[str],
    precisions: Sequence[str],
    formats: Sequence[str] | None = None,
    runners: Sequence[str] | None = None,
    steps: Sequence[str] | None = None,
    native: Callable[[str, str], str | None] | None = None,
) -> Plan:
    """Build the plan for a source format (see module doc).

    :param native: ``(precision, device) -> reason``: why a reduced precision is not planned on a
        device (no native support); ``None`` plans every allowed precision (``--precision auto``
        passes :func:`sextant.devices.precision_unavailable_reason`)."""
    plan = Plan(source)
    # artifact nodes: (step id or None, format, chain precision, names used in the chain, device
    # the chain was built for: "cpu" unless a step builds for a device, like a TensorRT engine)
    nodes: list[tuple[str | None, Format, str, frozenset[str], str]] = [(None, source, "fp32", frozenset(), "cpu")]
    frontier = list(nodes)
    while frontier:
        parent_id, fmt, precision, used, built_for = frontier.pop(0)
        # the source takes exporters and, when it is a file format itself, converters too
        kinds = ("exporter", "converter") if parent_id is None else ("converter",)
        for contribution in [c for kind in kinds for c in catalog.of(kind)]:
            spec = contribution.spec
            kind = contribution.kind
            if spec.consumes != fmt or spec.name in used or len(used) >= MAX_CHAIN:
                continue
            if spec.precision != "fp32" and precision != "fp32":
                continue  # one precision reduction per chain: fp16 of an int8 model is no candidate
            step_id = spec.name if parent_id is None else f"{parent_id}+{spec.name}"
            if spec.device != "cpu" and built_for not in ("cpu", spec.device):
                continue  # a chain builds for one device at most
            if spec.device != "cpu" and spec.device not in devices:
                reason: str | None = f"builds for {spec.device} (add --device {spec.device})"
            else:
                reason = availability(spec)
            if reason is None and spec.precision not in precisions:
                reason = f"{spec.precision} not allowed (add it to --precision)"
            if reason is None and native is not None and spec.precision != "fp32":
                reasons = [native(spec.precision, d) for d in (devices if spec.device == "cpu" else [spec.device])]
                reason = reasons[0] if all(reasons) else None  # built for one device at least
            if reason:
                plan.skipped.append((step_id, reason))
                continue
            chain_precision = least_exact(precision, spec.precision)
            device = spec.device if spec.device != "cpu" else built_for
            plan.steps.append(
                PlannedStep(step_id, kind, spec, _plugin(contribution), parent_id, chain_precision, device)
            )
            node = (step_id, spec.produces, chain_precision, used | {spec.name}, device)
            nodes.append(node)
            frontier.append(node)
    # the reference is always computed on the CPU, whichever devices compete
    planned_devices = list(dict.fromkeys(["cpu", *devices]))
    for step_id, fmt, precision, _, built_for in nodes:
        node_devices = planned_devices if built_for == "cpu" else [built_for]
        for contribution in catalog.of("runner"):
            _add_candidates(plan, contribution, step_id, fmt, precision, node_devices, precisions, native)
    _filter(plan, formats, runners, steps, devices)
    return plan


def _plugin(contribution: Contribution) -> str:
    return f"{contribution.plugin.distribution} {contribution.plugin.version}"


def _add_candidates(
    plan: Plan,
    contribution: Contribution,
    step_id: str | None,
    fmt: Format,
    chain_precision: str,
    devices: Sequence[str],
    precisions: Sequence[str],
    native: Callable[[str, str], str | None] | None,
) -> None:
    runner: RunnerSpec = contribution.spec
    if runner.consumes != fmt:
        return
    artifact = step_id or SOURCE
    for device in devices:
        reason = availability(runner, device)
        if reason:
            plan.skipped.append((f"{artifact}:{runner.name}@{device}", reason))
            continue
        for runner_precision in runner.precisions:
            if runner_precision not in precisions:
                continue
            if runner_precision != "fp32" and chain_precision != "fp32":
                continue  # one precision reduction per chain: bf16 on an int8 artifact is its int8 candidate again
            precision = least_exact(chain_precision, runner_precision)
            suffix = "" if runner_precision == "fp32" else f"/{runner_precision}"
            unavailable = native(precision, device) if native is not None else None
            if unavailable:
                plan.skipped.append((f"{artifact}:{runner.name}{suffix}@{device}", unavailable))
                continue
            for options in runner.option_sets(device):
                cid = f"{artifact}:{runner.name}{suffix}{option_label(runner, options, device)}@{device}"
                plan.candidates.append(
                    PlannedCandidate(cid, step_id, fmt, runner, _plugin(contribution), device, precision, options)
                )


def _filter(
    plan: Plan,
    formats: Sequence[str] | None,
    runners: Sequence[str] | None,
    steps: Sequence[str] | None,
    devices: Sequence[str],
) -> None:
    """Keep candidates of the chosen formats/runners/steps/devices (and the baseline), then the steps they need."""
    baseline = plan.baseline()
    keep = []
    for candidate in plan.candidates:
        wanted = (
            (formats is None or candidate.format.name in formats)
            and (runners is None or candidate.runner.name in runners)
            and (steps is None or candidate.step is None or all(n in steps for n in _chain(plan, candidate.step)))
            and candidate.device in devices
        )
        if wanted or candidate is baseline:
            keep.append(candidate)
        if candidate is baseline and not wanted:
            plan.reference_only.add(candidate.id)
    plan.candidates = keep
    needed: set[str] = set()
    for candidate in keep:
        step_id = candidate.step
        while step_id is not None:
            needed.add(step_id)
            step_id = plan.step(step_id).parent
    plan.steps = [s for s in plan.steps if s.id in needed]


def _chain(plan: Plan, step_id: str) -> list[str]:
    """The exporter's and converters' names of a step's chain, source first."""
    names = []
    step: str | None = step_id
    while step is not None:
        planned = plan.step(step)
        names.append(planned.spec.name)
        step = planned.parent
    return names[::-1]
