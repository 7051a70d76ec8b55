"""Every knob of one optimize run, validated once where it is built (the CLI or the API).

:data:`SETTINGS` names each ``sextant optimize`` flag that sets an option (the run file's keys are
the same names) and how its value is read; :meth:`OptimizeOptions.from_settings` is the one place
flag and run-file values are parsed. Defaults live in the dataclasses only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sextant.devices import cuda_unavailable_reason
from sextant.errors import UsageError
from sextant.generation.config import GENERATION_OBJECTIVES, GenerationConfig
from sextant.objective import PRESETS, Objective
from sextant.profiler import ProfilerConfig
from sextant.specs import PRECISIONS


@dataclass(frozen=True)
class OptimizeOptions:
    """Every knob of one optimize run (the CLI's options, the API's keyword arguments)."""

    workspace: Path | None = None
    name: str | None = None
    device: str = "auto"
    formats: tuple[str, ...] | None = None
    runners: tuple[str, ...] | None = None
    #: only artifacts built by these exporters and converters (every step of a chain named); the
    #: source's own candidates stay
    steps: tuple[str, ...] | None = None
    precisions: tuple[str, ...] = ("fp32",)
    step_timeout: float = 600.0
    fresh: bool = False
    #: load the model even when nothing the workspace's package depends on changed
    #: (:mod:`sextant.optimizer.unchanged`); cached results are still reused
    reload: bool = False
    #: neither read nor write this machine's history of winners (:mod:`sextant.history`): the
    #: candidates are measured in the plan's order and slow builds are judged by estimate only
    no_history: bool = False
    objective: str = "throughput"
    latency_budget_ms: float | None = None
    max_memory_mb: float | None = None
    min_throughput: float | None = None
    max_batch_size: int = 64
    atol: float | None = None
    rtol: float | None = None
    tolerances: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    source_options: Mapping[str, str] = field(default_factory=dict)
    unbatched: tuple[str, ...] = ()
    comparator: str = "allclose"
    #: let the reference hold NaN or Inf; candidates must then have them at the same positions
    #: (and signs). Without it a reference with NaN or Inf stops the run.
    allow_nan: bool = False
    #: set by ``precisions="auto"``: a reduced precision is planned only where the hardware computes
    #: it natively (:func:`sextant.devices.precision_unavailable_reason`)
    precision_auto: bool = False
    threads: int | None = None
    cutoff: float = 0.7
    #: rounds of the paired re-measurement of the best, its close runners-up and the baseline
    #: (:mod:`sextant.pairing`); 0 turns it off
    paired_rounds: int = 5
    search: str | None = None
    search_budget_s: float | None = None
    #: the whole run's seconds (see :mod:`sextant.optimizer.budget`); ``None``: no limit
    budget_s: float | None = None
    profiler: ProfilerConfig = field(default_factory=ProfilerConfig)
    #: ``forward`` (one forward pass), ``text-generation`` (a causal LM's generation loop, see
    #: :mod:`sextant.generation`), or ``auto``: text generation for a causal LM that generates
    task: str = "auto"
    generation: GenerationConfig = field(default_factory=GenerationConfig)

    def __post_init__(self) -> None:
        if self.precisions in ("auto", ("auto",)):  # "auto" is expanded here, once
            object.__setattr__(self, "precisions", PRECISIONS)
            object.__setattr__(self, "precision_auto", True)
        if self.objective not in PRESETS:
            raise UsageError(f"unknown objective {self.objective!r}", hint=f"Choose one of {', '.join(PRESETS)}.")
        self.goal()  # constraints are checked where they are given, not after the profiling
        if self.task not in TASKS:
            raise UsageError(f"unknown task {self.task!r}", hint=f"Choose one of {', '.join(TASKS)}.")
        if self.device not in ("auto", "cpu", "cuda"):
            raise UsageError(f"unknown device {self.device!r}", hint="Choose cpu, cuda or auto.")
        unknown = set(self.precisions) - set(PRECISIONS)
        if unknown:
            raise UsageError(f"unknown precision {sorted(unknown)}", hint=f"Known: {', '.join(PRECISIONS)}, auto.")
        if self.max_batch_size < 1:
            raise UsageError("--max-batch-size must be at least 1")
        if not 0.0 <= self.cutoff <= 1.0:
            raise UsageError(
                f"--cutoff {self.cutoff:g} is not a share between 0 and 1",
                hint="It stops a candidate under that share of the best throughput at the same batch size "
                "(0.7 by default; 0 never stops one).",
            )
        if self.paired_rounds < 0:
            raise UsageError(
                f"--paired-rounds {self.paired_rounds} must not be negative",
                hint="It is how many rounds of paired windows decide the pick and its speedup; 0 turns them off.",
            )
        if self.budget_s is not None and self.budget_s <= 0:
            raise UsageError(
                f"--budget-s {self.budget_s:g} must be positive",
                hint="It is the seconds the whole run may take; leave it out for no limit.",
            )
        if self.step_timeout <= 0:
            raise UsageError(
                f"--step-timeout {self.step_timeout:g} must be positive",
                hint="It is the seconds a step may go without progress before it is killed.",
            )

    def devices(self) -> list[str]:
        if self.device == "auto":
            return ["cpu"] if cuda_unavailable_reason() else ["cpu", "cuda"]
        return [self.device]

    def goal(self, max_batch: int | None = None) -> Objective:
        """The run's objective and constraints, over points up to ``max_batch``."""
        return Objective.named(
            self.objective,
            max_p99_ms=self.latency_budget_ms,
            min_throughput=self.min_throughput,
            max_memory_mb=self.max_memory_mb,
            max_batch=max_batch,
        )

    def generation_goal(self) -> Objective:
        """A text-generation run's objective: ``--objective`` read as its generation counterpart
        (throughput: output tokens/s; latency: inter-token latency), ``--max-itl-ms`` bounding
        the ITL p99 and ``--max-ttft-ms`` the time to first token; ``--min-throughput`` is tokens/s."""
        return Objective.named(
            GENERATION_OBJECTIVES[self.objective],
            max_p99_ms=self.generation.max_itl_ms,
            min_throughput=self.min_throughput,
            max_memory_mb=self.max_memory_mb,
            max_batch=self.generation.max_batch,
            max_ttft_ms=self.generation.max_ttft_ms,
        )

    def to_record(self) -> dict[str, Any]:
        """The options as JSON-able data, for status.json."""
        record = {k: v for k, v in self.__dict__.items() if k not in ("profiler", "generation")}
        record["profiler"] = self.profiler.to_dict()
        if self.task == "text-generation":  # a generation run's header records it in any case
            record["generation"] = self.generation.to_dict()
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in record.items()}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> OptimizeOptions:
        """Options from settings named like the ``sextant optimize`` flags (``max-batch-size`` or
        ``max_batch_size``), with the flags' strings (``"fp32,bf16"``, ``"x:1x8"``) or typed values
        (``["fp32", "bf16"]``, ``{"x": [1, 8]}``, numbers); a setting left out, or ``None``, keeps
        the dataclasses' default. This is the one place a flag or run-file value is parsed.
        """
        values: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {owner: {} for owner in NESTED}
        seen: dict[str, str] = {}
        for key, value in settings.items():
            setting = SETTINGS.get(setting_name(key))
            if setting is None:
                raise UsageError(f"unknown setting {key!r}", hint=f"Valid settings: {', '.join(SETTINGS)}.")
            if setting.flag in seen:
                raise UsageError(f"{seen[setting.flag]!r} and {key!r} are the same setting; give it once")
            seen[setting.flag] = key
            if value is None:
                continue
            owner, _, name = setting.field.rpartition(".")
            (nested[owner] if owner else values)[name] = setting.value(value)
        for owner, given in nested.items():
            if given:
                values[owner] = replace(NESTED[owner](), **given)
        return cls(**values)


