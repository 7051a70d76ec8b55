"""Samples: normalising what users pass into batches of named numpy arrays, and storing them.

Accepted forms (API): a dict (one batch, keyword inputs), a tuple (one batch, positional inputs), a
single array or tensor (one batch, one input), or a list / iterable of those (several batches).
Tensors of any framework are converted with their own ``.numpy()``. ``--samples FILE.npz`` holds one
array per input name, first axis the batch; keys of the form ``"<batch>/<name>"`` give several
batches (for inputs whose shape varies between batches). Names ``input_0``, ``input_1``, ... (and
only those) are positional inputs in that order, as sextant writes positional samples (a package's
own ``samples.npz`` feeds the same model again).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sextant.errors import SampleError
from sextant.signature import CallStyle, Signature, TensorSpec

Batch = dict[str, np.ndarray]


def to_numpy(value: Any, *, where: str) -> np.ndarray:
    """Convert an array-like of any framework to a numpy array."""
    if isinstance(value, np.ndarray):
        return value
    try:
        if hasattr(value, "detach"):  # torch
            value = value.detach().cpu()
            return value.numpy()
        if hasattr(value, "numpy"):  # tensorflow, jax
            return np.asarray(value.numpy())
        return np.asarray(value)
    except Exception as exc:
        raise SampleError(
            f"{where}: cannot convert {type(value).__name__} to a numpy array ({exc})",
            hint="Pass numpy arrays, or tensors of a dtype numpy knows (bfloat16 tensors: cast to float32).",
        ) from exc


def _one_batch(value: Any, index: int) -> tuple[Batch, CallStyle]:
    if isinstance(value, Mapping):
        return {str(k): to_numpy(v, where=f"sample {index}, field '{k}'") for k, v in value.items()}, "keyword"
    if isinstance(value, tuple):
        return {
            f"input_{i}": to_numpy(v, where=f"sample {index}, input {i}") for i, v in enumerate(value)
        }, "positional"
    return {"input_0": to_numpy(value, where=f"sample {index}")}, "positional"


def normalize(samples: Any) -> tuple[list[Batch], CallStyle]:
    """Turn user samples (see module doc) into batches and the model's calling style."""
    if isinstance(samples, (str, Path)):
        batches = load_batches(Path(samples))
        return batches, "positional" if _positional_names(batches[0]) else "keyword"
    if isinstance(samples, (Mapping, tuple)) or hasattr(samples, "shape"):
        items: Iterable[Any] = [samples]
    elif isinstance(samples, Iterable):
        items = samples
    else:
        raise SampleError(f"samples of type {type(samples).__name__} are not understood", hint=__doc__)
    batches, styles = [], set()
    for index, item in enumerate(items):
        batch, style = _one_batch(item, index)
        batches.append(batch)
        styles.add(style)
    if not batches:
        raise SampleError("the sample iterable was empty", hint="Pass at least one batch of inputs.")
    if len(styles) > 1:
        raise SampleError("samples mix dicts with tuples/arrays", hint="Give every batch in the same form.")
    return batches, styles.pop()


def _positional_names(batch: Mapping[str, Any]) -> bool:
    """Whether ``batch`` is named as sextant names positional inputs: ``input_0`` ... ``input_<n-1>``."""
    return sorted(batch) == sorted(f"input_{i}" for i in range(len(batch)))


def save_batches(path: Path, batches: Sequence[Mapping[str, np.ndarray]]) -> None:
    """Write batches to one ``.npz`` (keys ``"<batch>/<name>"``), atomically."""
    arrays = {f"{i}/{name}": array for i, batch in enumerate(batches) for name, array in batch.items()}
    from sextant.diskspace import guarded

    tmp = path.with_name(path.name + ".tmp.npz")
    with guarded(path, temporary=tmp):
        np.savez(tmp, **arrays)
        tmp.replace(path)


def load_batches(path: Path) -> list[Batch]:
    """Read batches written by :func:`save_batches`, or a plain npz of one batch."""
    _check_npz(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SampleError(
            f"cannot read samples file {path}: {exc}", hint="Write it with numpy.savez (arrays of numbers only)."
        ) from exc
    if not arrays:
        raise SampleError(f"samples file {path} holds no arrays", hint=_NPZ_HINT)
    for key, array in arrays.items():
        if array.ndim > 0 and array.shape[0] == 0:
            raise SampleError(
                f"samples file {path}: array '{key}' has shape {array.shape}, an empty batch (axis 0 is the batch)",
                hint="Give every input at least one row.",
            )
    if not all("/" in key for key in arrays):
        return [arrays]
    batches: dict[int, Batch] = {}
    for key, array in arrays.items():
        index, _, name = key.partition("/")
        batches.setdefault(int(index), {})[name] = array
    return [batches[i] for i in sorted(batches)]


_NPZ_HINT = "Write it with numpy.savez(path, <input name>=array, ...), first axis = batch."


def _check_npz(path: Path) -> None:
    """A samples path that is missing, a folder, or no ``.npz`` archive (whatever its name)."""
    if not path.exists():
        raise SampleError(f"samples file {path} does not exist", hint="Check the path given to --samples.")
    if path.is_dir():
        raise SampleError(f"samples file {path} is a folder", hint=f"Give one .npz file. {_NPZ_HINT}")
    if not zipfile.is_zipfile(path):
        with path.open("rb") as file:
            npy = file.read(6) == b"\x93NUMPY"
        raise SampleError(
            f"samples file {path} is "
            + ("a .npy file (one array with no input name)" if npy else "not an .npz archive (a zip file)"),
            hint=_NPZ_HINT,
        )


def resize_batch(batch: Mapping[str, np.ndarray], size: int, signature: Signature) -> Batch:
    """Repeat or cut the rows of a batch to ``size`` rows along every batched input's axis 0."""
    out: Batch = {}
    for spec in signature.inputs:
        array = batch[spec.name]
        if spec.batched:
            rows = np.arange(size) % array.shape[0]
            array = np.ascontiguousarray(array[rows])
        out[spec.name] = array
    return out


def random_batches(signature: Signature, *, count: int = 2, seed: int = 0) -> list[Batch]:
    """Random batches for a model that declares its inputs (every axis resolved to a size)."""
    rng = np.random.default_rng(seed)
    return [{spec.name: _random_array(rng, spec, spec.shape) for spec in signature.inputs} for _ in range(count)]


def _random_array(rng: np.random.Generator, spec: TensorSpec, shape: tuple[Any, ...]) -> np.ndarray:
    if any(size is None for size in shape):
        raise SampleError(f"input '{spec.name}' has unresolved dynamic axes {spec.shape}")
    dtype = np.dtype(spec.dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 10, size=shape).astype(dtype)
    return rng.standard_normal(size=shape).astype(dtype)
