"""The serving space of a model: which configuration fields are searched, and how a point of the
space becomes the model configurations the server loads.

A *unit* is what the client sends requests to: one model, or an ensemble / a BLS model together
with the models it calls (their configurations searched with it, their names prefixing their
dimensions: ``net.instances``). Several units analyzed concurrently search the joint space (each
unit's dimensions prefixed by its name).

Dimensions of a model that batches: ``max_batch_size`` (doubling), ``dynamic_batching`` and
``queue_delay_us`` / ``preferred_batch_sizes`` where more than one value is given, ``instances``
(stepping by one). Composing models keep their batch size (the ensemble's or the caller's batch
must fit) and search the rest. ``model_config_parameters`` from the YAML replace the automatic
dimensions of the analyzed model with the fields listed (the cartesian product, as in Model
Analyzer's manual mode). The client load is ``concurrency`` (doubling) or ``request_rate`` when
given, else derived per point as 2 x max_batch_size x instances.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sextant.api import Param

from sextant_triton.analyze.model import ModelInfo, read_model
from sextant_triton.analyze.settings import AnalyzeSettings, ModelSettings, Range
from sextant_triton.perf import Load

#: a point of the space: each searched dimension's value (``net.instances``: 2, ``concurrency``: 8);
#: a measured point is :class:`sextant.records.Point`
Coordinates = dict[str, Any]
#: the most concurrency a derived load asks for
DERIVED_CONCURRENCY_CAP = 64


def _exponential(name: str, rng: Range, default: int) -> Param:
    if rng.values is not None:
        values = tuple(sorted(set(rng.values) | {default}))
        return Param(name, "categorical", values, default)
    grid = Param(name, "exponential", (max(rng.low, 1), rng.high), default).grid()
    if default not in grid:
        return Param(name, "categorical", tuple(sorted({*grid, default})), default)
    return Param(name, "exponential", (max(rng.low, 1), rng.high), default)


def _linear(name: str, rng: Range, default: int) -> Param:
    if rng.values is not None or not rng.low <= default <= rng.high:
        values = rng.values or tuple(range(rng.low, rng.high + 1))
        return Param(name, "categorical", tuple(sorted({*values, default})), default)
    return Param(name, "linear", (rng.low, rng.high), default)


def _flatten(prefix: str, given: Mapping[str, Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for key, value in given.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(path + ".", value))
        else:
            out[path] = list(value) if isinstance(value, list) else [value]
    return out


def _get(config: Mapping[str, Any], path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _set(config: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _instances(config: Mapping[str, Any]) -> int:
    groups = config.get("instance_group") or [{}]
    return sum(int(g.get("count", 1)) for g in groups)


@dataclass(frozen=True)
class ServedModel:
    """What the client sends requests to, with the models whose configurations are searched."""

    top: ModelInfo
    composing: tuple[ModelInfo, ...]
    settings: ModelSettings

    @property
    def name(self) -> str:
        return self.top.name

    @property
    def models(self) -> tuple[ModelInfo, ...]:
        """The composing models first: they load before the model that calls them."""
        return (*self.composing, self.top)

    @property
    def content(self) -> str:
        return "+".join(m.content[:16] for m in self.models)


def read_served_model(repository: Path, given: ModelSettings) -> ServedModel:
    top = read_model(repository, given.name)
    names = top.steps if top.is_ensemble else given.composing_models
    return ServedModel(top, tuple(read_model(repository, n) for n in names), given)


class Space:
    """The searched dimensions of one or more units, and the configurations each point loads."""

    def __init__(self, units: Sequence[ServedModel], settings: AnalyzeSettings, kind: str | None) -> None:
        self.units = tuple(units)
        self.settings = settings
        self.kind = kind
        self.joint = len(self.units) > 1
        self.params: list[Param] = []
        self.manual: dict[str, list[Any]] = {}  # manual dimensions' config paths
        for unit in self.units:
            for model in unit.models:
                self.params += self._model_params(unit, model)
        self.load_params = self._load_params()
        self.params += self.load_params

    # -- dimensions --------------------------------------------------------------------------------

    def _prefix(self, unit: ServedModel, model: ModelInfo) -> str:
        parts = ([unit.name] if self.joint else []) + ([model.name] if model is not unit.top else [])
        return "".join(p + "." for p in parts)

    def _model_params(self, unit: ServedModel, model: ModelInfo) -> list[Param]:
        s, prefix, cfg = self.settings, self._prefix(unit, model), model.config
        if model is unit.top and s.model_config_parameters:
            flat = _flatten("", s.model_config_parameters)
            params = []
            for path, values in flat.items():
                current = _get(cfg, path)
                default = current if current in values else values[0]
                params.append(Param(prefix + "config." + path, "categorical", tuple(values), default))
            return params
        if model.is_ensemble:
            return []
        params = []
        if model.batching:
            batcher = cfg.get("dynamic_batching")
            if model is unit.top:
                params.append(_exponential(prefix + "max_batch_size", s.max_batch_size, int(cfg["max_batch_size"])))
            dynamic = batcher is not None
            params.append(
                Param(
                    prefix + "dynamic_batching",
                    "categorical",
                    tuple(dict.fromkeys((dynamic, *s.dynamic_batching))),
                    dynamic,
                )
            )
            delay = int((batcher or {}).get("max_queue_delay_microseconds", 0))
            if len(set(s.queue_delay_us) | {delay}) > 1:
                values = tuple(sorted(set(s.queue_delay_us) | {delay}))
                params.append(Param(prefix + "queue_delay_us", "categorical", values, delay))
            preferred = tuple(int(v) for v in (batcher or {}).get("preferred_batch_size", []))
            if len(set(s.preferred_batch_sizes) | {preferred}) > 1:
                values = tuple(dict.fromkeys((preferred, *s.preferred_batch_sizes)))
                params.append(Param(prefix + "preferred_batch_sizes", "categorical", values, preferred))
        params.append(_linear(prefix + "instances", s.instance_count, _instances(cfg)))
        return [p for p in params if len(p.grid()) > 1 or p.name.endswith(("max_batch_size", "instances"))]

    def _load_params(self) -> list[Param]:
        s = self.settings
        if s.request_rate:
            return [Param("request_rate", "categorical", tuple(s.request_rate), s.request_rate[0])]
        if s.concurrency is not None:
            return [_exponential("concurrency", s.concurrency, s.concurrency.low or 1)]
        return []

    def defaults(self) -> Coordinates:
        return {p.name: p.default for p in self.params}

    def size(self) -> int:
        total = 1
        for p in self.params:
            total *= len(p.grid())
        return total

    # -- a point's configurations and load --------------------------------------------------------

    def configs(self, point: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every model's configuration at ``point``, composing models first (the load order)."""
        out = []
        for unit in self.units:
            for model in unit.models:
                out.append(self._config(model, self._values(unit, model, point)))
        return out

    def _values(self, unit: ServedModel, model: ModelInfo, point: Mapping[str, Any]) -> dict[str, Any]:
        """``model``'s own values at ``point``, unprefixed (another model's keep a dot in their rest)."""
        prefix = self._prefix(unit, model)
        own = {k[len(prefix) :]: v for k, v in point.items() if k.startswith(prefix)}
        return {k: v for k, v in own.items() if "." not in k or k.startswith("config.")}

    def _config(self, model: ModelInfo, values: Mapping[str, Any]) -> dict[str, Any]:
        config = copy.deepcopy(dict(model.config))
        for key, value in values.items():
            if key.startswith("config."):
                _set(config, key[len("config.") :], value)
        if "max_batch_size" in values:
            config["max_batch_size"] = int(values["max_batch_size"])
        groups = config.get("instance_group") or [{"kind": "KIND_CPU"}]
        kind = self.kind or groups[0].get("kind", "KIND_CPU")
        if "instances" in values:
            config["instance_group"] = [{"kind": kind, "count": int(values["instances"])}]
        elif not model.is_ensemble and config.get("instance_group"):
            config["instance_group"] = [{**g, "kind": kind} for g in groups]
        if "dynamic_batching" in values:
            if values["dynamic_batching"]:
                batcher = config.setdefault("dynamic_batching", {})
                if "queue_delay_us" in values:
                    batcher["max_queue_delay_microseconds"] = str(int(values["queue_delay_us"]))
                if "preferred_batch_sizes" in values:
                    batcher["preferred_batch_size"] = [int(v) for v in values["preferred_batch_sizes"]]
            else:
                config.pop("dynamic_batching", None)
        largest = int(config.get("max_batch_size", 0))
        batcher = config.get("dynamic_batching")
        if largest > 0 and batcher and batcher.get("preferred_batch_size"):
            # Triton refuses a preferred size above max_batch_size: the deployed ones are clipped
            kept = [int(v) for v in batcher["preferred_batch_size"] if int(v) <= largest]
            if kept:
                batcher["preferred_batch_size"] = kept
            else:
                batcher.pop("preferred_batch_size")
        warmups = [w for w in config.get("model_warmup", []) if int(w.get("batch_size", 1)) <= max(largest, 1)]
        if warmups:
            config["model_warmup"] = warmups
        else:
            config.pop("model_warmup", None)
        return config

    def load(self, unit: ServedModel, point: Mapping[str, Any]) -> Load:
        """The client load on ``unit`` at ``point``."""
        s = self.settings
        if "request_rate" in point:
            return Load(None, float(point["request_rate"]), s.batch_size)
        if "concurrency" in point:
            return Load(int(point["concurrency"]), None, s.batch_size)
        values = self._values(unit, unit.top, point)
        batch = int(values.get("max_batch_size", unit.top.config.get("max_batch_size", 1)) or 1)
        instances = int(values.get("instances", _instances(unit.top.config)))
        return Load(min(2 * batch * instances, DERIVED_CONCURRENCY_CAP), None, s.batch_size)

    def describe(self, point: Mapping[str, Any]) -> str:
        """A point as a short label: the values that differ from the defaults (``default`` if none)."""
        defaults = self.defaults()
        changed = [f"{k}={_short(v)}" for k, v in point.items() if _same(defaults.get(k)) != _same(v)]
        return ", ".join(changed) or "default"


def _same(value: Any) -> Any:
    """A value as stored points hold it (JSON turns tuples into lists)."""
    return list(value) if isinstance(value, tuple) else value


def _short(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


def config_json(config: Mapping[str, Any]) -> str:
    """A configuration as the repository API's ``config`` parameter."""
    return json.dumps(config, sort_keys=True)
