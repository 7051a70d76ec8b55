"""The default comparator: per-output absolute and relative tolerance, NaN/Inf aware.

An element fails only when its error exceeds both ``atol`` and ``rtol * |reference|``. NaN matches
NaN and Inf matches the same Inf; anything else non-finite is a failure, whose problem says which
positions differ. Besides the verdict it reports the largest absolute and relative errors and the
tolerance that would have passed. :func:`nonfinite` counts the NaN and Inf of reference outputs
(a run stops on them unless ``--allow-nan``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: Default (atol, rtol) by the least exact precision in a candidate's chain.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "fp32": (1e-4, 1e-3),
    "tf32": (5e-3, 5e-3),
    "fp16": (1e-2, 1e-2),
    "bf16": (5e-2, 5e-2),
    "int8": (1e-1, 1e-1),
    "int4": (2.5e-1, 2.5e-1),  # weight-only int4 (a generator's MatMulNBits weights)
}
_TINY = 1e-12


@dataclass(frozen=True)
class Tolerance:
    """Tolerances for one comparison: defaults, with per-output overrides."""

    atol: float
    rtol: float
    per_output: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def for_output(self, name: str) -> tuple[float, float]:
        return self.per_output.get(name, (self.atol, self.rtol))

    @classmethod
    def for_precision(
        cls,
        precision: str,
        atol: float | None = None,
        rtol: float | None = None,
        per_output: Mapping[str, tuple[float, float]] | None = None,
    ) -> Tolerance:
        default_atol, default_rtol = DEFAULT_TOLERANCES[precision]
        return cls(
            default_atol if atol is None else atol,
            default_rtol if rtol is None else rtol,
            dict(per_output or {}),
        )


@dataclass(frozen=True)
class OutputReport:
    """How one output compared."""

    name: str
    passed: bool
    max_abs_error: float = 0.0
    max_rel_error: float = 0.0
    atol: float = 0.0
    rtol: float = 0.0
    atol_needed: float = 0.0
    mismatched: int = 0
    elements: int = 0
    problem: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The comparator's judgement of one batch (or, merged, of every batch)."""

    passed: bool
    outputs: tuple[OutputReport, ...]

    @property
    def max_abs_error(self) -> float:
        return max((o.max_abs_error for o in self.outputs), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((o.max_rel_error for o in self.outputs), default=0.0)

    def summary(self) -> str:
        failing = [o for o in self.outputs if not o.passed]
        if not failing:
            return f"max abs err {self.max_abs_error:.2g}, max rel err {self.max_rel_error:.2g}"
        worst = failing[0]
        if worst.problem:
            return f"output '{worst.name}': {worst.problem}"
        return (
            f"output '{worst.name}': {worst.mismatched}/{worst.elements} elements off, max abs err "
            f"{worst.max_abs_error:.3g} > atol {worst.atol:g} (would pass with atol {worst.atol_needed:.3g})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "outputs": [asdict(o) for o in self.outputs]}

    @staticmethod
    def merge(verdicts: list[Verdict]) -> Verdict:
        """Combine per-batch verdicts: the worst figures of each output over all batches."""
        by_name: dict[str, OutputReport] = {}
        for verdict in verdicts:
            for report in verdict.outputs:
                old = by_name.get(report.name)
                if old is None:
                    by_name[report.name] = report
                    continue
                by_name[report.name] = OutputReport(
                    report.name,
                    old.passed and report.passed,
                    max(old.max_abs_error, report.max_abs_error),
                    max(old.max_rel_error, report.max_rel_error),
                    report.atol,
                    report.rtol,
                    max(old.atol_needed, report.atol_needed),
                    old.mismatched + report.mismatched,
                    old.elements + report.elements,
                    old.problem or report.problem,
                )
        outputs = tuple(by_name.values())
        return Verdict(all(o.passed for o in outputs), outputs)


def compare(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray], tolerance: Tolerance) -> Verdict:
    """Compare every reference output with the candidate's output of the same name."""
    reports = []
    for name, ref in reference.items():
        atol, rtol = tolerance.for_output(name)
        if name not in candidate:
            reports.append(
                OutputReport(name, False, atol=atol, rtol=rtol, problem=f"missing (got {sorted(candidate)})")
            )
            continue
        reports.append(_compare_one(name, np.asarray(ref), np.asarray(candidate[name]), atol, rtol))
    return Verdict(all(r.passed for r in reports), tuple(reports))


def _compare_one(name: str, ref: np.ndarray, got: np.ndarray, atol: float, rtol: float) -> OutputReport:
    if ref.shape != got.shape:
        return OutputReport(name, False, atol=atol, rtol=rtol, problem=f"shape {got.shape}, expected {ref.shape}")
    if _kind(ref) != _kind(got):
        return OutputReport(name, False, atol=atol, rtol=rtol, problem=f"dtype {got.dtype}, expected {ref.dtype}")
    if ref.size == 0:
        return OutputReport(name, True, atol=atol, rtol=rtol)
    if _kind(ref) in ("bool", "other"):  # booleans, strings, objects: exact equality
        mismatched = int(np.count_nonzero(ref != got))
        return OutputReport(name, mismatched == 0, float(mismatched > 0), 0.0, atol, rtol, 0.0, mismatched, ref.size)
    ref64, got64 = ref.astype(np.float64), got.astype(np.float64)
    ref_nan, got_nan = np.isnan(ref64), np.isnan(got64)
    ref_inf, got_inf = np.isinf(ref64), np.isinf(got64)
    special = (ref_nan != got_nan) | ((ref_inf | got_inf) & (ref64 != got64))
    finite = np.isfinite(ref64) & np.isfinite(got64)
    abs_err = np.zeros_like(ref64)
    abs_err[finite] = np.abs(got64[finite] - ref64[finite])
    scale = np.abs(ref64)
    rel_err = abs_err / np.maximum(scale, _TINY)
    off = (abs_err > atol) & (abs_err > rtol * scale)
    mismatched = int(np.count_nonzero(off | special))
    beyond_rtol = abs_err > rtol * scale
    atol_needed = float(abs_err[beyond_rtol].max()) if beyond_rtol.any() else 0.0
    problem = _nonfinite_problem(ref_nan, got_nan, ref_inf | got_inf, ref64 != got64) if special.any() else None
    rel_considered = rel_err[scale > atol] if (scale > atol).any() else rel_err
    return OutputReport(
        name,
        mismatched == 0,
        float(abs_err.max()),
        float(rel_considered.max()),
        atol,
        rtol,
        atol_needed,
        mismatched,
        int(ref.size),
        problem,
    )


def _nonfinite_problem(ref_nan: np.ndarray, got_nan: np.ndarray, inf: np.ndarray, differ: np.ndarray) -> str:
    """What differs in the NaN and Inf positions, e.g. "NaN at 3 positions where the reference is not"."""
    counts = (
        (np.count_nonzero(got_nan & ~ref_nan), "NaN at {} positions where the reference is not"),
        (np.count_nonzero(ref_nan & ~got_nan), "not NaN at {} positions where the reference is NaN"),
        (np.count_nonzero(inf & differ & ~(ref_nan | got_nan)), "Inf differs from the reference at {} positions"),
    )
    parts = [text.format(int(n)) for n, text in counts if n]
    return "NaN/Inf positions differ from the reference's: " + "; ".join(parts)


@dataclass(frozen=True)
class NonFinite:
    """How many values of one output are NaN or Inf (over every batch)."""

    output: str
    nan: int
    inf: int
    elements: int

    def describe(self) -> str:
        counts = [f"{n} {what}" for n, what in ((self.nan, "NaN"), (self.inf, "Inf")) if n]
        return f"'{self.output}' has {' and '.join(counts)} of {self.elements} values"


def nonfinite(batches: Sequence[Mapping[str, np.ndarray]]) -> tuple[NonFinite, ...]:
    """The outputs of ``batches`` (reference outputs) that hold NaN or Inf, in order of first sight."""
    found: dict[str, NonFinite] = {}
    for batch in batches:
        for name, value in batch.items():
            array = np.asarray(value)
            if _kind(array) not in ("float", "complex"):
                continue
            old = found.get(name, NonFinite(name, 0, 0, 0))
            found[name] = NonFinite(
                name,
                old.nan + int(np.count_nonzero(np.isnan(array))),
                old.inf + int(np.count_nonzero(np.isinf(array))),
                old.elements + int(array.size),
            )
    return tuple(f for f in found.values() if f.nan or f.inf)


def _kind(array: np.ndarray) -> str:
    if array.dtype == np.bool_:
        return "bool"
    if np.issubdtype(array.dtype, np.integer):
        return "int"
    if np.issubdtype(array.dtype, np.complexfloating):
        return "complex"
    if np.issubdtype(array.dtype, np.floating):
        return "float"
    return "other"
