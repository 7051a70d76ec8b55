"""Every profile point and every candidate of a run as CSV (``points.csv``, ``candidates.csv``).

Values are status.json's, unrounded (a float is written as Python's ``repr``, which reads back to
the same number); an empty cell is a value the package did not record; booleans are ``true`` /
``false``; ``options`` is a JSON object.

``candidates.csv``, one row per candidate, in the package's order:

==================== ==========================================================================
candidate            the candidate's id (``step:runner[options]@device``)
rank                 its place in the selection (1 = selected); empty when it did not compete
selected, baseline   whether it is the selected candidate / the baseline speedups are against
status, cause        how it ended (ok, failed, incorrect, rejected, skipped, ...) and why it failed
reason               the recorded reason, in full
step, format         the step whose artifact it runs (``source`` for the model itself), its format
runner, plugin       the runner, and the distribution and version that contributed it
device, precision    where it ran, at which precision
options              the runner's options (JSON)
cached               whether this run reused it from the workspace
correctness_passed   the comparator's verdict over every correctness batch
max_abs_error        the largest absolute error over every output and batch
max_rel_error        the largest relative error
atol, rtol           the tolerance it was judged by
verified             the user's verify function's verdict (empty: no verify function)
best_batch           the batch size of the point that represents it under the objective
best_throughput      that point's samples per second
best_p50_ms          that point's median latency per call
best_p99_ms          that point's 99th-percentile latency
best_memory_mb       that point's peak resident memory
speedup              times better than the baseline under the objective
points               how many batch sizes were profiled
stopped              why profiling stopped
threads              CPU threads it was measured with
loaded_memory_mb     resident memory once loaded
load_seconds         seconds to load it
seconds              seconds its check and profile took
artifact, log        paths inside the package
==================== ==========================================================================

``points.csv``, one row per profile point: ``candidate``, ``status``, ``format``, ``runner``,
``device``, ``precision``, then the point's fields (``batch``, ``p50_ms``, ``p90_ms``, ``p95_ms``,
``p99_ms``, ``mean_ms``, ``std_ms``: milliseconds per call; ``throughput``: samples per second;
``calls``, ``windows``: how many were timed; ``stable``: whether the windows agreed;
``window_spread``: how far apart they were; ``memory_mb``, ``device_memory_mb``: peak resident and
GPU memory), then one ``stage_<name>_ms`` column per stage any runner timed (mean milliseconds
per call).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sextant.htmlreport.data import POINT_FIELDS, Candidate, RunReport

CANDIDATE_COLUMNS = (
    "candidate",
    "rank",
    "selected",
    "baseline",
    "status",
    "cause",
    "reason",
    "step",
    "format",
    "runner",
    "plugin",
    "device",
    "precision",
    "options",
    "cached",
    "correctness_passed",
    "max_abs_error",
    "max_rel_error",
    "atol",
    "rtol",
    "verified",
    "best_batch",
    "best_throughput",
    "best_p50_ms",
    "best_p99_ms",
    "best_memory_mb",
    "speedup",
    "points",
    "stopped",
    "threads",
    "loaded_memory_mb",
    "load_seconds",
    "seconds",
    "artifact",
    "log",
)
POINT_PREFIX = ("candidate", "status", "format", "runner", "device", "precision")


def cell(value: Any) -> str:
    """One CSV cell: empty for None, ``true``/``false``, floats as ``repr``, mappings as JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def candidate_row(c: Candidate) -> dict[str, Any]:
    r = c.record
    best = r.best_point
    correctness = r.correctness
    return {
        "candidate": c.id,
        "rank": c.rank,
        "selected": c.best,
        "baseline": c.baseline,
        "status": str(r.status),
        "cause": str(r.cause) if r.cause else None,
        "reason": r.reason,
        "step": r.step,
        "format": r.format,
        "runner": r.runner,
        "plugin": r.plugin,
        "device": r.device,
        "precision": r.precision,
        "options": dict(r.options),
        "cached": r.cached,
        "correctness_passed": correctness.passed if correctness else None,
        "max_abs_error": c.max_abs_error,
        "max_rel_error": c.max_rel_error,
        "atol": correctness.atol if correctness else None,
        "rtol": correctness.rtol if correctness else None,
        "verified": r.verified,
        "best_batch": best.batch if best else None,
        "best_throughput": best.throughput if best else None,
        "best_p50_ms": best.p50_ms if best else None,
        "best_p99_ms": best.p99_ms if best else None,
        "best_memory_mb": best.memory_mb if best else None,
        "speedup": r.speedup,
        "points": len(c.points) if r.profile else None,
        "stopped": c.stopped,
        "threads": r.profile.threads if r.profile else None,
        "loaded_memory_mb": r.profile.loaded_memory_mb if r.profile else None,
        "load_seconds": r.load_seconds,
        "seconds": r.seconds,
        "artifact": r.artifact,
        "log": r.log,
    }


def point_columns(report: RunReport) -> tuple[str, ...]:
    return POINT_PREFIX + POINT_FIELDS + tuple(f"stage_{s}_ms" for s in report.stage_names)


def point_rows(report: RunReport) -> list[dict[str, Any]]:
    rows = []
    stages = report.stage_names
    for c in report.candidates:
        for p in c.points:
            row: dict[str, Any] = {
                "candidate": c.id,
                "status": str(c.status),
                "format": c.record.format,
                "runner": c.record.runner,
                "device": c.record.device,
                "precision": c.record.precision,
            }
            row.update({f: getattr(p, f) for f in POINT_FIELDS})
            row.update({f"stage_{s}_ms": (p.stages_ms or {}).get(s) for s in stages})
            rows.append(row)
    return rows


def to_csv(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])
    return out.getvalue()


def candidates_csv(report: RunReport) -> str:
    return to_csv(CANDIDATE_COLUMNS, [candidate_row(c) for c in report.candidates])


def points_csv(report: RunReport) -> str:
    return to_csv(point_columns(report), point_rows(report))


def write_csv(report: RunReport, folder: Path) -> list[Path]:
    """``points.csv`` and ``candidates.csv`` in ``folder`` (created); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("points.csv", points_csv(report)), ("candidates.csv", candidates_csv(report))):
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
