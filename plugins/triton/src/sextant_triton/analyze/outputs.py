"""What an analysis leaves in its output folder:

- ``best/``: a model repository with the best configuration of every analyzed model (its
  ``config.pbtxt`` written with Triton's schema; the model files copied from the analyzed repository);
- ``metrics-model-inference.csv``: every measurement, with Model Analyzer's column names;
- ``analysis.json``: settings, counts, the best and the default per group, the summary sentence;
- ``report.html`` (:mod:`.report`);
- ``measurements.sqlite``: the checkpoint (``--rerank`` and resuming read it).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sextant.api import Objective, htmlkit, ranked

from sextant_triton import llmperf
from sextant_triton.analyze import llm as llm_view
from sextant_triton.analyze import report
from sextant_triton.analyze.confirm import config_of
from sextant_triton.analyze.records import Analysis, Best, GroupResult
from sextant_triton.analyze.space import Coordinates, Space
from sextant_triton.analyze.store import Record

if TYPE_CHECKING:
    from sextant_triton.analyze.explore import Counters
    from sextant_triton.analyze.inputs import Target
    from sextant_triton.analyze.settings import AnalyzeSettings

#: Model Analyzer's column names (metrics-model-inference.csv) → our metric
CSV_METRICS = {
    "Throughput (infer/sec)": "throughput",
    "p99 Latency (ms)": "p99_ms",
    "p95 Latency (ms)": "p95_ms",
    "p90 Latency (ms)": "p90_ms",
    "p50 Latency (ms)": "p50_ms",
    "Avg Latency (ms)": "avg_ms",
    "Client Send (ms)": "client_send_ms",
    "Client Recv (ms)": "client_recv_ms",
    "Server Queue (ms)": "queue_ms",
    "Server Compute Input (ms)": "compute_input_ms",
    "Server Compute Infer (ms)": "compute_infer_ms",
    "Server Compute Output (ms)": "compute_output_ms",
    "RAM Usage (MB)": "memory_mb",
}
CSV_COLUMNS = (
    "Model",
    "Batch",
    "Concurrency",
    "Request Rate",
    "Model Config Path",
    "Instance Group",
    "Max Batch Size",
    "Dynamic Batching",
    "Satisfies Constraints",
    *CSV_METRICS,
    "Stable",
    "Error",
)


def best_of(group: GroupResult, objective: Objective) -> Best:
    """The group's best as the summary states it: a gain over the default is claimed only when the
    interleaved re-measurement (:mod:`.confirm`) found it above the noise."""
    order = ranked(group.history, objective, group.baseline)
    configs = {config_of(group.space, p) for p, r in group.history}
    n = len(group.history)
    names = ", ".join(u.name for u in group.space.units)
    llm = group.space.settings.model_type == "llm"
    constraints = llm_view.constraints_text(objective) if llm else objective.constraints_text()
    under = "" if constraints == "none" else f" under {constraints}"
    lead = f"{names}: in {n} measurements over {len(configs)} configurations"
    if not group.history:
        return Best(None, None, None, None, f"{names}: not measured ({group.stopped}).")
    if not any(r.metrics for _, r in group.history):  # nothing to rank: say why it failed
        error = next((r.error for _, r in group.history if r.error), "no reason recorded")
        return Best(None, None, None, None, f"{lead}, every measurement failed; the first: {error}")
    if not order or not objective.feasible(order[0][1].metrics or {}):
        closest = order[0] if order else None
        text = f"{lead}, none met the constraints ({constraints})"
        if closest:
            text += f"; the closest is {config_of(group.space, closest[0])} at {_load(closest[1])}: {numbers(closest[1].metrics)}"
        return Best(None, None, closest, None, text + ".")
    metric = ", ".join(llm_view.METRIC_NAMES.get(k, k) if llm else k for k in objective.weights)
    confirmation = group.confirmation
    base = confirmation.default if confirmation else None
    if base is None:
        point, record = order[0]
        label = config_of(group.space, point)
        return Best(
            point, record, None, None,
            f"{lead}, {label} at {_load(record)} is the best ({numbers(record.metrics)}); "
            f"the default configuration failed{under}.",
        )
    ratio = confirmation.ratio(objective) if confirmation else None
    if confirmation is not None and confirmation.chosen is not None and ratio is not None:
        point, record = confirmation.contenders[confirmation.chosen]
        text = (
            f"{lead}, {config_of(group.space, point)} at {_load(record)} is {(ratio.median - 1) * 100:.0f} % "
            f"better at {metric} than the default configuration at {_load(base[1])}{under}: "
            f"{ratio.describe()} re-measured interleaved with the default "
            f"({numbers(record.metrics)} vs {numbers(base[1].metrics)} in the search)."
        )
        return Best(point, record, None, ratio.median - 1, text)
    if ratio is not None and confirmation is not None:
        point, record = confirmation.contenders[0]
        text = (
            f"{lead}, no configuration is better than the default configuration (at {_load(base[1])}: "
            f"{numbers(base[1].metrics)}) within the noise: the search's best, {config_of(group.space, point)} "
            f"at {_load(record)}, measured {ratio.describe()} the default re-measured interleaved with it, "
            f"so the default is kept{under}."
        )
        return Best(base[0], base[1], None, 0.0, text)
    point, record = order[0]
    label = config_of(group.space, point)
    if not objective.feasible(base[1].metrics or {}):  # no gain over a point that breaks the constraints
        text = (
            f"{lead}, {label} at {_load(record)} is the best{under} ({numbers(record.metrics)}); "
            f"the default configuration met them at no load measured (its best, at {_load(base[1])}: "
            f"{numbers(base[1].metrics)})."
        )
        return Best(point, record, None, None, text)
    if label == "default":
        text = f"{lead}, the default configuration is the best, at {_load(record)}{under} ({numbers(record.metrics)})."
        return Best(point, record, None, 0.0, text)
    gain = objective.gain(record.metrics or {}, base[1].metrics or {})
    why = confirmation.not_measured if confirmation else None
    text = (
        f"{lead}, {label} at {_load(record)} measured {gain * 100:.0f} % better at {metric} than the default "
        f"configuration at {_load(base[1])}{under} ({numbers(record.metrics)} vs {numbers(base[1].metrics)}), "
        f"one measurement each, not re-measured against the default ({why or 'not re-measured'}): "
        "the gain may be noise."
    )
    return Best(point, record, None, gain, text)


def _load(record: Record) -> str:
    m = record.metrics or {}
    if m.get("request_rate"):
        return f"{m['request_rate']:g} req/s"
    return f"concurrency {m.get('concurrency', 0):g}"


def numbers(metrics: Mapping[str, float] | None) -> str:
    """A measurement in a few words (an LLM one by tokens: :func:`.llm.numbers`)."""
    m = metrics or {}
    if llm_view.is_llm(m):
        return llm_view.numbers(m) + (f", {m['memory_mb']:,.0f} MB" if m.get("memory_mb") else "")
    text = f"{m.get('throughput', 0):,.0f} infer/s, p99 {m.get('p99_ms', 0):.2f} ms"
    return text + (f", {m['memory_mb']:,.0f} MB" if m.get("memory_mb") else "")


def csv_rows(group: GroupResult, objective: Objective, labels: Mapping[str, str]) -> list[dict[str, Any]]:
    rows = []
    for point, record in group.history:
        configs = {c["name"]: c for c in group.space.configs(point)}
        for unit in group.space.units:
            m = record.metrics or {}
            own = {k.split("/", 1)[1]: v for k, v in m.items() if k.startswith(unit.name + "/")} or m
            top = configs[unit.name]
            groups = top.get("instance_group") or [{}]
            row = {
                "Model": unit.name,
                "Batch": group.space.settings.batch_size,
                "Concurrency": int(own.get("concurrency", 0)) or None,
                "Request Rate": own.get("request_rate") or None,
                "Model Config Path": labels[config_of(group.space, point)],
                "Instance Group": "/".join(f"{g.get('count', 1)}:{g.get('kind', 'KIND_CPU')[5:]}" for g in groups),
                "Max Batch Size": top.get("max_batch_size", 0),
                "Dynamic Batching": "dynamic_batching" in top,
                "Satisfies Constraints": bool(record.metrics) and objective.feasible(record.metrics or {}),
                "Stable": bool(own.get("stable", 1.0)) if record.metrics else None,
                "Error": record.error,
            }
            shown = llm_view.CSV_METRICS if group.space.settings.model_type == "llm" else CSV_METRICS
            row.update({column: own.get(metric) for column, metric in shown.items()})
            rows.append(row)
    return rows


def config_labels(group: GroupResult) -> dict[str, str]:
    """``model_config_default``, ``model_config_0``, ... per distinct configuration, in measured order."""
    labels: dict[str, str] = {}
    for point, _ in group.history:
        label = config_of(group.space, point)
        if label not in labels:
            labels[label] = "model_config_default" if label == "default" else f"model_config_{len(labels)}"
    return labels


def write_best(space: Space, point: Coordinates, repository: Path, folder: Path) -> list[Path]:
    """``folder/<model>/`` for every model of ``space``: the analyzed model's files, the best configuration."""
    from google.protobuf import json_format
    from tritonclient.grpc import model_config_pb2 as mc

    from sextant_triton import config as triton_config

    written = []
    for config in space.configs(point):
        target = folder / config["name"]
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(repository / config["name"], target)
        message = json_format.ParseDict(config, mc.ModelConfig())
        written.append(triton_config.write(target / "config.pbtxt", message))
    return written


