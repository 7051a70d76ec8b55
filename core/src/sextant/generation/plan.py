"""The generation candidates: every installed generator that loads the source's format, on each
device, precision and option set allowed and available here (what is not, with the reason).

Planning reads specs only. A generator with a ``build`` runs on the artifact its build writes
(one build step per generator and precision, named ``<generator>-build``, and
``<generator>-build-<precision>`` for a reduced precision, whose build is given
``options["precision"]``); the others on the source itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sextant.planner import SOURCE, PlannedStep, option_label
from sextant.plugins import Catalog, availability
from sextant.specs import ExporterSpec, Format, GeneratorSpec


@dataclass(frozen=True)
class GenerationCandidate:
    """One generator on one device, precision and option set."""

    id: str
    spec: GeneratorSpec
    plugin: str
    device: str
    precision: str
    options: dict[str, Any]

    @property
    def step(self) -> str | None:
        """The build step whose artifact it loads, or ``None``: the source."""
        return build_step(self.spec, self.precision)

    @property
    def default_options(self) -> bool:
        """Whether it runs its generator's default options (those that matter on its device)."""
        return self.options == self.spec.defaults(self.device)

    @property
    def runner(self) -> GeneratorSpec:  # named as a single-model candidate's, for the plan's views
        return self.spec

    @property
    def format(self) -> Format:
        return self.spec.consumes


@dataclass
class GenerationPlan:
    """The candidates, the build steps they need (a generator's ``build`` as an export step of the
    source), and what cannot be planned here with the reason."""

    source: Format
    steps: list[PlannedStep] = field(default_factory=list)
    candidates: list[GenerationCandidate] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def step(self, step_id: str) -> PlannedStep:
        return next(s for s in self.steps if s.id == step_id)

    def reference(self) -> GenerationCandidate | None:
        """The reference generator on the CPU, fp32, default options."""
        for c in self.candidates:
            if c.spec.reference and c.device == "cpu" and c.precision == "fp32" and c.default_options:
                return c
        return None


def build_step(spec: GeneratorSpec, precision: str) -> str | None:
    """The id of the build step ``spec`` loads at ``precision``, or ``None``: it loads the source."""
    if not spec.build:
        return None
    return f"{spec.name}-build" if precision == "fp32" else f"{spec.name}-build-{precision}"


def make_generation_plan(
    catalog: Catalog,
    fmt: Format,
    *,
    devices: Sequence[str],
    precisions: Sequence[str],
    generators: Sequence[str] | None = None,
) -> GenerationPlan:
    """Every generator candidate for a source of format ``fmt``; the reference generator on the CPU
    is planned whatever ``generators`` and ``devices`` say (it computes the reference)."""
    plan = GenerationPlan(fmt)
    for contribution in catalog.of("generator"):
        spec: GeneratorSpec = contribution.spec
        if spec.consumes != fmt:
            continue
        plugin = f"{contribution.plugin.distribution} {contribution.plugin.version}"
        wanted = generators is None or spec.name in generators
        for device in dict.fromkeys(["cpu", *devices]):
            is_reference_slot = spec.reference and device == "cpu"
            if not (wanted and device in devices) and not is_reference_slot:
                continue
            reason = availability(spec, device)
            if reason:
                plan.skipped.append((f"{build_step(spec, 'fp32') or SOURCE}:{spec.name}@{device}", reason))
                continue
            for precision in spec.precisions:
                if precision not in precisions:
                    continue
                artifact = build_step(spec, precision) or SOURCE
                suffix = "" if precision == "fp32" else f"/{precision}"
                for options in spec.option_sets(device):
                    if not wanted or device not in devices:  # only the reference itself
                        if precision != "fp32" or options != spec.defaults(device):
                            continue
                    cid = f"{artifact}:{spec.name}{suffix}{option_label(spec, options, device)}@{device}"
                    plan.candidates.append(GenerationCandidate(cid, spec, plugin, device, precision, options))
    for candidate in plan.candidates:
        step_id, spec = candidate.step, candidate.spec
        if step_id is not None and all(s.id != step_id for s in plan.steps):
            options = {} if candidate.precision == "fp32" else {"precision": candidate.precision}
            build = ExporterSpec(
                step_id, spec.consumes, Format(spec.name), run=spec.build or "", requires=spec.requires, options=options
            )
            plan.steps.append(PlannedStep(step_id, "exporter", build, candidate.plugin, None, candidate.precision))
    return plan
