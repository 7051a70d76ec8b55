"""What plugins contribute: small frozen dataclasses, data plus a lazily imported callable.

A spec names its callable as ``"package.module:function"`` and lists the modules it needs in
``requires``, so the catalog can say "unavailable: tensorrt not importable" without importing
anything (by each name's top-level package). A run's fork server imports each name once, for every
child it forks: naming the heavy module a job imports (``torch._dynamo``, seconds to import) saves
that import in each child. The callables' signatures are documented on each spec and in ``sextant.runtime``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sextant.errors import PluginError, UsageError

if TYPE_CHECKING:
    from sextant.signature import Signature

_NAME = re.compile(r"^[a-z0-9][a-z0-9._+-]*$")

DEVICES = ("cpu", "cuda")
#: Precisions from most to least exact; a chain's precision is its least exact step.
PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "int8", "int4")


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise PluginError(
            f"invalid {kind} name {name!r}",
            hint="Names are lowercase letters, digits and '.', '_', '+', '-', starting with a letter or digit.",
        )


def least_exact(*precisions: str) -> str:
    """The least exact of some precisions (``fp32`` if none)."""
    return max(precisions, key=PRECISIONS.index, default="fp32")


@dataclass(frozen=True, order=True)
class Format:
    """A kind of artifact (``onnx``, ``torchscript``, ...); a value object compared by name."""

    name: str

    def __post_init__(self) -> None:
        _check_name("format", self.name)

    def __str__(self) -> str:
        return self.name


def resolve(ref: str) -> Callable[..., Any]:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, _, attr = ref.partition(":")
    if not attr:
        raise PluginError(f"callable reference {ref!r} has no ':attribute' part")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise PluginError(f"{module_name} has no attribute {attr!r} (referenced as {ref!r})") from None


ParamKind = Literal["categorical", "linear", "exponential"]


@dataclass(frozen=True)
class Param:
    """One searchable option of a runner.

    ``categorical``: ``values`` lists the choices. ``linear`` / ``exponential``: ``values`` is
    ``(low, high)`` and the grid steps by one / doubles.

    ``thread_count``: the values are numbers of threads, 0 standing for as many as sextant gives the
    runner. A search on a run of ``threads`` threads tries only 0 and the counts below it (see
    :meth:`within`): a count at or above it repeats 0 or oversubscribes the cores the run measures on.
    """

    name: str
    kind: ParamKind
    values: tuple[Any, ...]
    default: Any
    description: str = ""
    devices: tuple[str, ...] | None = None  # None: matters on every device
    thread_count: bool = False

    def __post_init__(self) -> None:
        if self.kind != "categorical" and len(self.values) != 2:
            raise PluginError(f"param {self.name!r}: a {self.kind} param takes values=(low, high)")

    def grid(self) -> tuple[Any, ...]:
        """Every value of the dimension, in order."""
        if self.kind == "categorical":
            return self.values
        low, high = self.values
        out, value = [], low
        while value <= high:
            out.append(value)
            value = value + 1 if self.kind == "linear" else value * 2
        return tuple(out)

    def within(self, threads: int) -> Param:
        """The dimension as searched on a run of ``threads`` threads: a thread count keeps 0 and the
        counts below ``threads`` (the default too, whatever it is); any other param is unchanged."""
        if not self.thread_count or self.kind != "categorical":
            return self
        kept = tuple(v for v in self.values if v == 0 or v < threads or v == self.default)
        return replace(self, values=kept)


def _declared(owner: str, options: Sequence[Param], given: Mapping[str, Any]) -> dict[str, Any]:
    """``given``, each one of ``options``; an unknown option is a usage error."""
    unknown = set(given) - {p.name for p in options}
    if unknown:
        raise UsageError(
            f"{owner} has no option {', '.join(sorted(unknown))}",
            hint=f"Its options: {', '.join(sorted(p.name for p in options)) or 'none'}.",
        )
    return dict(given)


@dataclass(frozen=True)
class _Step:
    name: str
    consumes: Format
    produces: Format
    run: str
    requires: tuple[str, ...] = ()
    precision: str = "fp32"
    options: Mapping[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    check: str | None = None
    install: str = ""
    description: str = ""
    #: the step takes long to build (an engine compiled for a device): it is built only when it can
    #: pay, as a ``slow_build`` runner (:mod:`sextant.optimizer.learned`)
    slow_build: bool = False

    def __post_init__(self) -> None:
        _check_name("step", self.name)
        if self.precision not in PRECISIONS:
            raise PluginError(f"{self.name}: unknown precision {self.precision!r}; known: {', '.join(PRECISIONS)}")
        if self.device not in DEVICES:
            raise PluginError(f"{self.name}: unknown device {self.device!r}; known: {', '.join(DEVICES)}")


@dataclass(frozen=True)
class ExporterSpec(_Step):
    """Source model → artifact. ``consumes`` is the source format a loader produces.

    ``run`` names ``(request: sextant.runtime.StepRequest) -> Path``; it writes the artifact into
    ``request.output_dir`` and returns its path.
    """


@dataclass(frozen=True)
class ConverterSpec(_Step):
    """Artifact → artifact (simplification, precision conversion, compilation to an engine).

    ``run`` has the exporter's signature. A ``precision`` other than fp32 marks a reduced-precision
    conversion, planned only when the user allows that precision. A ``device`` other than ``cpu``
    marks a step that builds for that device (a TensorRT engine): it is planned only when the run
    targets the device, its artifact runs only there, and its cache key names the device's hardware.
    ``check`` optionally names a cheap ``(device: str) -> str | None``, as for runners.
    ``slow_build`` marks a step that takes long to build: it is built after the fast ones, and only
    when this machine's history or an estimate says it can pay, or ``--steps`` names it.
    """


def _check_candidates(kind: str, spec: RunnerSpec | GeneratorSpec) -> None:
    """A runner's or generator's devices, precisions and variants are ones sextant knows."""
    _check_name(kind, spec.name)
    for device in spec.devices:
        if device not in DEVICES:
            raise PluginError(f"{kind} {spec.name}: unknown device {device!r}; known: {', '.join(DEVICES)}")
    for precision in spec.precisions:
        if precision not in PRECISIONS:
            raise PluginError(f"{kind} {spec.name}: unknown precision {precision!r}")
    known = {p.name for p in spec.options}
    for variant in spec.variants:
        unknown = set(variant) - known
        if unknown:
            raise PluginError(f"{kind} {spec.name}: variant sets undeclared options {sorted(unknown)}")


def _on(options: Sequence[Param], device: str) -> tuple[Param, ...]:
    """The options that matter on ``device`` (a param's ``devices``; ``None``: every device)."""
    return tuple(p for p in options if p.devices is None or device in p.devices)


def _option_sets(defaults: Mapping[str, Any], variants: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The defaults, then each variant merged over them, without repeats; a variant's options that
    are not in ``defaults`` (they do not matter on the device) are left out."""
    sets: list[dict[str, Any]] = []
    for variant in ({}, *variants):
        merged = {**defaults, **{k: v for k, v in variant.items() if k in defaults}}
        if merged not in sets:
            sets.append(merged)
    return sets


@dataclass(frozen=True)
class RunnerSpec:
    """Loads one artifact format on a device and answers ``infer(batch) -> outputs``.

    ``load`` names ``(request: sextant.runtime.RunnerRequest) -> sextant.runtime.Runner``.
    ``options`` is the searchable space; ``variants`` are option sets measured even without a
    search (each merged over the defaults). ``check`` optionally names a cheap function
    ``(device: str) -> str | None`` that returns why the runner is unavailable (it must not import
    heavy libraries). ``reference`` marks the runner that computes reference outputs for its format.
    ``install`` says how to get what ``requires`` names, shown when it is missing (steps have it too).
    ``pickled`` names a cheap ``(artifact: Path) -> str | None`` that says what loading the artifact
    unpickles (runs code from), or ``None`` when nothing; a runner whose ``load`` unpickles must
    declare it, so that loading a candidate from a package needs the caller's explicit trust
    (``CandidateView.load(trust_source=True)``). The optimize run itself loads the user's own model
    and needs none. ``slow_build`` marks a runner whose load compiles for seconds (``torch.compile``):
    its candidates are evaluated after every other candidate with default options, so they are
    built once the rivals they must beat are measured (and screened against them), and a
    ``--budget-s`` run does not start one when less is left than its last build took.
    """

    name: str
    consumes: Format
    load: str
    devices: tuple[str, ...] = ("cpu",)
    precisions: tuple[str, ...] = ("fp32",)
    options: tuple[Param, ...] = ()
    variants: tuple[Mapping[str, Any], ...] = ()
    requires: tuple[str, ...] = ()
    check: str | None = None
    reference: bool = False
    install: str = ""
    description: str = ""
    pickled: str | None = None
    slow_build: bool = False

    def __post_init__(self) -> None:
        _check_candidates("runner", self)

    def defaults(self, device: str) -> dict[str, Any]:
        """Each option that matters on ``device`` at its default: the options a candidate there
        records (a CUDA-only option is no option of a CPU candidate)."""
        return {p.name: p.default for p in self.space(device)}

    def space(self, device: str) -> tuple[Param, ...]:
        """The options worth searching on ``device``: those that matter there."""
        return _on(self.options, device)

    def option_sets(self, device: str) -> list[dict[str, Any]]:
        """The defaults on ``device``, then each variant merged over them, without repeats."""
        return _option_sets(self.defaults(device), self.variants)

    def parse_options(self, given: Mapping[str, Any], device: str) -> dict[str, Any]:
        """The defaults on ``device`` overlaid with ``given``; an unknown option is a usage error, a
        declared one that does not matter on ``device`` is left out."""
        defaults = self.defaults(device)
        declared = _declared(f"runner {self.name}", self.options, given)
        return {**defaults, **{k: v for k, v in declared.items() if k in defaults}}


@dataclass(frozen=True)
class GeneratorSpec:
    """Loads one artifact format on a device as a generation loop: a causal LM's prefill over a
    prompt, then one decode step per token against a KV cache (see ``sextant.runtime.Generator``).

    ``load`` names ``(request: sextant.runtime.GeneratorRequest) -> sextant.runtime.Generator``.
    ``build`` names ``(request: sextant.runtime.StepRequest) -> Path``, optionally: what the
    generator loads, built from the source artifact (an ONNX graph with past key values) into
    ``request.output_dir``, in an isolated child, once per source and build code (cached); without
    it the generator loads the source artifact itself. ``reference`` marks the generator whose
    greedy continuation every other is judged against (teacher forcing). ``sequence_batching``:
    the generator it loads may be a :class:`sextant.runtime.SequenceBatcher` (where the model
    allows) or a :class:`sextant.runtime.StreamBatcher`, so a deployer can say, before loading
    anything, whether a streaming model can decode several requests together. ``options``,
    ``variants``, ``check``, ``install``, ``pickled`` and ``slow_build`` mean what they mean for a
    :class:`RunnerSpec`.
    """

    name: str
    consumes: Format
    load: str
    build: str | None = None
    devices: tuple[str, ...] = ("cpu",)
    precisions: tuple[str, ...] = ("fp32",)
    options: tuple[Param, ...] = ()
    variants: tuple[Mapping[str, Any], ...] = ()
    requires: tuple[str, ...] = ()
    check: str | None = None
    reference: bool = False
    install: str = ""
    description: str = ""
    pickled: str | None = None
    slow_build: bool = False
    sequence_batching: bool = False  # last: the fields before it keep their positions

    def __post_init__(self) -> None:
        _check_candidates("generator", self)

    def defaults(self, device: str) -> dict[str, Any]:
        """Each option that matters on ``device`` at its default (see :meth:`RunnerSpec.defaults`)."""
        return {p.name: p.default for p in _on(self.options, device)}

    def option_sets(self, device: str) -> list[dict[str, Any]]:
        """The defaults on ``device``, then each variant merged over them, without repeats."""
        return _option_sets(self.defaults(device), self.variants)


@dataclass(frozen=True)
class ComparatorSpec:
    """Judges a candidate's outputs against the reference outputs.

    ``run`` names ``(reference, candidate, tolerance: sextant.compare.Tolerance) ->
    sextant.compare.Verdict`` for one batch, each a mapping of output name to numpy array.
    """

    name: str
    run: str
    requires: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("comparator", self.name)


@dataclass(frozen=True)
class SearchStrategySpec:
    """Proposes the next configurations to measure in a parameter space.

    ``create`` names ``(space: Sequence[Param], seed: int, workspace: Path | None, name: str) ->
    SearchStrategy``: ``workspace`` is where a strategy may keep state of its own (a study), ``name``
    identifies what is searched; see ``sextant.runtime.SearchStrategy``. ``options`` declares the
    strategy's own keyword options (their defaults are ``create``'s): a caller passes what its user
    set by name (:meth:`parse_options`), knowing nothing of the strategy.
    """

    name: str
    create: str
    requires: tuple[str, ...] = ()
    description: str = ""
    options: tuple[Param, ...] = ()

    def __post_init__(self) -> None:
        _check_name("search strategy", self.name)

    def parse_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """``given`` checked against :attr:`options`: an unknown one is a usage error."""
        return _declared(f"search strategy {self.name}", self.options, given)


@dataclass(frozen=True)
class SourceModel:
    """A model recognised by a loader plugin, ready to be written as the source artifact.

    ``write(folder)`` writes the model into an empty folder in ``format`` (which the format's
    reference runner and exporters read in child processes) and returns the artifact's path.
    ``signature`` is the model's own declaration when it has one (ONNX, SavedModel), else ``None``.
    ``fingerprint()`` returns a stable content key (weights and code) where the written bytes are
    not stable (pickles with random ids); without it the written artifact's bytes are hashed.
    ``options`` are the ``--source-option`` settings the loader used (they join the source's key).
    ``notes`` say what the loader assumed or how it writes the model where that is not the plain
    way (a model rebuilt in each process, inputs it will not feed): the run records them.
    ``vocab_size`` and ``max_positions`` describe a causal LM source (a generation run's): the
    token ids its prompts may hold and the longest sequence (prompt and generated) it takes.
    ``probe(batch, signature)``, where the loader holds the live model, calls it in this process (the
    user's) on one batch and raises what it raises; it is used only to explain a reference that
    failed where sextant ran it (in a child, from what ``write`` wrote), never to compute a result.
    ``imports`` are the modules that reading the artifact imports (those of a pickled model's
    classes: ``transformers.models.bert.modeling_bert``): the fork server imports those of installed
    packages once, rather than every child that loads the model importing them anew.
    """

    format: Format
    name: str
    write: Callable[[Path], Path]
    signature: Signature | None = None
    description: str = ""
    fingerprint: Callable[[], str] | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    vocab_size: int | None = None
    max_positions: int | None = None
    probe: Callable[[Mapping[str, Any], Signature], object] | None = None
    imports: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rejection:
    """A loader's answer for a model it looked at and cannot use (see ``sextant_load_source``).

    ``claimed`` (the default): the model is of the loader's kind but unusable (a ``.pt`` file that
    holds a state dict, a ``.keras`` file that is no Keras archive), so no other loader is asked
    and the run stops with ``reason`` (what the model is and why it cannot be used) and ``hint``
    (what to give instead), naming the plugin. Not claimed: the model is not the loader's, and
    ``reason`` says what the loader looked for (a folder with no ``saved_model.pb``); the other
    loaders are asked, and the reason is shown only when none of them recognises the model.
    """

    reason: str
    hint: str = ""
    claimed: bool = True


OptionKind = Literal["text", "int", "bool", "path", "ints"]
_OPTION = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class DeployOption:
    """One option of a deployer. ``sextant deploy TARGET`` shows it as ``--name-with-dashes`` (a
    ``bool`` as ``--name/--no-name``; ``ints``: comma-separated integers, ``4,8``) and passes its value,
    parsed to its kind, as ``DeployRequest.options[name]``; an option not given is left out, and
    the deployer decides. ``short``: a one-letter alias (``-r``); ``required``: it must be given."""

    name: str
    kind: OptionKind = "text"
    default: Any = None
    help: str = ""
    short: str | None = None
    required: bool = False

    def __post_init__(self) -> None:
        if not _OPTION.match(self.name):
            raise PluginError(f"invalid deployer option name {self.name!r}", hint="Use lowercase snake_case.")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


#: the target of a deployer that does not name its own: ``--target``
TARGET = DeployOption("target", required=True, help="Where to deploy.")


@dataclass(frozen=True)
class FormatSpec:
    """What a plugin knows of a format beyond its name (one spec per format, its ``name``).

    ``canonical_hash`` names ``(artifact: pathlib.Path) -> str``: a fingerprint of the artifact's
    canonical form, equal for two artifacts only when they compute the same thing, whatever else
    differs (an ONNX file's producer, doc strings, node and value names). Two steps whose
    artifacts have the same fingerprint are duplicates (:mod:`sextant.optimizer.duplicates`), as
    are two with the same bytes. It runs in the step's child, where the artifact was written, and
    must be cheap (well under a second for tens of MB); when it raises, only the bytes count.
    Never equal for artifacts that may compute differently: a false duplicate loses a candidate.
    """

    format: Format
    canonical_hash: str | None = None
    requires: tuple[str, ...] = ()
    install: str = ""
    description: str = ""

    @property
    def name(self) -> str:
        return self.format.name


@dataclass(frozen=True)
class PartWrapperSpec:
    """A framework's wrapper for the parts of a pipeline: what ``sextant.Module(part)`` returns.

    ``wrapper`` names the class (``"package.module:Class"``), imported only when a user wraps a
    part; it implements :class:`sextant.pipelines.parts.Part` for ``optimize_pipeline``.
    ``framework`` says whose modules it wraps (``torch``).
    """

    name: str
    wrapper: str
    framework: str
    requires: tuple[str, ...] = ()
    install: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        _check_name("part wrapper", self.name)


@dataclass(frozen=True)
class DeployerSpec:
    """Writes a package's candidate to a serving target (a Triton model repository, ...).

    ``deploy`` names ``(request: sextant.runtime.DeployRequest) -> sextant.runtime.Deployment``.
    ``formats`` lists the artifact formats it serves natively and ``runners`` the runners it serves
    through sextant's own runner (empty: any); ``sextant plugins`` shows both. ``sextant deploy NAME
    PACKAGE`` takes ``target`` (``DeployRequest.target``: ``--repository`` for Triton) and
    ``options`` (``DeployRequest.options``) besides the options every target shares (``--candidate``,
    ``--name``, ``--trust-source``, ``--force``); ``sextant.serving.OPTIONS`` are the serving
    overrides a target that derives its settings from the profile offers.
    """

    name: str
    deploy: str
    formats: tuple[Format, ...] = ()
    runners: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    install: str = ""
    description: str = ""
    target: DeployOption = TARGET
    options: tuple[DeployOption, ...] = ()

    def __post_init__(self) -> None:
        _check_name("deployer", self.name)
        names = [self.target.name, *(o.name for o in self.options)]
        clash = sorted({n for n in names if names.count(n) > 1} | (set(names) & _SHARED_OPTIONS))
        if clash:
            raise PluginError(
                f"deployer {self.name!r}: option {', '.join(clash)} is declared twice or is one every deployer shares",
                hint=f"The shared ones: {', '.join(sorted(_SHARED_OPTIONS))}.",
            )


#: what ``sextant deploy`` passes every deployer in :class:`~sextant.runtime.DeployRequest` itself
_SHARED_OPTIONS = {"package", "candidate", "name", "trust_source", "force", "json", "debug"}


Spec = (
    ExporterSpec
    | ConverterSpec
    | RunnerSpec
    | GeneratorSpec
    | ComparatorSpec
    | SearchStrategySpec
    | DeployerSpec
    | FormatSpec
)
