"""A text-generation package in the terminal (``sextant inspect``, the end of ``sextant optimize``):
beside the results table every run has (:func:`sextant.cli.tables.results_table`), the measures users
of a generative model judge it by, per candidate (output tokens/s at each batch, time to first
token at each prompt length, inter-token latency, peak memory), and the teacher-forcing verdict
(agreement, first divergence, near-ties). ``--json`` carries the same numbers: ``status.json``'s
``profile.points`` (``throughput`` is output tokens/s, ``p50_ms``/``p90_ms``/``p99_ms`` the ITL),
``ttft_ms`` and ``correctness.outputs``, one per prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from sextant.package.document import RunDocument
from sextant.records import CandidateRecord, Status


def _ttft(record: CandidateRecord) -> dict[int, float]:
    return {int(k): float(v) for k, v in (record.ttft_ms or {}).items()}


def _verdicts(record: CandidateRecord) -> Sequence[Mapping[str, Any]]:
    return record.correctness.outputs if record.correctness else ()


def agreement(record: CandidateRecord) -> float | None:
    """The share of greedy tokens equal to the reference's, over every prompt's steps."""
    verdicts = _verdicts(record)
    steps = sum(int(v.get("steps") or 0) for v in verdicts)
    if not steps or any("agreement" not in v for v in verdicts):
        return None
    return sum(float(v["agreement"]) * int(v.get("steps") or 0) for v in verdicts) / steps


def first_divergence(record: CandidateRecord) -> str:
    """Where the candidate's greedy tokens first differ: ``p<prompt>:<step>``, or empty."""
    for i, v in enumerate(_verdicts(record)):
        if v.get("first_divergence") is not None:
            return f"p{i}:{v['first_divergence']}"
    return ""


def near_ties(record: CandidateRecord) -> int:
    return sum(len(v.get("near_ties") or ()) for v in _verdicts(record))


def generation_table(document: RunDocument) -> Table:
    """Per candidate: tokens/s at each batch, TTFT at each prompt length, ITL p50/p90/p99 and peak
    memory at the selected point, and the teacher-forcing verdict."""
    records = document.candidates
    batches = sorted({p.batch for r in records.values() for p in r.points})
    lengths = sorted({n for r in records.values() for n in _ttft(r)})
    table = Table(title="generation: tokens/s by batch, TTFT by prompt length, ITL at the selected point")
    table.add_column("candidate", overflow="fold", ratio=1)
    columns = [
        *(f"tok/s @{b}" for b in batches),
        *(f"TTFT ms @{n}" for n in lengths),
        "ITL p50",
        "p90",
        "p99 ms",
        "peak MB",
        "agree",
        "1st diff",
        "ties",
    ]
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True)
    for cid, record in records.items():
        by_batch = {p.batch: p for p in record.points}
        point = record.best_point
        ttft = _ttft(record)
        share = agreement(record)
        itl = [getattr(point, k) if point else None for k in ("p50_ms", "p90_ms", "p99_ms")]
        label = f"[bold green]★ {escape(cid)}[/bold green]" if cid == document.best else escape(cid)
        if record.screened:
            label += " [dim](screened)[/dim]"
        table.add_row(
            label,
            *(f"{by_batch[b].throughput:,.1f}" if b in by_batch else "" for b in batches),
            *(f"{ttft[n]:.3f}" if n in ttft else "" for n in lengths),
            *(f"{v:.3f}" if v is not None else "" for v in itl),
            f"{point.memory_mb:,.0f}" if point and point.memory_mb is not None else "",
            f"{share:.1%}" if share is not None else "",
            first_divergence(record),
            str(near_ties(record)) if record.correctness else "",
        )
    return table


def summary_line(document: RunDocument, workspace: str) -> str | None:
    """The best candidate in one line, in generation's measures; ``None`` when none was selected."""
    best = document.best
    if best is None:
        return None
    record = document.candidates[best]
    point = record.best_point
    rate, batch = (point.throughput, point.batch) if point else (0.0, "?")
    text = f"best: {escape(best)} — {rate:,.1f} tokens/s at batch {batch}"
    if point is not None:
        text += f", ITL p50 {point.p50_ms:.3f} ms"
    ttft = _ttft(record)
    if ttft:
        length = max(ttft)
        text += f", TTFT {ttft[length]:.3f} ms at prompt {length}"
    if record.speedup and best != document.baseline:
        text += f", {record.speedup:.2f}× the reference"
    if document.incomplete:
        text = text.replace("best:", "best so far:", 1)
    return f"{text}. Package: {escape(workspace)}"


def verdict_lines(document: RunDocument) -> list[str]:
    """The near-ties of every candidate that passed with differing tokens (the reasons say the rest)."""
    out = []
    for cid, record in document.candidates.items():
        if record.status != Status.OK:
            continue
        verdicts = enumerate(_verdicts(record))
        ties = [(v.get("name", f"prompt {i}"), v["near_ties"]) for i, v in verdicts if v.get("near_ties")]
        if ties:
            where = "; ".join(f"{name}: steps {', '.join(map(str, steps))}" for name, steps in ties)
            out.append(f"{escape(cid)}: greedy tokens differ only at near-ties ({escape(where)})")
    return out