#: the tasks ``--task`` names
TASKS = ("auto", "forward", "text-generation")
#: the options' nested settings objects, by field name (``profiler.window_s``)
NESTED: dict[str, type] = {"profiler": ProfilerConfig, "generation": GenerationConfig}


def setting_name(key: str) -> str:
    """A flag's or run-file key's canonical name: ``--max_batch_size`` → ``max-batch-size``."""
    return key.strip().removeprefix("--").replace("_", "-")


def _parse_text(flag: str, value: Any) -> str:
    if not isinstance(value, str):
        raise UsageError(f"--{flag} takes text, not {value!r}")
    return value


def _parse_path(flag: str, value: Any) -> Path:
    return value if isinstance(value, Path) else Path(_parse_text(flag, value))


def _parse_flag(flag: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"--{flag} is true or false, not {value!r}")
    return value


def _parse_not_flag(flag: str, value: Any) -> bool:
    return not _parse_flag(flag, value)


def _parse_number(flag: str, value: Any) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise UsageError(f"--{flag} takes a number, not {value!r}") from None


def _parse_integer(flag: str, value: Any) -> int:
    number = value if isinstance(value, str) else _parse_number(flag, value)
    try:
        if isinstance(number, float) and not number.is_integer():
            raise ValueError
        return int(number)
    except (TypeError, ValueError):
        raise UsageError(f"--{flag} takes a whole number, not {value!r}") from None


