"""What an analysis searches and how it measures: :class:`AnalyzeSettings`, from an ``analyze.yaml``
and the command line (the command line wins). Every key is checked: an unknown one is named with
the valid ones.

.. code-block:: yaml

    models: [classifier]            # or {classifier: {composing_models: [net], shapes: {x: [8]}}}
    search: quick                   # brute | quick | optuna
    launch_mode: local              # local | remote (then url: host:port of the gRPC endpoint)
    objective: throughput           # or {throughput: 1, p99_ms: 0.5}
    constraints: {max_p99_ms: 20}   # also min_throughput, max_memory_mb
    max_batch_size: {min: 1, max: 16}   # exponential; a list gives the values
    instance_count: {min: 1, max: 3}    # linear
    dynamic_batching: [true, false]
    queue_delay_us: [0]
    concurrency: {min: 1, max: 32}      # exponential; omitted: derived as 2 x batch x instances
    request_rate: [100, 200]            # request-rate mode instead of concurrency
    model_config_parameters:            # any config field as a list: the cartesian product
      dynamic_batching: {max_queue_delay_microseconds: [0, 500]}
    top_n: 3
    paired_rounds: 3                # the best re-measured A B A B with the default before a gain is claimed
    measurement: {interval_ms: 1000, stability: 10, max_trials: 10}
    model_type: llm                 # a streaming generation model (see sextant_triton.analyze.llm)
    llm: {input_tokens_mean: 32, input_tokens_stddev: 8, output_tokens: 16}
    # with model_type llm: objective ttft | itl | tokens-per-second,
    # constraints: {max_ttft_ms: 200, max_itl_ms: 20, min_output_tokens_per_s: 100}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sextant.api import Objective, UsageError

from sextant_triton.analyze.llm import CONSTRAINTS, GENERATION_OBJECTIVES, MODEL_TYPES, LlmLoad

from sextant_triton.perf import Windows

STRATEGIES = ("brute", "quick", "optuna")
#: the analysis's defaults for strategies' own options (a serving point costs more to measure than a
#: runner option); the YAML's section named after the strategy (``optuna:``) overrides them
STRATEGY_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "brute": {"min_gain": 0.05, "patience": 4},
    "optuna": {"min_trials": 4, "max_trials": 100, "patience": 10},
}


#: the least value of each searched dimension: a batch, an instance and a request in flight
FLOORS = {"max_batch_size": 1, "instance_count": 1, "concurrency": 1}


@dataclass(frozen=True)
class Range:
    """Values of one dimension: ``min``..``max`` (stepping by one, or doubling), or the listed values."""

    low: int
    high: int
    values: tuple[Any, ...] | None = None

    @classmethod
    def parse(cls, key: str, given: Any, default: Range) -> Range:
        """``given`` as the YAML wrote it; every value (a bound or a listed one) an integer of at
        least the key's floor (:data:`FLOORS`), else a :class:`UsageError` naming the key, the
        value and the rule."""
        if given is None:
            return default
        floor = FLOORS.get(key, 0)
        if isinstance(given, Mapping):
            _known(key, given, ("min", "max"))
            low = _integer(key, given.get("min", default.low), floor, "min {}")
            high = _integer(key, given.get("max", default.high), floor, "max {}")
            if low > high:
                raise UsageError(f"{key}: min {low} and max {high} must satisfy {floor} <= min <= max")
            return cls(low, high)
        if isinstance(given, (list, tuple)) and given:
            values = tuple(_integer(key, v, floor, f"{{}} in {list(given)}") for v in given)
            return cls(min(values), max(values), values)
        if isinstance(given, int) and not isinstance(given, bool):
            value = _integer(key, given, floor)
            return cls(value, value, (value,))
        raise UsageError(f"{key}: give {{min: N, max: M}}, a list of values or one value, not {given!r}")


def _integer(key: str, value: Any, floor: int, shown: str = "{}") -> int:
    """``value`` if it is an integer of at least ``floor``; else the error names the key, the value
    (as ``shown`` places it) and the rule."""
    if _is_int(value) and value >= floor:
        return value
    raise UsageError(
        f"{key}: {shown.format(repr(value))} is not allowed: every value of {key} must be an integer >= {floor}"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _values(key: str, given: Any, rule: str, accept: Callable[[Any], bool], kind: type) -> tuple[Any, ...]:
    """The listed (or single) values of ``key``, each one that ``accept``s, as ``kind``; else the
    error names the key, the value and ``rule``."""
    values = given if isinstance(given, list) else [given]
    for value in values:
        if not accept(value):
            shown = f"{value!r} in {values}" if len(values) > 1 else repr(value)
            raise UsageError(f"{key}: {shown} is not allowed: {rule}")
    return tuple(kind(v) for v in values)


#: listed YAML values: the rule they follow, its check, and their type
_LISTS: dict[str, tuple[str, Callable[[Any], bool], type]] = {
    "dynamic_batching": ("give true or false", lambda v: isinstance(v, bool), bool),
    "queue_delay_us": ("every delay must be an integer >= 0 (microseconds)", lambda v: _is_int(v) and v >= 0, int),
    "request_rate": (
        "every rate must be a number > 0 (requests per second)",
        lambda v: (_is_int(v) or isinstance(v, float)) and v > 0,
        float,
    ),
}


@dataclass(frozen=True)
class ModelSettings:
    """One model to analyze. ``composing_models``: the models a BLS model calls (an ensemble's are
    read from its config); ``shapes``: input dims for perf_analyzer where the config has ``-1``."""

    name: str
    composing_models: tuple[str, ...] = ()
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class AnalyzeSettings:
    models: tuple[ModelSettings, ...] = ()
    search: str = "quick"
    launch_mode: str = "local"
    url: str | None = None
    objective: Objective = field(default_factory=Objective)
    max_batch_size: Range = Range(1, 16)
    instance_count: Range = Range(1, 3)
    dynamic_batching: tuple[bool, ...] = (True, False)
    queue_delay_us: tuple[int, ...] = (0,)
    preferred_batch_sizes: tuple[tuple[int, ...], ...] = ((),)
    concurrency: Range | None = None  # None: derived as 2 x batch x instances
    request_rate: tuple[float, ...] = ()
    batch_size: int = 1
    model_config_parameters: Mapping[str, Any] = field(default_factory=dict)
    top_n: int = 3
    paired_rounds: int = 3  # rounds of the interleaved re-measurement (analyze.confirm); 0 or 1: none
    windows: Windows = Windows()
    concurrent: bool = False
    budget_s: float | None = None
    max_measurements: int | None = None
    optuna: Mapping[str, Any] = field(default_factory=dict)
    storage: str | None = None  # measurements (and the Optuna study): any SQLAlchemy URL
    study: str | None = None
    instance_kind: str | None = None  # None: from the device (KIND_GPU only with a GPU)
    trust_source: bool = False  # a package's pickled best may load in Triton (--trust-source; not read from YAML)
    candidate: str | None = None  # the package's candidate to deploy (--candidate; not read from YAML)
    model_type: str = "default"  # "llm": a streaming generation model, measured by tokens (analyze.llm)
    llm: LlmLoad = LlmLoad()

    def search_options(self) -> dict[str, Any]:
        """The chosen strategy's options: :data:`STRATEGY_DEFAULTS`, then its YAML section's."""
        section = {"optuna": self.optuna}.get(self.search, {})
        return {**STRATEGY_DEFAULTS.get(self.search, {}), **{k: v for k, v in section.items() if k != "seed"}}

    def __post_init__(self) -> None:
        if self.search not in STRATEGIES:
            raise UsageError(f"unknown search {self.search!r}", hint=f"Choose one of {', '.join(STRATEGIES)}.")
        if self.launch_mode not in ("local", "remote"):
            raise UsageError(f"unknown launch_mode {self.launch_mode!r}", hint="Choose local or remote.")
        if self.launch_mode == "remote" and not self.url:
            raise UsageError("launch_mode remote needs the server's gRPC address", hint="Give --url HOST:PORT.")
        if self.top_n < 0 or self.batch_size < 1 or self.paired_rounds < 0:
            raise UsageError("top_n and paired_rounds must be >= 0 and batch_size >= 1")
        for key, floor in FLOORS.items():  # ranges built in Python pass the same rule as the YAML's
            given: Range | None = getattr(self, key)
            for value in () if given is None else given.values or (given.low, given.high):
                _integer(key, value, floor)
        if self.budget_s is not None and not self.budget_s > 0:
            raise UsageError(f"budget_s {self.budget_s:g} is not allowed: the time budget must be > 0 seconds")
        if self.max_measurements is not None and self.max_measurements < 1:
            raise UsageError(f"max_measurements {self.max_measurements} is not allowed: it must be >= 1")
        if self.model_type not in MODEL_TYPES:
            raise UsageError(f"unknown model_type {self.model_type!r}", hint=f"Choose one of {', '.join(MODEL_TYPES)}.")
        generation = self.objective.name in GENERATION_OBJECTIVES or self.objective.max_ttft_ms is not None
        if generation and self.model_type != "llm":
            raise UsageError(
                f"the objective {self.objective.name!r} and the time-to-first-token budget measure generation",
                hint="Add --model-type llm (model_type: llm in the YAML) for a streaming generation model.",
            )


#: YAML keys → how to read them
_SIMPLE = (
    "search",
    "launch_mode",
    "url",
    "top_n",
    "paired_rounds",
    "batch_size",
    "concurrent",
    "budget_s",
    "max_measurements",
    "model_type",
)
_KEYS = (
    *_SIMPLE,
    "models",
    "objective",
    "constraints",
    "max_batch_size",
    "instance_count",
    "dynamic_batching",
    "queue_delay_us",
    "preferred_batch_sizes",
    "concurrency",
    "request_rate",
    "model_config_parameters",
    "measurement",
    "optuna",
    "storage",
    "study",
    "instance_kind",
    "llm",
)


def _known(where: str, given: Mapping[str, Any], valid: Sequence[str]) -> None:
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise UsageError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}",
            hint=f"Valid keys: {', '.join(valid)}.",
        )


def _models(given: Any) -> tuple[ModelSettings, ...]:
    if given is None:
        return ()
    if isinstance(given, str):
        given = [given]
    if isinstance(given, Mapping):
        out = []
        for name, extra in given.items():
            extra = extra or {}
            _known(f"models.{name}", extra, ("composing_models", "shapes"))
            shapes = {k: tuple(int(d) for d in v) for k, v in (extra.get("shapes") or {}).items()}
            out.append(ModelSettings(str(name), tuple(extra.get("composing_models") or ()), shapes))
        return tuple(out)
    return tuple(ModelSettings(str(name)) for name in given)


def _objective(given: Any, constraints: Mapping[str, Any] | None, model_type: str = "default") -> Objective:
    constraints = dict(constraints or {})
    generation = tuple(CONSTRAINTS) if model_type == "llm" else ()
    _known("constraints", constraints, ("max_p99_ms", "min_throughput", "max_memory_mb", *generation))
    for key in generation:  # max_itl_ms: the inter-token latency's p99, and so on (analyze.llm)
        if key in constraints:
            field_name = CONSTRAINTS[key]
            if field_name in constraints and field_name != key:
                raise UsageError(
                    f"constraints: give {key} or {field_name}, not both (with model_type llm they are one)"
                )
            constraints[field_name] = constraints.pop(key)
    if isinstance(given, Mapping):
        return Objective(dict(given), name="custom", **constraints)
    return Objective.named(given or "throughput", **constraints)


def from_mapping(
    data: Mapping[str, Any], base: AnalyzeSettings | None = None, source: str = "analyze.yaml"
) -> AnalyzeSettings:
    """Settings from an ``analyze.yaml``'s content (keys checked), over ``base``; ``source``: the
    file they came from, as errors name it."""
    _known(source, data, _KEYS)
    base = base or AnalyzeSettings()
    changes: dict[str, Any] = {k: data[k] for k in _SIMPLE if k in data}
    if "models" in data:
        changes["models"] = _models(data["models"])
    if "objective" in data or "constraints" in data:
        model_type = data.get("model_type", base.model_type)
        changes["objective"] = _objective(data.get("objective"), data.get("constraints"), model_type)
    for key in ("max_batch_size", "instance_count"):
        changes[key] = Range.parse(key, data.get(key), getattr(base, key))
    if data.get("concurrency") is not None:
        changes["concurrency"] = Range.parse("concurrency", data["concurrency"], Range(1, 64))
    for key, (rule, accept, kind) in _LISTS.items():
        if key in data:
            changes[key] = _values(key, data[key], rule, accept, kind)
    if "preferred_batch_sizes" in data:
        given = data["preferred_batch_sizes"]
        if not isinstance(given, list) or not all(isinstance(sizes, list) for sizes in given):
            raise UsageError(
                f"preferred_batch_sizes: {given!r} is not allowed: give a list of lists of batch sizes",
                hint="For example [[], [4, 8]]: no preferred size, or 4 and 8.",
            )
        rule = "every batch size must be an integer >= 1"
        changes["preferred_batch_sizes"] = tuple(
            _values("preferred_batch_sizes", sizes, rule, lambda v: _is_int(v) and v >= 1, int) if sizes else ()
            for sizes in given
        )
    if "model_config_parameters" in data:
        changes["model_config_parameters"] = dict(data["model_config_parameters"] or {})
    if "measurement" in data:
        given = data["measurement"] or {}
        _known("measurement", given, [f.name for f in fields(Windows)])
        changes["windows"] = Windows(**{**base.windows.__dict__, **given})
    if "optuna" in data:
        given = data["optuna"] or {}
        _known("optuna", given, ("share", "min_trials", "max_trials", "patience", "seed"))
        changes["optuna"] = dict(given)
    if "llm" in data:
        changes["llm"] = LlmLoad.parse(data["llm"])
    for key in ("storage", "study", "instance_kind"):
        if key in data:
            changes[key] = data[key]
    try:
        return replace(base, **changes)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{source}: {exc}") from exc


def read_file(path: Path, base: AnalyzeSettings | None = None) -> AnalyzeSettings:
    """Settings from an ``analyze.yaml`` file."""
    import yaml

    if not path.is_file():
        raise UsageError(f"{path}: no such file", hint="Give -f the path of an analyze.yaml.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise UsageError(f"{path}: the top level must be a mapping of settings")
    try:
        return from_mapping(data, base, source=str(path))
    except UsageError as exc:  # a nested key's error names the file too
        if exc.message.startswith(str(path)):
            raise
        raise UsageError(f"{path}: {exc.message}", hint=exc.hint) from exc
