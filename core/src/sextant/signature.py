"""The input/output signature of a model: names, dtypes, shapes, the batch axis, dynamic axes.

A signature is inferred from samples (or declared by the model file) once, stored in the package,
and handed to every exporter, converter and runner. Axis 0 of a batched tensor is its batch axis;
``None`` in a shape marks an axis whose size varies.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sextant.errors import SampleError

CallStyle = Literal["positional", "keyword"]


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor: dtype (numpy name) and shape, ``None`` on axes that vary."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]
    batched: bool = True
    #: ``False``: the model does not declare even the number of axes (an ONNX input of unknown
    #: rank); ``shape`` is then empty, and the samples or ``--shape`` give it
    ranked: bool = True

    @property
    def dynamic_axes(self) -> tuple[int, ...]:
        """Axes whose size varies, the batch axis included when batched."""
        return tuple(i for i, size in enumerate(self.shape) if size is None or (i == 0 and self.batched))

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "batched": self.batched}
        return out if self.ranked else {**out, "ranked": False}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(
            data["name"], data["dtype"], tuple(data["shape"]), data.get("batched", True), data.get("ranked", True)
        )


@dataclass(frozen=True)
class Signature:
    """Inputs and outputs of a model, in calling order.

    ``call_style`` says how a Python-callable model takes its inputs: ``positional`` (samples were
    tuples or bare arrays) or ``keyword`` (samples were dicts). ``max_batch`` is set when the model
    itself fixes the batch size (an ONNX file with a static first axis).
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = ()
    call_style: CallStyle = "keyword"
    max_batch: int | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def with_outputs(self, outputs: Sequence[TensorSpec]) -> Signature:
        return replace(self, outputs=tuple(outputs))

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "call_style": self.call_style,
            "max_batch": self.max_batch,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        return cls(
            inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in data.get("outputs", ())),
            call_style=data.get("call_style", "keyword"),
            max_batch=data.get("max_batch"),
            notes=tuple(data.get("notes", ())),
        )


def infer_tensors(
    batches: Sequence[Mapping[str, Any]], *, what: str = "sample", unbatched: Sequence[str] = ()
) -> tuple[TensorSpec, ...]:
    """Infer tensor specs from a list of batches (dicts of numpy arrays).

    Every batch must have the same names, dtypes and ranks; axes whose size differs between
    batches become dynamic (``None``). Axis 0 of a batched tensor is always dynamic. A batch that
    contradicts the first raises :class:`SampleError` naming the batch and the field.
    """
    if not batches:
        raise SampleError(f"no {what}s given", hint="Pass at least one batch of inputs.")
    first = batches[0]
    names = list(first)
    for index, batch in enumerate(batches[1:], start=1):
        if list(batch) != names:
            raise SampleError(
                f"{what} {index} has fields {list(batch)}, but {what} 0 has {names}",
                hint=f"Every {what} must carry the same named tensors in the same order.",
            )
    specs = []
    for name in names:
        arrays = [batch[name] for batch in batches]
        dtype = arrays[0].dtype
        rank = arrays[0].ndim
        for index, array in enumerate(arrays):
            if array.dtype != dtype:
                raise SampleError(
                    f"{what} {index}, field '{name}': dtype {array.dtype}, but {what} 0 has {dtype}",
                    hint="Cast every sample of an input to one dtype.",
                )
            if array.ndim != rank:
                raise SampleError(
                    f"{what} {index}, field '{name}': {array.ndim} axes {array.shape}, "
                    f"but {what} 0 has {rank} axes {arrays[0].shape}",
                    hint="Every sample of an input must have the same number of axes.",
                )
        batched = name not in unbatched and rank > 0
        shape: list[int | None] = []
        for axis in range(rank):
            sizes = {array.shape[axis] for array in arrays}
            shape.append(None if (axis == 0 and batched) or len(sizes) > 1 else sizes.pop())
        specs.append(TensorSpec(name, str(dtype), tuple(shape), batched))
    _check_batch_axis(batches, [s.name for s in specs if s.batched], what)
    return tuple(specs)


def _check_batch_axis(batches: Sequence[Mapping[str, Any]], batched: Sequence[str], what: str) -> None:
    for index, batch in enumerate(batches):
        sizes = {name: int(batch[name].shape[0]) for name in batched}
        empty = [name for name, size in sizes.items() if size == 0]
        if empty:
            raise SampleError(
                f"{what} {index}: input '{empty[0]}' has shape {batch[empty[0]].shape}, an empty batch",
                hint="Axis 0 is the batch axis: give every input at least one row.",
            )
        if len(set(sizes.values())) > 1:
            raise SampleError(
                f"{what} {index}: batch sizes differ between inputs {sizes}",
                hint="Axis 0 of every batched input is the batch axis and must agree; "
                "name inputs that carry no batch axis with unbatched=[...] (API) or --unbatched.",
            )


def batch_size(batch: Mapping[str, Any], signature: Signature) -> int:
    """The batch size of one batch: axis 0 of its first batched input (1 if none is batched)."""
    for spec in signature.inputs:
        if spec.batched:
            return int(batch[spec.name].shape[0])
    return 1
