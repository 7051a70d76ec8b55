"""``sextant.Module``: a transparent wrapper for one part of a pipeline.

The wrapper is an ``nn.Module`` holding the original as its child, so a pipeline that expects an
``nn.Module`` (diffusers components, ``.to()``, ``.parameters()``, ``.eval()``) takes it; every
attribute it does not have itself comes from the original (``.config``, ``.dtype``, ``.device``,
``.in_channels``), and ``state_dict`` / ``load_state_dict`` are the original's.

Like ``wrapt.ObjectProxy``, it also reports the original's ``__class__`` and ``__module__``
(``type(wrapper)`` stays ``sextant.Module``): libraries that inspect their components by class
then see the original. A diffusers pipeline keeps ``pipe.config.unet`` as
``("diffusers", "UNet2DConditionModel")`` after ``pipe.unet = sextant.Module(pipe.unet)``, and
``pipe.save_pretrained`` saves the original's weights rather than dropping a component of a class
it does not know; ``isinstance(wrapper, UNet2DConditionModel)`` holds. Calls go through
its :class:`~sextant_torch.pipelines.part.ModulePart` (``wrapper.sextant``), which records them
during ``sextant.optimize_pipeline`` and serves the chosen runners after ``sextant.load_optimized``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from sextant.api import UsageError, register_part

from sextant_torch.pipelines.part import ModulePart

InputMapping = Callable[[tuple[Any, ...], dict[str, Any]], tuple[tuple[Any, ...], dict[str, Any]]]


class Module(torch.nn.Module):
    """Wrap ``module`` so that sextant optimizes it in place, inside the pipeline that calls it.

    :param module: the part (``pipe.unet``, ``pipe.text_encoder``, ``model.decoder``).
    :param name: its name in the pipeline workspace (default: its class name, lowercased); unique.
    :param input_mapping: ``(args, kwargs) -> (args, kwargs)``: how the pipeline's arguments become
        the module's (e.g. to drop an argument that is no tensor or constant).
    :param output_mapping: ``output -> output``: what the pipeline receives, applied to the
        original's and to the optimized runner's output alike.
    :param forward: the method the pipeline calls, when it is not the module's call (a VAE's
        ``decode``): ``wrapper.decode(...)`` is then recorded and served, ``wrapper(...)`` too.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        name: str | None = None,
        *,
        input_mapping: InputMapping | None = None,
        output_mapping: Callable[[Any], Any] | None = None,
        forward: str | None = None,
    ) -> None:
        if isinstance(module, Module):
            raise UsageError(f"{module.sextant.name!r} is wrapped already", hint="Wrap each module once.")
        if not isinstance(module, torch.nn.Module):
            raise UsageError(
                f"sextant.Module wraps a torch.nn.Module, not a {type(module).__name__}",
                hint="Wrap the nn.Module the pipeline calls (pipe.unet, pipe.vae, model.encoder).",
            )
        if forward is not None and not callable(getattr(module, forward, None)):
            raise UsageError(f"{type(module).__name__} has no method {forward!r} (forward={forward!r})")
        super().__init__()
        self.module = module
        self.sextant = ModulePart(module, name or type(module).__name__.lower(), forward)
        self._input_mapping = input_mapping
        self._output_mapping = output_mapping
        self.__module__ = type(module).__module__  # an instance attribute: see the module doc
        register_part(self.sextant)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # noqa: D105 - see the module doc
        return type(self.module)

    def __reduce_ex__(self, protocol: Any) -> Any:  # pickle and deepcopy by the true class
        return _blank, (type(self),), self.__getstate__()

    def __setstate__(self, state: dict[str, Any]) -> None:  # a copy is a live part too
        super().__setstate__(state)
        register_part(self.sextant)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._input_mapping is not None:
            args, kwargs = self._input_mapping(args, dict(kwargs))
        output = self.sextant(args, kwargs)
        return self._output_mapping(output) if self._output_mapping is not None else output

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)  # parameters, buffers, the child module
        except AttributeError:
            pass
        module = super().__getattr__("module")
        part = self.__dict__.get("sextant")
        if part is not None and part.forward == name:
            return self  # wrapper.decode(...) is a call of the wrapper
        return getattr(module, name)

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self.module.load_state_dict(*args, **kwargs)

    def __repr__(self) -> str:
        return f"sextant.Module({self.sextant.name!r}, {self.module!r})"


def _blank(cls: type) -> Any:
    return object.__new__(cls)
