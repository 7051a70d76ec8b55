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
    measurement: {interval_ms: 1000, stability: 10, max_trials: 10}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sextant.api import Objective, UsageError

from sextant_triton.perf import Windows

STRATEGIES = ("brute", "quick", "optuna")


@dataclass(frozen=True)
class Range:
    """Values of one dimension: ``min``..``max`` (stepping by one, or doubling), or the listed values."""

    low: int
    high: int
    values: tuple[Any, ...] | None = None

    @classmethod
    def parse(cls, key: str, given: Any, default: Range) -> Range:
        if given is None:
            return default
        if isinstance(given, Mapping):
            _known(key, given, ("min", "max"))
            low, high = int(given.get("min", default.low)), int(given.get("max", default.high))
            if not 0 <= low <= high:
                raise UsageError(f"{key}: min {low} and max {high} must satisfy 0 <= min <= max")
            return cls(low, high)
        if isinstance(given, (list, tuple)) and given:
            return cls(min(given), max(given), tuple(given))
        if isinstance(given, int) and not isinstance(given, bool):
            return cls(given, given, (given,))
        raise UsageError(f"{key}: give {{min: N, max: M}}, a list of values or one value, not {given!r}")


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
    windows: Windows = Windows()
    concurrent: bool = False
    budget_s: float | None = None
    max_measurements: int | None = None
    optuna: Mapping[str, Any] = field(default_factory=dict)
    storage: str | None = None  # measurements (and the Optuna study): any SQLAlchemy URL
    study: str | None = None
    instance_kind: str | None = None  # None: from the device (KIND_GPU only with a GPU)
    trust_source: bool = False  # a package's pickled best may load in Triton (--trust-source; not read from YAML)

    def __post_init__(self) -> None:
        if self.search not in STRATEGIES:
            raise UsageError(f"unknown search {self.search!r}", hint=f"Choose one of {', '.join(STRATEGIES)}.")
        if self.launch_mode not in ("local", "remote"):
            raise UsageError(f"unknown launch_mode {self.launch_mode!r}", hint="Choose local or remote.")
        if self.launch_mode == "remote" and not self.url:
            raise UsageError("launch_mode remote needs the server's gRPC address", hint="Give --url HOST:PORT.")
        if self.top_n < 0 or self.batch_size < 1:
            raise UsageError("top_n must be >= 0 and batch_size >= 1")


#: YAML keys → how to read them
_SIMPLE = ("search", "launch_mode", "url", "top_n", "batch_size", "concurrent", "budget_s", "max_measurements")
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


def _objective(given: Any, constraints: Mapping[str, Any] | None) -> Objective:
    constraints = constraints or {}
    _known("constraints", constraints, ("max_p99_ms", "min_throughput", "max_memory_mb"))
    if isinstance(given, Mapping):
        return Objective(dict(given), name="custom", **constraints)
    return Objective.named(given or "throughput", **constraints)


def from_mapping(data: Mapping[str, Any], base: AnalyzeSettings | None = None) -> AnalyzeSettings:
    """Settings from an ``analyze.yaml``'s content (keys checked), over ``base``."""
    _known("analyze.yaml", data, _KEYS)
    base = base or AnalyzeSettings()
    changes: dict[str, Any] = {k: data[k] for k in _SIMPLE if k in data}
    if "models" in data:
        changes["models"] = _models(data["models"])
    if "objective" in data or "constraints" in data:
        changes["objective"] = _objective(data.get("objective"), data.get("constraints"))
    for key in ("max_batch_size", "instance_count"):
        changes[key] = Range.parse(key, data.get(key), getattr(base, key))
    if data.get("concurrency") is not None:
        changes["concurrency"] = Range.parse("concurrency", data["concurrency"], Range(1, 64))
    for key, kind in (("dynamic_batching", bool), ("queue_delay_us", int), ("request_rate", float)):
        if key in data:
            values = data[key] if isinstance(data[key], list) else [data[key]]
            changes[key] = tuple(kind(v) for v in values)
    if "preferred_batch_sizes" in data:
        changes["preferred_batch_sizes"] = tuple(
            tuple(int(v) for v in sizes) for sizes in data["preferred_batch_sizes"]
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
    for key in ("storage", "study", "instance_kind"):
        if key in data:
            changes[key] = data[key]
    try:
        return replace(base, **changes)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"analyze.yaml: {exc}") from exc


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
    return from_mapping(data, base)
