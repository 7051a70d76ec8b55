"""What one wrapped module records and serves: the :class:`~sextant.api.Part` of a ``sextant.Module``.

Recording keeps, per call structure (see :mod:`.structure`), the number of calls and up to
``limit`` calls' tensors as numpy arrays, calls with shapes not seen yet preferred (up to twice the
limit), so that axes that vary (a decoder's growing sequence) are seen varying. Serving looks the
call's structure up among the installed runners; a structure with none runs the original module,
with one warning per structure when others are served.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sextant.api import Recording, Runner, SampleError, Signature

from sextant_torch.pipelines import structure
from sextant_torch.pipelines.adapter import FlatAdapter


@dataclass
class _Seen:
    """One structure's calls so far (mutable: the recorder's tally)."""

    tree: structure.Tree
    output: structure.Tree
    names: list[str]
    calls: int = 0
    batches: list[dict[str, np.ndarray]] = field(default_factory=list)
    shapes: set[tuple[Any, ...]] = field(default_factory=set)


@dataclass(frozen=True)
class _Served:
    runner: Runner
    label: str
    output: structure.Tree
    names: tuple[str, ...]


class ModulePart:
    """The recording and serving side of one ``sextant.Module`` (its ``.sextant`` attribute)."""

    def __init__(self, module: torch.nn.Module, name: str, forward: str | None) -> None:
        self.name = name
        self.module = module
        self.forward = forward
        self._recording = False
        self._limit = 0
        self._max_structures = 0
        self._seen: dict[str, _Seen] = {}
        self._skipped = 0
        self._served: dict[str, _Served] = {}
        self._warned: set[str] = set()
        self._times: list[float] | None = None

    def target(self) -> Callable[..., Any]:
        return getattr(self.module, self.forward) if self.forward else self.module

    # -- the call -------------------------------------------------------------------------
    def __call__(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        started = time.perf_counter()
        try:
            return self._call(args, kwargs)
        finally:
            if self._times is not None:
                self._times.append(time.perf_counter() - started)

    def _call(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        target = self.target()
        if not self._recording and not self._served:
            return target(*args, **kwargs)
        try:
            call = structure.split_call(target, args, kwargs)
        except structure.Unrecordable as exc:
            if self._recording:
                raise SampleError(
                    f"sextant.Module {self.name!r}: cannot record its inputs: argument {exc.path} is a {exc.kind}",
                    hint="A wrapped module's arguments must be tensors, constants (None, numbers, strings, "
                    "dtypes) or tuples, lists and dicts of those; wrap the part of the module that takes "
                    "tensors, or map the arguments with input_mapping=.",
                ) from exc
            return target(*args, **kwargs)
        key = structure.key(call.tree)
        if self._recording:
            output = target(*args, **kwargs)
            self._record(key, call, output)
            return output
        served = self._served.get(key)
        if served is None:
            if key not in self._warned:
                self._warned.add(key)
                warnings.warn(
                    f"sextant.Module {self.name!r}: a call of a structure never recorded "
                    f"{structure.describe_call(call.tree, [p for p, _ in call.tensors])} runs the original module",
                    stacklevel=4,
                )
            return target(*args, **kwargs)
        return self._serve(served, call)

    def _record(self, key: str, call: structure.Flat, output: Any) -> None:
        tensors = call.tensors
        seen = self._seen.get(key)
        if seen is None:
            if len(self._seen) >= self._max_structures:
                self._skipped += 1
                return
            try:
                output_tree = structure.split(output, call=call).tree
            except structure.Unrecordable as exc:
                raise SampleError(
                    f"sextant.Module {self.name!r}: its output cannot be recorded: {exc.path} is a {exc.kind}",
                    hint="Wrap a module whose outputs are tensors (or containers of them), or pass "
                    "output_mapping=... and return_dict-style options that leave caches out.",
                ) from exc
            seen = self._seen[key] = _Seen(call.tree, output_tree, [path for path, _ in tensors])
        seen.calls += 1
        shapes = tuple(tuple(t.shape) for _, t in tensors)
        room = len(seen.batches) < self._limit or (shapes not in seen.shapes and len(seen.batches) < 2 * self._limit)
        if not room:
            return
        batch = {}
        for path, tensor in tensors:
            try:
                batch[path] = tensor.detach().cpu().numpy().copy()
            except TypeError as exc:  # bfloat16 has no numpy dtype
                raise SampleError(
                    f"sextant.Module {self.name!r}: input {path} is {tensor.dtype}, which numpy cannot hold",
                    hint="Run the pipeline in float32 or float16 while optimizing.",
                ) from exc
        seen.batches.append(batch)
        seen.shapes.add(shapes)

    def _serve(self, served: _Served, call: structure.Flat) -> Any:
        """The runner's outputs in the original's output structure: the call's own tensors and
        caches where the output is them, a cache of the call filled in place with the new keys and
        values (as the module's ``cache.update`` calls would have left it)."""
        tensors = call.tensors
        device = tensors[0][1].device if tensors else torch.device("cpu")
        outputs = served.runner.infer({path: t.detach().cpu().numpy() for path, t in tensors})
        names = list(served.names)
        if list(outputs) != names and len(outputs) == len(names):
            names = list(outputs)  # a traced module's outputs are named by position
        slots = structure.tensor_slots(served.output)
        values = [
            torch.from_numpy(np.asarray(outputs[n])).to(
                device=device, dtype=getattr(torch, dtype.removeprefix("torch."))
            )
            for n, (dtype, _) in zip(names, slots)
        ]
        return structure.join(served.output, values, call)

    # -- the Part protocol ----------------------------------------------------------------
    def start_recording(self, limit: int, max_structures: int) -> None:
        self._recording, self._limit, self._max_structures = True, limit, max_structures
        self._seen, self._skipped = {}, 0

    def stop_recording(self) -> list[Recording]:
        self._recording = False
        if self._skipped:
            warnings.warn(
                f"sextant.Module {self.name!r}: {self._skipped} calls of structures beyond the first "
                f"{self._max_structures} were not recorded; they run the original module",
                stacklevel=2,
            )
        return [
            Recording(
                key,
                structure.describe_call(seen.tree, seen.names),
                seen.calls,
                tuple(seen.batches),
                layout={"call": structure.to_json(seen.tree), "output": structure.to_json(seen.output)},
            )
            for key, seen in self._seen.items()
        ]

    def model(self, key: str, signature: Signature) -> torch.nn.Module:
        return FlatAdapter(self.module, self.forward, self._seen[key].tree, signature)

    def install(
        self, key: str, runner: Runner | None, label: str = "", layout: Mapping[str, Any] | None = None
    ) -> None:
        if runner is None:
            self._served.pop(key, None)
            return
        if layout is None:
            seen = self._seen[key]
            output = seen.output
        else:
            output = structure.from_json(layout["output"])
        names = tuple(structure.output_names(output))
        self._served[key] = _Served(runner, label, output, names)
        self._warned.discard(key)

    @contextlib.contextmanager
    def original(self) -> Iterator[None]:
        """Run the original module within (what serves it is kept, and serves again after):
        ``with pipe.unet.sextant.original(): ...`` to compare the two in one process."""
        served, self._served = self._served, {}
        try:
            yield
        finally:
            self._served = served

    def installed(self) -> dict[str, str]:
        return {key: served.label for key, served in self._served.items()}

    def start_timing(self) -> None:
        self._times = []

    def stop_timing(self) -> list[float]:
        times, self._times = self._times or [], None
        return times