def _parse_integers(flag: str, value: Any) -> tuple[int, ...]:
    """``"32,128"`` or ``[32, 128]`` → ``(32, 128)``."""
    items = value if isinstance(value, (list, tuple)) else [value]
    parts = [p for item in items for p in (item.split(",") if isinstance(item, str) else [item])]
    return tuple(_parse_integer(flag, p.strip() if isinstance(p, str) else p) for p in parts if p != "")


def _items(flag: str, value: Any) -> list[str]:
    """A string, or a list of strings, as a list (a repeatable flag, or a TOML array)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise UsageError(f"--{flag} takes text or a list of texts, not {value!r}")
    return list(items)


def _parse_names(flag: str, value: Any) -> tuple[str, ...]:
    """``"fp32,bf16"`` or ``["fp32", "bf16"]`` → ``("fp32", "bf16")``."""
    return tuple(part.strip() for item in _items(flag, value) for part in item.split(",") if part.strip())


def _parse_shapes(flag: str, value: Any) -> dict[str, tuple[int, ...]]:
    """``["x:1x8"]`` (or one string) or a table ``{x = [1, 8]}`` → ``{"x": (1, 8)}``."""
    if isinstance(value, Mapping):
        items = [(name, dims, f"{name} = {dims!r}") for name, dims in value.items()]
    else:
        items = [(*item.rpartition(":")[::2], item) for item in _items(flag, value)]
    shapes = {}
    for name, dims, shown in items:
        try:
            if not name:
                raise ValueError
            if isinstance(dims, str):
                shapes[name] = tuple(int(d) for d in dims.lower().split("x"))
            elif isinstance(dims, (list, tuple)) and all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
                shapes[name] = tuple(dims)
            else:
                raise ValueError
        except ValueError:
            raise UsageError(
                f"--{flag} {shown!r} is not NAME:DxDxD",
                hint="For example --shape input:1x3x224x224, or shape = {input = [1, 3, 224, 224]} in a run file.",
            ) from None
    return shapes


def _parse_key_values(flag: str, value: Any) -> dict[str, str]:
    """``["signature=serving_default"]`` or a table ``{signature = "serving_default"}``."""
    if isinstance(value, Mapping):
        return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in value.items()}
    out = {}
    for item in _items(flag, value):
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--{flag} {item!r} is not KEY=VALUE", hint="For example signature=serving_default.")
        out[key.strip()] = text
    return out


def _parse_tolerances(flag: str, value: Any) -> dict[str, tuple[float, float]]:
    """``["logits:1e-3:1e-2"]`` or a table ``{logits = [1e-3, 1e-2]}`` → ``{"logits": (0.001, 0.01)}``."""
    if isinstance(value, Mapping):
        items = [
            ((name, *(bounds if isinstance(bounds, (list, tuple)) else [bounds])), f"{name} = {bounds!r}")
            for name, bounds in value.items()
        ]
    else:
        items = [(tuple(item.rsplit(":", 2)), item) for item in _items(flag, value)]
    out = {}
    for parts, shown in items:
        try:
            if len(parts) != 3 or not parts[0] or any(isinstance(p, bool) for p in parts[1:]):
                raise ValueError
            out[parts[0]] = (float(parts[1]), float(parts[2]))
        except (TypeError, ValueError):
            raise UsageError(
                f"--{flag} {shown!r} is not NAME:ATOL:RTOL",
                hint="For example --tolerance logits:1e-3:1e-3, or tolerance = {logits = [1e-3, 1e-3]} in a run file.",
            ) from None
    return out


@dataclass(frozen=True)
class Setting:
    """One ``sextant optimize`` flag (and run-file key): the field it sets and how its value is read.

    :param flag: the flag's long name without ``--``; the run file's key.
    :param field: the :class:`OptimizeOptions` field, or ``profiler.<field>`` of its ProfilerConfig.
    :param parse: ``(flag, value) -> field value``; raises :class:`UsageError` on a bad value.
    :param scale: the flag's value is the field's times this (``--window-ms`` sets seconds: 1000).
    """

    flag: str
    field: str
    parse: Callable[[str, Any], Any]
    scale: float = 1.0

    def value(self, given: Any) -> Any:
        """The field's value for a flag's or run-file value."""
        parsed = self.parse(self.flag, given)
        return parsed / self.scale if self.scale != 1.0 else parsed

    def default(self) -> Any:
        """The default, in the flag's terms (for help texts); ``None`` when there is none to show."""
        owner, _, name = self.field.rpartition(".")
        declared = next(f for f in fields(NESTED[owner] if owner else OptimizeOptions) if f.name == name)
        value = declared.default if declared.default_factory is MISSING else declared.default_factory()
        if value is MISSING or value is None or isinstance(value, (bool, Mapping)):
            return None
        if isinstance(value, tuple):
            return ",".join(map(str, value)) if value else None
        return value * self.scale if self.scale != 1.0 else value


