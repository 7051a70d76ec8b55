"""Cosine-similarity comparison, with the same report shape as sextant's default comparator."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sextant.api import OutputReport, Tolerance, Verdict


def compare(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray], tolerance: Tolerance) -> Verdict:
    reports = []
    for name, ref in reference.items():
        atol, rtol = tolerance.for_output(name)
        got = candidate.get(name)
        if got is None or np.shape(got) != np.shape(ref):
            reports.append(OutputReport(name, False, atol=atol, rtol=rtol, problem="missing or of another shape"))
            continue
        a = np.asarray(ref, np.float64).reshape(len(ref) if np.ndim(ref) else 1, -1)
        b = np.asarray(got, np.float64).reshape(a.shape)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        cosine = np.where(norms > 0, (a * b).sum(1) / np.maximum(norms, 1e-30), 1.0)
        distance = 1.0 - cosine
        off = int(np.count_nonzero(distance > rtol))
        abs_err = float(np.abs(a - b).max()) if a.size else 0.0
        reports.append(OutputReport(name, off == 0, abs_err, float(distance.max()), atol, rtol, abs_err, off, len(a)))
    return Verdict(all(r.passed for r in reports), tuple(reports))
