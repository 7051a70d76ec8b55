"""The plugin API: everything a plugin may import from the core, and nothing else.

Plugins (ours under ``plugins/`` and third parties') import from this module only; what is not
here is internal and may change between versions. Light names are imported eagerly (listing
plugins must stay fast); the run-time helpers, which pull in numpy, on first use.

Hooks and specs
    ``hookimpl``, ``ExporterSpec``, ``ConverterSpec``, ``RunnerSpec``, ``ComparatorSpec``,
    ``SearchStrategySpec``, ``DeployerSpec`` (its options: ``DeployOption``), ``GeneratorSpec``, ``Param``,
    ``FormatSpec`` (a format's canonical fingerprint, which finds duplicate artifacts), ``SourceModel``,
    ``Rejection`` (a loader's "cannot use this model, because..."), ``Format``, ``PRECISIONS``, ``DEVICES``
Shared formats
    ``ONNX``, ``TORCH_MODULE``, ``TORCHSCRIPT``, ``TORCH_EXPORTED``, ``TORCH_TENSORRT``, ``KERAS``,
    ``TF_SAVEDMODEL``, ``TENSORRT_ENGINE``, ``TRANSFORMERS_CAUSAL_LM``
What callables receive and return
    ``StepRequest``, ``RunnerRequest``, ``DeployRequest``, ``Deployment``, ``Runner``, ``StageTimer``,
    ``Synchronizer``, ``Fingerprinted`` (a runner that names the graph it compiled: two alike are
    profiled once), ``SearchStrategy``, ``GeneratorRequest``, ``Generator`` (a causal LM's generation
    loop: ``prefill`` and ``decode``; ``SequenceBatcher``: optionally, ``join`` and ``leave`` a running
    batch, continuous batching), ``StreamingGenerator`` (one whose backend owns the loop: ``stream``;
    ``StreamBatcher``: optionally, ``add``, ``step`` and ``cancel`` sequences in that loop),
    ``Signature``, ``TensorSpec``, ``Tolerance``, ``Verdict``, ``OutputReport``
Packages (what a deployer reads)
    ``Package`` (``Package(path)``; ``.best()``, ``.candidate(id)``, ``.document``: its ``status.json``
    as a typed ``RunDocument``), ``CandidateView``
    (one candidate of a package; ``.verify(trust_source=)`` / ``.check_files()`` refuse changed
    files and unpickling without trust), ``CandidateRecord``, ``Status``, ``Stop`` (why a profile
    sweep ended), ``write_manifest`` (hash a package folder's files, as a run does when it ends)
Helpers
    ``load_batches``, ``resize_batch`` (samples), ``cache_dir`` (sextant's shared cache),
    ``digest`` (a content key), ``hash_path`` (a file's or folder's content key), ``cpu_model``,
    ``device_identity`` (what an artifact built for a device depends
    on), ``availability`` (why a spec cannot be used here, without importing it), ``installed`` (is a distribution installed, without importing it), ``is_user_module``
    (was a class defined in the user's script, so it must travel by value)
Deploying (what every deployer shares; see ``sextant.deploying`` and ``sextant.serving``)
    ``chosen_candidate`` (the selected best or ``--candidate``, refused when it did not pass),
    ``choose_candidate`` (the same, taking the regime pick that fits the serving batch size when
    the package names one per regime; its ``Choice`` says which and why),
    ``served_name``, ``one_candidate_package`` (a candidate alone as a package, to load where it
    is served), ``ServingOptions``, ``ServingSettings``, ``serving_settings`` (max batch, preferred
    sizes, queue delay, instances derived from a candidate's profile), ``SERVING_OPTIONS`` (those
    overrides as deployer options)
Ranking and searching
    ``Objective`` (metric weights and constraints: what "best" means), ``search_strategy_factory``
    (an installed search strategy's factory, by name, given its options), ``run_search`` (the
    search loop), ``fetch`` (one configuration through a ``Store``; a store shared by workers adds
    ``Claims``), ``ranked``, ``Record``, ``SearchResult``, ``Tally`` (measurements made and reused), ``Budget``
    (seconds and measurements), ``Paired`` and ``Ratio`` (contenders re-measured interleaved, round
    by round, and one's median ratio over another with its range)
Reports
    ``htmlkit``: the HTML report's building blocks (pages, tables, plotly figures), so a plugin's
    report looks like sextant's own
Pipelines (a framework's ``sextant.Module`` wrapper)
    ``Part`` (what a wrapped module offers the core), ``Recording`` (its calls of one structure),
    ``register_part`` (announce a wrapper when it is built)
Errors
    ``SextantError``, ``StepError``, ``ModelLoadError``, ``SampleError``, ``UsageError``,
    ``MissingPluginError`` (an environment that lacks a needed plugin); ``stop_signals``
    (SIGTERM and SIGHUP raise ``Stopped``, a ``KeyboardInterrupt`` with the signal, within its block)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sextant.cache import cache_dir, digest, hash_path
from sextant.devices import cpu_model, device_identity
from sextant.errors import MissingPluginError, ModelLoadError, SampleError, SextantError, StepError, UsageError
from sextant.formats import (
    KERAS,
    ONNX,
    TENSORRT_ENGINE,
    TF_SAVEDMODEL,
    TORCH_EXPORTED,
    TORCH_MODULE,
    TORCH_TENSORRT,
    TORCHSCRIPT,
    TRANSFORMERS_CAUSAL_LM,
)
from sextant.hookspecs import hookimpl
from sextant.references import is_user_module
from sextant.runtime import (
    Deployment,
    DeployRequest,
    Fingerprinted,
    Generator,
    GeneratorRequest,
    Runner,
    RunnerRequest,
    SearchStrategy,
    SequenceBatcher,
    StageTimer,
    StreamBatcher,
    StepRequest,
    StreamingGenerator,
    Synchronizer,
    ignored_inputs,
)
from sextant.specs import (
    DEVICES,
    PRECISIONS,
    ComparatorSpec,
    ConverterSpec,
    DeployerSpec,
    DeployOption,
    ExporterSpec,
    Format,
    FormatSpec,
    GeneratorSpec,
    Param,
    Rejection,
    RunnerSpec,
    PartWrapperSpec,
    SearchStrategySpec,
    SourceModel,
)

if TYPE_CHECKING:  # imported on first use (see _LAZY)
    from sextant.compare import OutputReport, Tolerance, Verdict  # noqa: F401
    from sextant.deploying import Choice, choose_candidate, chosen_candidate, one_candidate_package  # noqa: F401
    from sextant.deploying import served_name  # noqa: F401
    from sextant.serving import OPTIONS as SERVING_OPTIONS  # noqa: F401
    from sextant.serving import ServingOptions, ServingSettings  # noqa: F401
    from sextant.serving import for_candidate as serving_settings  # noqa: F401
    from sextant.pipelines.parts import Part, Recording  # noqa: F401
    from sextant.pipelines.parts import register as register_part  # noqa: F401
    from sextant.htmlreport import kit as htmlkit  # noqa: F401
    from sextant.package import CandidateView, Package, RunDocument  # noqa: F401
    from sextant.package.document import ModelInfo  # noqa: F401
    from sextant.pairing import Paired, Ratio  # noqa: F401
    from sextant.optimizer.budget import Budget  # noqa: F401
    from sextant.plugins import availability, installed  # noqa: F401
    from sextant.records import CandidateRecord, Status, Stop  # noqa: F401
    from sextant.samples import load_batches, resize_batch  # noqa: F401
    from sextant.search import Claims, Record, SearchResult, Store, Tally, fetch, ranked, run_search  # noqa: F401
    from sextant.signature import Signature, TensorSpec  # noqa: F401

#: names the API gives attributes of their modules under another name
_RENAMED = {
    "SERVING_OPTIONS": ("sextant.serving", "OPTIONS"),
    "serving_settings": ("sextant.serving", "for_candidate"),
}

_LAZY = {
    "chosen_candidate": "sextant.deploying",
    "Choice": "sextant.deploying",
    "choose_candidate": "sextant.deploying",
    "served_name": "sextant.deploying",
    "one_candidate_package": "sextant.deploying",
    "ServingOptions": "sextant.serving",
    "ServingSettings": "sextant.serving",
    "Objective": "sextant.objective",
    "search_strategy_factory": "sextant.plugins",
    "Budget": "sextant.optimizer.budget",
    **dict.fromkeys(
        ("Claims", "Record", "SearchResult", "Store", "Tally", "fetch", "ranked", "run_search"), "sextant.search"
    ),
    "Paired": "sextant.pairing",
    "Ratio": "sextant.pairing",
    "Package": "sextant.package",
    "CandidateView": "sextant.package",
    "RunDocument": "sextant.package",
    "ModelInfo": "sextant.package.document",
    "Stop": "sextant.records",
    "CandidateRecord": "sextant.records",
    "Status": "sextant.records",
    "Signature": "sextant.signature",
    "TensorSpec": "sextant.signature",
    "Tolerance": "sextant.compare",
    "Verdict": "sextant.compare",
    "OutputReport": "sextant.compare",
    "load_batches": "sextant.samples",
    "resize_batch": "sextant.samples",
    "installed": "sextant.plugins",
    "availability": "sextant.plugins",
    "write_manifest": "sextant.manifest",
    "Part": "sextant.pipelines.parts",
    "Recording": "sextant.pipelines.parts",
    "register_part": "sextant.pipelines.parts",
    "Stopped": "sextant.stops",
    "stop_signals": "sextant.stops",
}

__all__ = [
    "DEVICES",
    "KERAS",
    "ONNX",
    "PRECISIONS",
    "TENSORRT_ENGINE",
    "TF_SAVEDMODEL",
    "TORCHSCRIPT",
    "TORCH_EXPORTED",
    "TORCH_MODULE",
    "TORCH_TENSORRT",
    "TRANSFORMERS_CAUSAL_LM",
    "ComparatorSpec",
    "ConverterSpec",
    "DeployRequest",
    "DeployerSpec",
    "DeployOption",
    "SERVING_OPTIONS",
    "ServingOptions",
    "ServingSettings",
    "chosen_candidate",
    "choose_candidate",
    "Choice",
    "one_candidate_package",
    "served_name",
    "serving_settings",
    "Deployment",
    "ExporterSpec",
    "Format",
    "Generator",
    "StreamingGenerator",
    "StreamBatcher",
    "GeneratorRequest",
    "GeneratorSpec",
    "MissingPluginError",
    "ModelInfo",
    "ModelLoadError",
    "Param",
    "Rejection",
    "Runner",
    "RunnerRequest",
    "RunnerSpec",
    "SampleError",
    "SearchStrategy",
    "SequenceBatcher",
    "PartWrapperSpec",
    "FormatSpec",
    "Fingerprinted",
    "SearchStrategySpec",
    "SextantError",
    "SourceModel",
    "StageTimer",
    "StepError",
    "StepRequest",
    "Synchronizer",
    "UsageError",
    "cache_dir",
    "cpu_model",
    "device_identity",
    "digest",
    "hash_path",
    "htmlkit",
    "hookimpl",
    "ignored_inputs",
    "is_user_module",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name == "htmlkit":
        return importlib.import_module("sextant.htmlreport.kit")
    if name == "register_part":
        return importlib.import_module("sextant.pipelines.parts").register
    if name in _RENAMED:
        module, attribute = _RENAMED[name]
        return getattr(importlib.import_module(module), attribute)
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sextant.api' has no attribute {name!r}")
