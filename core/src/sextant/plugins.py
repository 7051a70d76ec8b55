"""Plugin discovery and the catalog of everything the installed plugins contribute.

Plugins are found through entry points in the group ``sextant``. Nothing happens at import time:
:func:`load_catalog` builds a fresh plugin manager when called (the CLI calls it inside ``main()``).

Environment:

- ``SEXTANT_PLUGINS=torch,onnx`` loads only the named entry points (an allow-list).
- ``SEXTANT_PLUGIN_MODULES=pkg.mod,...`` registers extra plugin modules by import path (tests,
  plugin development).
- ``SEXTANT_TRACE_PLUGINS=1`` traces every hook call to stderr.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from sextant import hookspecs
from sextant.devices import unavailable_reason
from sextant.errors import ModelLoadError, PluginError, UsageError
from sextant.specs import (
    ComparatorSpec,
    ConverterSpec,
    DeployerSpec,
    ExporterSpec,
    FormatSpec,
    GeneratorSpec,
    Rejection,
    RunnerSpec,
    PartWrapperSpec,
    SearchStrategySpec,
    SourceModel,
    Spec,
    resolve,
)

ENTRY_POINT_GROUP = "sextant"
ENV_ALLOW = "SEXTANT_PLUGINS"
ENV_MODULES = "SEXTANT_PLUGIN_MODULES"
ENV_TRACE = "SEXTANT_TRACE_PLUGINS"

#: contribution kind → (collecting hook, spec class)
KINDS: dict[str, tuple[str, type]] = {
    "exporter": ("sextant_register_exporters", ExporterSpec),
    "converter": ("sextant_register_converters", ConverterSpec),
    "runner": ("sextant_register_runners", RunnerSpec),
    "generator": ("sextant_register_generators", GeneratorSpec),
    "comparator": ("sextant_register_comparators", ComparatorSpec),
    "search_strategy": ("sextant_register_search_strategies", SearchStrategySpec),
    "deployer": ("sextant_register_deployers", DeployerSpec),
    "part_wrapper": ("sextant_register_part_wrappers", PartWrapperSpec),
    "format": ("sextant_register_formats", FormatSpec),
}


@dataclass(frozen=True)
class PluginInfo:
    """One plugin: its entry-point name, distribution and version; ``error`` if it failed to load."""

    name: str
    distribution: str
    version: str
    error: str | None = None


@dataclass(frozen=True)
class Contribution:
    """A spec together with the plugin that contributed it."""

    kind: str
    spec: Any
    plugin: PluginInfo

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class Catalog:
    """Every plugin and contribution known in this process."""

    manager: pluggy.PluginManager
    plugins: list[PluginInfo]
    contributions: list[Contribution] = field(default_factory=list)

    def of(self, kind: str) -> list[Contribution]:
        return [c for c in self.contributions if c.kind == kind]

    def get(self, kind: str, name: str) -> Contribution:
        for contribution in self.of(kind):
            if contribution.name == name:
                return contribution
        known = ", ".join(c.name for c in self.of(kind)) or "none installed"
        raise UsageError(f"no {kind.replace('_', ' ')} named {name!r}", hint=f"Known: {known}.")

    def canonical_hashes(self) -> dict[str, str]:
        """Format name → the ``canonical_hash`` callable its :class:`FormatSpec` names, for the
        formats whose plugin gives one and can run here (the others' artifacts compare by bytes)."""
        return {
            c.spec.format.name: c.spec.canonical_hash
            for c in self.of("format")
            if c.spec.canonical_hash and availability(c.spec) is None
        }

    def reference_runner(self, fmt: Any) -> RunnerSpec | None:
        """The runner that computes reference outputs for artifacts of ``fmt``."""
        for contribution in self.of("runner"):
            if contribution.spec.consumes == fmt and contribution.spec.reference:
                return contribution.spec
        return None

    def load_source(
        self,
        model: object,
        name: str | None = None,
        options: Mapping[str, str] | None = None,
        *,
        origin: str | None = None,
        task: str = "forward",
    ) -> SourceModel:
        """Ask the loader plugins to recognise ``model`` (a path or an in-memory object), one at a
        time in pluggy's call order, up to the first source model or claimed :class:`Rejection`.

        :param origin: what the user wrote for an in-memory model (``model.py:make_model``), for
            the messages.
        :param task: what the model is loaded for (``forward``, ``text-generation`` or ``auto``;
            see ``sextant_load_source``).
        """
        options = dict(options or {})
        what = _what(model, origin)
        if isinstance(model, Path):
            _check_path(model)
        asked: list[str] = []
        looked: list[str] = []
        source = None
        for plugin_name, ask in self._loaders():
            answer = ask(model=model, name=name, options=options, task=task)
            asked.append(plugin_name)
            if isinstance(answer, Rejection):
                if answer.claimed:
                    raise ModelLoadError(
                        f"{what} is {answer.reason}",
                        hint=" ".join(filter(None, [answer.hint, f"(Recognised by the {plugin_name} plugin.)"])),
                    )
                looked.append(f"{plugin_name}: {answer.reason}")
            elif isinstance(answer, SourceModel):
                source = answer
                break
            elif answer is not None:
                raise PluginError(
                    f"plugin {plugin_name} returned {type(answer).__name__} from sextant_load_source, "
                    "expected SourceModel, Rejection or None"
                )
        if source is None:
            raise ModelLoadError(
                f"no installed plugin recognises {_describe(model) if isinstance(model, Path) else what}"
                + "".join(f"; {reason}" for reason in looked),
                hint=" ".join(
                    [
                        f"Loaders asked: {', '.join(asked) or 'none'}.",
                        (
                            "Give a model file or folder one of them reads, or a factory as "
                            "path/to/model.py:make_model that returns the model object;"
                            if isinstance(model, Path)
                            else "A factory (file.py:name) must return the model object itself, of a framework "
                            "one of them loads;"
                        ),
                        "for another framework install its plugin (`sextant plugins` lists what is installed).",
                    ]
                ),
            )
        unused = sorted(set(options) - set(source.options))
        if unused:
            raise UsageError(
                f"--source-option {', '.join(unused)}: the loader of {source.description or source.format} "
                "does not take this option",
                hint=f"Options it used: {', '.join(sorted(source.options)) or 'none'}.",
            )
        return source

    def _loaders(self) -> list[tuple[str, Callable[..., Any]]]:
        """Each plugin's ``sextant_load_source`` alone, in the order pluggy would call them."""
        hook_name = "sextant_load_source"
        impls = getattr(self.manager.hook, hook_name).get_hookimpls()
        plugins = self.manager.get_plugins()
        return [
            (
                impl.plugin_name,
                self.manager.subset_hook_caller(hook_name, remove_plugins=[p for p in plugins if p is not impl.plugin]),
            )
            for impl in reversed(impls)
        ]


def _what(model: object, origin: str | None) -> str:
    if isinstance(model, Path):
        return str(model)
    kind = "None" if model is None else f"an object of type {type(model).__qualname__}"
    return f"{origin} ({kind})" if origin else kind


def _describe(path: Path) -> str:
    if not path.is_dir():
        return f"the file {path}"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    return f"the folder {path} (holding {', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"


def _check_path(path: Path) -> None:
    """A path that no loader can take whatever its suffix: missing, an empty file, an empty folder."""
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file or folder", hint="Check the model's path.")
    if path.is_file() and path.stat().st_size == 0:
        raise ModelLoadError(
            f"{path} is an empty file (0 bytes): it holds no model",
            hint="It was probably not written to the end; save the model again.",
        )
    if path.is_dir() and not any(path.iterdir()):
        raise ModelLoadError(
            f"{path} is an empty folder: it holds no model",
            hint="Give the model's file, or the folder the model was saved into.",
        )


def availability(spec: Spec, device: str | None = None) -> str | None:
    """Why ``spec`` cannot be used here (on ``device``, for runners), or ``None`` when it can.

    Cheap: modules are looked up, not imported; devices are probed from driver files.
    """
    for module in spec.requires:
        top = module.split(".", 1)[0]
        if importlib.util.find_spec(top) is None:
            install = getattr(spec, "install", "")
            return f"{top} not importable" + (f" ({install})" if install else "")
    if isinstance(spec, (RunnerSpec, GeneratorSpec)):
        if device is not None and device not in spec.devices:
            return f"does not run on {device}"
        reasons = [_device_reason(spec, d) for d in ((device,) if device else spec.devices)]
        if all(reasons):
            return "; ".join(dict.fromkeys(r for r in reasons if r))
    elif isinstance(spec, (ExporterSpec, ConverterSpec)):
        return _device_reason(spec, spec.device)
    return None


def installed(distribution: str) -> bool:
    """Whether a distribution is installed (package metadata only; nothing is imported): for
    ``check`` functions that tell builds apart, like onnxruntime from onnxruntime-gpu."""
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _device_reason(spec: RunnerSpec | GeneratorSpec | ExporterSpec | ConverterSpec, device: str) -> str | None:
    reason = unavailable_reason(device)
    if reason is None and spec.check is not None:
        reason = resolve(spec.check)(device)
    return reason


def _distribution_of(module: Any) -> tuple[str, str]:
    top = getattr(module, "__name__", type(module).__module__).split(".", 1)[0]
    dists = importlib.metadata.packages_distributions().get(top, [])
    if dists:
        return dists[0], importlib.metadata.version(dists[0])
    return top, "unknown"


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def load_catalog(
    *, allow: Iterable[str] | None = None, extra_modules: Iterable[str] = (), entry_points: bool = True
) -> Catalog:
    """Discover plugins, register them, and collect their contributions.

    A plugin that fails to import is recorded with its error, not raised. Two contributions of one
    kind with the same name raise :class:`PluginError` naming both distributions.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    if os.environ.get(ENV_TRACE, "") not in ("", "0"):
        manager.trace.root.setwriter(sys.stderr.write)
        manager.enable_tracing()
    allowed = list(allow) if allow is not None else _env_list(ENV_ALLOW)
    from sextant import __version__, builtin

    manager.register(builtin, name="builtin")
    plugins: list[PluginInfo] = [PluginInfo("builtin", "sextant", __version__)]
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if allowed is not None and ep.name not in allowed:
                continue
            dist = ep.dist.name if ep.dist else "unknown"
            version = ep.dist.version if ep.dist else "unknown"
            try:
                module = ep.load()
                manager.register(module, name=ep.name)
            except Exception as exc:  # a broken plugin must not take the CLI down
                plugins.append(PluginInfo(ep.name, dist, version, f"{type(exc).__name__}: {exc}"))
                continue
            plugins.append(PluginInfo(ep.name, dist, version))
    for module_name in [*extra_modules, *(_env_list(ENV_MODULES) or [])]:
        if manager.get_plugin(module_name) is not None:
            continue
        try:
            module = importlib.import_module(module_name)
            manager.register(module, name=module_name)
        except Exception as exc:
            plugins.append(PluginInfo(module_name, module_name, "unknown", f"{type(exc).__name__}: {exc}"))
            continue
        plugins.append(PluginInfo(module_name, *_distribution_of(module)))
    catalog = Catalog(manager, plugins)
    for info in plugins:
        if info.error is None:
            catalog.contributions.extend(_collect(manager, info))
    _check_unique(catalog.contributions)
    return catalog


def _collect(manager: pluggy.PluginManager, info: PluginInfo) -> list[Contribution]:
    plugin = manager.get_plugin(info.name)
    others = [p for p in manager.get_plugins() if p is not plugin]
    found = []
    for kind, (hook_name, spec_class) in KINDS.items():
        caller = manager.subset_hook_caller(hook_name, remove_plugins=others)
        for specs in caller():
            for spec in specs or ():
                if not isinstance(spec, spec_class):
                    raise PluginError(
                        f"plugin {info.name} ({info.distribution}) returned {type(spec).__name__} "
                        f"from {hook_name}, expected {spec_class.__name__}"
                    )
                found.append(Contribution(kind, spec, info))
    return found


def _check_unique(contributions: list[Contribution]) -> None:
    seen: dict[tuple[str, str], Contribution] = {}
    for contribution in contributions:
        key = (contribution.kind, contribution.name)
        if key in seen:
            first = seen[key].plugin
            raise PluginError(
                f"two plugins contribute a {contribution.kind.replace('_', ' ')} named {contribution.name!r}: "
                f"{first.distribution} (plugin {first.name}) and "
                f"{contribution.plugin.distribution} (plugin {contribution.plugin.name})",
                hint=f"Uninstall one, or leave one out with {ENV_ALLOW}=<the plugins to load>.",
            )
        seen[key] = contribution


def search_strategy_factory(
    name: str,
    catalog: Catalog | None = None,
    options: Mapping[str, Any] | None = None,
    offered: Mapping[str, Any] | None = None,
) -> Any:
    """The factory of the installed search strategy ``name``: ``factory(space, seed=, workspace=,
    name=)`` returns a :class:`~sextant.runtime.SearchStrategy` given ``options`` (checked against
    the options its spec declares) and each of ``offered`` (say ``storage``, a database URL the
    caller shares) that it declares. An unknown or unavailable strategy, or an option it does not
    declare, is a :class:`UsageError` that names the installed ones, what is missing or its options."""
    spec = (catalog or load_catalog()).get("search_strategy", name).spec
    reason = availability(spec)
    if reason:
        raise UsageError(f"search strategy {name!r} is unavailable: {reason}")
    declared = {p.name for p in spec.options}
    given = {k: v for k, v in (offered or {}).items() if k in declared and v is not None} | dict(options or {})
    return functools.partial(resolve(spec.create), **spec.parse_options(given))