#: every ``sextant optimize`` flag that sets an option, by long name (also the run file's keys)
SETTINGS: dict[str, Setting] = {
    s.flag: s
    for s in (
        Setting("workspace", "workspace", _parse_path),
        Setting("name", "name", _parse_text),
        Setting("device", "device", _parse_text),
        Setting("formats", "formats", _parse_names),
        Setting("runners", "runners", _parse_names),
        Setting("steps", "steps", _parse_names),
        Setting("precision", "precisions", _parse_names),
        Setting("shape", "shapes", _parse_shapes),
        Setting("source-option", "source_options", _parse_key_values),
        Setting("unbatched", "unbatched", _parse_names),
        Setting("step-timeout", "step_timeout", _parse_number),
        Setting("fresh", "fresh", _parse_flag),
        Setting("reload", "reload", _parse_flag),
        Setting("no-history", "no_history", _parse_flag),
        Setting("atol", "atol", _parse_number),
        Setting("rtol", "rtol", _parse_number),
        Setting("tolerance", "tolerances", _parse_tolerances),
        Setting("comparator", "comparator", _parse_text),
        Setting("allow-nan", "allow_nan", _parse_flag),
        Setting("objective", "objective", _parse_text),
        Setting("latency-budget-ms", "latency_budget_ms", _parse_number),
        Setting("max-memory-mb", "max_memory_mb", _parse_number),
        Setting("min-throughput", "min_throughput", _parse_number),
        Setting("max-batch-size", "max_batch_size", _parse_integer),
        Setting("threads", "threads", _parse_integer),
        Setting("batch-budget-s", "profiler.batch_budget_s", _parse_number),
        Setting("dense-sweep", "profiler.sparse", _parse_not_flag),
        Setting("cutoff", "cutoff", _parse_number),
        Setting("paired-rounds", "paired_rounds", _parse_integer),
        Setting("search", "search", _parse_text),
        Setting("budget-s", "budget_s", _parse_number),
        Setting("search-budget-s", "search_budget_s", _parse_number),
        Setting("window-ms", "profiler.window_s", _parse_number, scale=1000.0),
        Setting("task", "task", _parse_text),
        Setting("prompt-lengths", "generation.prompt_lengths", _parse_integers),
        Setting("new-tokens", "generation.new_tokens", _parse_integer),
        Setting("generation-batches", "generation.batch_sizes", _parse_integers),
        Setting("max-ttft-ms", "generation.max_ttft_ms", _parse_number),
        Setting("max-itl-ms", "generation.max_itl_ms", _parse_number),
    )
}
