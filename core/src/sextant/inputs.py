"""From what the user gave (samples, or nothing for a model that declares its inputs) to the
signature, the samples, and the correctness inputs every candidate is checked on.

Correctness inputs are the samples at their own batch sizes, plus the first sample resized to batch
1 and to the largest batch that will be profiled: an export that bakes in a batch size fails there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sextant.errors import SampleError, UsageError
from sextant.options import OptimizeOptions
from sextant.samples import Batch, normalize, random_batches, resize_batch
from sextant.signature import Signature, TensorSpec, batch_size, infer_tensors
from sextant.specs import SourceModel

#: rows a correctness batch holds at most, beyond the largest batch profiled: a sample batch of
#: 300,000 rows checks no better than a few hundred, and every candidate would run it whole
CHECK_ROWS = 256
#: samples larger than this (MB) are worth a word: they are written whole into the package
LARGE_SAMPLES_MB = 256.0


@dataclass(frozen=True)
class PreparedInputs:
    signature: Signature
    samples: list[Batch]
    checks: list[Batch]
    max_batch: int
    notes: tuple[str, ...] = ()


def prepare_inputs(source: SourceModel, samples: Any, options: OptimizeOptions) -> PreparedInputs:
    declared = source.signature
    notes: tuple[str, ...] = ()
    if samples is None:
        if declared is None:
            raise SampleError(
                f"the {source.format} model '{source.name}' does not declare its inputs, so samples are needed",
                hint="Pass --samples FILE.npz (one array per input name, first axis = batch).",
            )
        resolved = _resolve_shapes(declared, options.shapes)
        batches, call_style = random_batches(resolved), declared.call_style
        notes = (
            f"no samples given: using random inputs generated from the model's declared signature {_shapes(resolved)}",
        )
    else:
        batches, call_style = normalize(samples)
        if declared is not None and call_style == "positional":
            batches = _name_positional(batches, declared)
            call_style = declared.call_style  # the model decides how it is called
    # inputs the model declares without a batch axis (a fixed first axis beside batched inputs)
    declared_whole = [t.name for t in declared.inputs if not t.batched] if declared is not None else []
    tensors = infer_tensors(batches, unbatched=(*options.unbatched, *declared_whole))
    fixed = declared.max_batch if declared is not None else None
    if declared is not None:
        _check_against_declared(tensors, declared)
        if fixed is not None:
            _check_fixed_batch(batches, declared, fixed)
    signature = Signature(tensors, call_style=call_style, max_batch=fixed)
    max_batch, sizes, batch_note = _batch_sizes(signature, options.max_batch_size)
    checks, bounded_note = _bounded(batches, signature, max(max_batch, CHECK_ROWS))
    for size in sizes:
        if all(batch_size(b, signature) != size for b in checks):
            checks.append(resize_batch(batches[0], size, signature))
    notes += batch_note + bounded_note + _size_note(batches)
    return PreparedInputs(signature, batches, checks, max_batch, notes)


def _bounded(batches: Sequence[Batch], signature: Signature, rows: int) -> tuple[list[Batch], tuple[str, ...]]:
    """The sample batches as correctness batches, each cut to at most ``rows`` rows spread evenly
    over it (inputs without a batch axis are kept whole), and a note when any was cut."""
    if not any(t.batched for t in signature.inputs):
        return list(batches), ()
    out, largest = [], 0
    for batch in batches:
        size = batch_size(batch, signature)
        if size <= rows:
            out.append(batch)
            continue
        largest = max(largest, size)
        picked = np.linspace(0, size - 1, rows).round().astype(np.int64)
        out.append({t.name: batch[t.name][picked] if t.batched else batch[t.name] for t in signature.inputs})
    if not largest:
        return out, ()
    return out, (
        f"samples of up to {largest:,} rows: correctness checks {rows} rows of each such batch, spread evenly "
        f"over it (the largest batch profiled, or {CHECK_ROWS}); exporters still get the samples whole",
    )


def _size_note(batches: Sequence[Batch]) -> tuple[str, ...]:
    """A word when the samples are large: they are copied whole into the package."""
    megabytes = sum(a.nbytes for b in batches for a in b.values()) / 2**20
    if megabytes <= LARGE_SAMPLES_MB:
        return ()
    return (
        f"the samples hold {megabytes:,.0f} MB: they are written whole into the package (samples.npz) and read "
        "by every exporter; a few batches of representative inputs are enough, and give fewer to save time, "
        "memory and disk",
    )


def _batch_sizes(signature: Signature, largest: int) -> tuple[int, list[int], tuple[str, ...]]:
    """The largest batch to profile, the batch sizes every candidate is checked at, and a note
    where the model, not ``--max-batch-size``, decides them."""
    batched = [t.name for t in signature.inputs if t.batched]
    fixed = signature.max_batch
    if not batched:
        return 1, [1], ("no input has a batch axis: each call runs the inputs whole, profiled one call at a time",)
    if fixed is None:
        return largest, sorted({1, largest}), ()
    names = ", ".join(f"'{n}'" for n in batched[:3]) + (f" and {len(batched) - 3} more" if len(batched) > 3 else "")
    note = (
        f"input data {names} has a fixed first dimension {fixed}: checked and profiled at batch {fixed} only; "
        "re-export the model with a dynamic batch axis to profile other batch sizes"
    )
    if fixed > largest:
        note += f" (--max-batch-size {largest} is below the batch size the model fixes)"
    return fixed, [fixed], (note,)


def _check_fixed_batch(batches: Sequence[Batch], declared: Signature, fixed: int) -> None:
    """Samples of a model that fixes its batch size must come in batches of that size (on the
    inputs whose declared first axis is that fixed size)."""
    for index, batch in enumerate(batches):
        for spec in declared.inputs:
            if spec.batched and spec.shape and spec.shape[0] == fixed and batch[spec.name].shape[0] != fixed:
                raise SampleError(
                    f"sample {index}, input '{spec.name}': {batch[spec.name].shape[0]} rows, but the model fixes "
                    f"its first dimension at {fixed}",
                    hint=f"Give samples of batch {fixed}, or re-export the model with a dynamic batch axis.",
                )


def _name_positional(batches: list[Batch], declared: Signature) -> list[Batch]:
    """Positional samples (tuples, bare arrays) take the names the model declares, in order; a
    model that declares keyword inputs only when it has one (their order means nothing)."""
    if declared.call_style == "keyword" and len(declared.inputs) > 1:
        raise SampleError(
            f"samples are positional, but the model takes named inputs: {', '.join(declared.input_names)}",
            hint="Pass each sample as a dict of input name to array (or an .npz file with those names).",
        )
    if len(batches[0]) != len(declared.inputs):
        raise SampleError(
            f"samples have {len(batches[0])} positional inputs, the model takes {len(declared.inputs)}: "
            f"{', '.join(declared.input_names)}"
        )
    return [dict(zip(declared.input_names, batch.values())) for batch in batches]


def _shapes(signature: Signature) -> str:
    return ", ".join(f"{t.name}:{'x'.join(str(s) for s in t.shape)}" for t in signature.inputs)


def _resolve_shapes(declared: Signature, shapes: Mapping[str, tuple[int, ...]]) -> Signature:
    """Fill dynamic axes of a declared signature: user shapes first, else 1 (batch) or 16."""
    unknown = set(shapes) - set(declared.input_names)
    if unknown:
        raise UsageError(
            f"--shape names unknown inputs {sorted(unknown)}", hint=f"Inputs: {', '.join(declared.input_names)}."
        )
    inputs = []
    for spec in declared.inputs:
        if not spec.ranked and spec.name not in shapes:
            raise UsageError(
                f"the model does not declare how many axes its input '{spec.name}' has, so no input can be "
                "generated for it",
                hint=f"Give its shape with --shape {spec.name}:1xDxD (axis 0 the batch), or pass --samples.",
            )
        if spec.name in shapes:
            shape = tuple(shapes[spec.name])
            if spec.ranked and (
                len(shape) != len(spec.shape) or any(d is not None and d != s for d, s in zip(spec.shape, shape))
            ):
                raise UsageError(
                    f"--shape {spec.name}:{'x'.join(map(str, shape))} does not fit the declared shape {spec.shape}"
                )
        else:
            shape = tuple((1 if i == 0 and spec.batched else 16) if d is None else d for i, d in enumerate(spec.shape))
        inputs.append(TensorSpec(spec.name, spec.dtype, shape, spec.batched))
    return replace(declared, inputs=tuple(inputs))


def _check_against_declared(tensors: Sequence[TensorSpec], declared: Signature) -> None:
    given = {t.name: t for t in tensors}
    names = set(declared.input_names)
    if set(given) != names:
        missing, extra = sorted(names - set(given)), sorted(set(given) - names)
        raise SampleError(
            f"samples do not fit the model's inputs: missing {missing}, unknown {extra}",
            hint=f"The model takes {', '.join(declared.input_names)}.",
        )
    for spec in declared.inputs:
        sample = given[spec.name]
        if sample.dtype != spec.dtype:
            raise SampleError(
                f"input '{spec.name}': samples are {sample.dtype}, the model takes {spec.dtype}",
                hint=f"Cast the samples of '{spec.name}', e.g. array.astype(numpy.{spec.dtype}).",
            )
        if not spec.ranked:  # the samples say how many axes it has
            continue
        if len(sample.shape) != len(spec.shape):
            raise SampleError(
                f"input '{spec.name}': samples have {len(sample.shape)} axes, the model takes {spec.shape}",
                hint="Axis 0 is the batch: a single example needs a batch axis of size 1 in front.",
            )
        for axis, (want, got) in enumerate(zip(spec.shape, sample.shape)):
            if axis > 0 and want is not None and got is not None and want != got:
                raise SampleError(f"input '{spec.name}' axis {axis}: samples have {got}, the model takes {want}")