def write(
    found: Target, settings: AnalyzeSettings, groups: Sequence[GroupResult], counters: Counters, hardware: str
) -> Analysis:
    out = found.output
    objective = settings.objective
    best = tuple(best_of(g, objective) for g in groups)
    files: list[Path] = []
    rows = []
    for group, chosen in zip(groups, best):
        rows += csv_rows(group, objective, config_labels(group))
        if chosen.point is not None:
            files += write_best(group.space, chosen.point, found.repository, out / "best")
    csv_path = out / "metrics-model-inference.csv"
    columns = CSV_COLUMNS
    if settings.model_type == "llm":  # Model Analyzer's LLM columns after the others
        columns = (*CSV_COLUMNS[:-2], *(c for c in llm_view.CSV_METRICS if c not in CSV_COLUMNS), *CSV_COLUMNS[-2:])
    csv_path.write_text(htmlkit.to_csv(columns, rows))
    files.append(csv_path)
    analysis = Analysis(out, tuple(groups), best, counters.measured, counters.reused, tuple(counters.events), ())
    summary = {
        "hardware": hardware,
        "search": settings.search,
        "objective": objective.to_json(),
        "model_type": settings.model_type,
        **(
            {"llm": {"load": settings.llm.describe(), "measured_with": llmperf.method()}}
            if settings.model_type == "llm"
            else {}
        ),
        "measured": counters.measured,
        "reused": counters.reused,
        "events": counters.events,
        "groups": [
            {
                "units": [u.name for u in g.space.units],
                "stopped": g.stopped,
                "measurements": len(g.history),
                "best": b.point,
                "best_metrics": b.record.metrics if b.record else None,
                "default": g.confirmation.default[0] if g.confirmation and g.confirmation.default else None,
                "default_metrics": (
                    g.confirmation.default[1].metrics if g.confirmation and g.confirmation.default else None
                ),
                "gain": b.gain,
                "paired": g.confirmation.to_json(objective) if g.confirmation else None,
                "summary": b.summary,
            }
            for g, b in zip(groups, best)
        ],
    }
    (out / "analysis.json").write_text(json.dumps(summary, indent=2, default=str))
    files.append(out / "analysis.json")
    files.append(report.write(analysis, settings, hardware, out / "report.html"))
    return replace(analysis, files=tuple(files))
