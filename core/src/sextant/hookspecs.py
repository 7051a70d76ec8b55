"""The hook contract between sextant and its plugins.

A plugin is a module (or object) with functions marked ``@sextant.hookimpl`` whose names match the
specs below, registered through one entry point in the group ``sextant``. An implementation may
take fewer arguments than its spec. Collecting hooks return lists of frozen specs from
``sextant.specs``; their callables are imported only when used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import typer

    from sextant.specs import (
        ComparatorSpec,
        ConverterSpec,
        DeployerSpec,
        ExporterSpec,
        FormatSpec,
        GeneratorSpec,
        PartWrapperSpec,
        Rejection,
        RunnerSpec,
        SearchStrategySpec,
        SourceModel,
    )

PROJECT = "sextant"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def sextant_register_exporters() -> list[ExporterSpec]:
    """Return the exporters this plugin contributes (source model → artifact)."""


@hookspec
def sextant_register_converters() -> list[ConverterSpec]:
    """Return the converters this plugin contributes (artifact → artifact)."""


@hookspec
def sextant_register_runners() -> list[RunnerSpec]:
    """Return the runners this plugin contributes (load an artifact, answer ``infer``)."""


@hookspec
def sextant_register_generators() -> list[GeneratorSpec]:
    """Return the generators this plugin contributes (load an artifact as a causal LM's generation
    loop, answer ``prefill`` and ``decode``)."""


@hookspec
def sextant_register_comparators() -> list[ComparatorSpec]:
    """Return the comparators this plugin contributes (judge outputs against the reference)."""


@hookspec
def sextant_register_search_strategies() -> list[SearchStrategySpec]:
    """Return the search strategies this plugin contributes (propose configurations to measure)."""


@hookspec
def sextant_register_deployers() -> list[DeployerSpec]:
    """Return the deployers this plugin contributes (write a package's candidate to a serving target)."""


@hookspec
def sextant_register_part_wrappers() -> list[PartWrapperSpec]:
    """Return the wrappers this plugin contributes for the parts of a pipeline (``sextant.Module``)."""


@hookspec
def sextant_register_formats() -> list[FormatSpec]:
    """Return what this plugin knows of formats (``FormatSpec``: a format's canonical fingerprint,
    which finds duplicate artifacts that differ only in metadata). At most one spec per format."""


@hookspec(firstresult=True)
def sextant_load_source(
    model: object, name: str | None, options: Mapping[str, str], task: str
) -> SourceModel | Rejection | None:
    """Recognise ``model`` and wrap it as a :class:`~sextant.specs.SourceModel`.

    :param model: a filesystem path (``pathlib.Path``) to a model file or folder, or an in-memory
        model object (an ``nn.Module``, a Keras model, ...), possibly returned by a user's factory.
        Check cheaply: test suffixes, or ``sys.modules`` for an already imported framework, before
        importing anything heavy.
    :param name: the name the user chose for the model, or ``None``.
    :param options: the user's ``--source-option KEY=VALUE`` settings (a SavedModel's signature, say).
        A loader that uses some lists them in ``SourceModel.options``; keys no loader used are an
        error. Implementations that take no options may leave this parameter out.
    :param task: what the model is loaded for: ``"forward"`` (one forward pass, ``infer``),
        ``"text-generation"`` (a causal LM run as a generation loop: return a source whose format
        a generator consumes, or a claimed rejection when the model cannot generate), or ``"auto"``
        (the generation source when the model is a causal LM that generates, else the forward
        one). Loaders that know no generative models may leave this parameter out.
    :return: the source model; or a :class:`~sextant.specs.Rejection` saying why ``model`` cannot
        be used: ``claimed`` when it is this plugin's kind but unusable (a state dict in a ``.pt``
        file, a corrupt archive: the run stops there, naming the plugin), not claimed when it is
        not this plugin's and the reason says what was looked for (shown only if no loader
        recognises ``model``); or ``None`` when this plugin does not handle ``model`` at all.
        An empty file or folder, or a path that does not exist, never reaches the loaders.

    The catalog asks the loaders one at a time, in pluggy's call order, and stops at the first
    source model or claimed rejection.
    """


@hookspec
def sextant_register_commands(app: typer.Typer) -> None:
    """Add commands to the ``sextant`` command line.

    :param app: the root Typer application; call ``app.command()`` or ``app.add_typer()`` on it.
    """
