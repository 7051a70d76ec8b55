"""Measure a streaming (decoupled) generation model: time to first token, inter-token latency and
token throughput, from the per-response timestamps perf_analyzer records.

perf_analyzer (:mod:`sextant_triton.perf`, 2.51) is run over gRPC with ``--streaming`` and
``--profile-export-file``: for every request it writes when it was sent and when each of its
responses arrived (one response per generated token). The metrics are computed from that file the
way GenAI-Perf computes them from the same file (``LLMProfileDataParser._parse_requests``):

- TTFT: first response - request sent, per request;
- ITL: (request latency - TTFT) / (output tokens - 1), per request with at least two tokens;
- request latency: last response - request sent;
- output tokens/s and requests/s: totals over the benchmark's duration, from the first request
  sent to the last response received;
- percentiles with linear interpolation between ranks (numpy's default).

Two differences, both for token-id models: output tokens are counted from ``output_ids`` (exact),
where GenAI-Perf re-tokenizes ``text_output`` with a Hugging Face tokenizer; and a response without
tokens (a final flag sent alone) is dropped, as GenAI-Perf drops empty responses of OpenAI
endpoints, so that TTFT is the first token's and the latency the last token's.

Why not run GenAI-Perf or AIPerf: neither is installed with sextant (:func:`method` says what this
environment has); GenAI-Perf 0.0.16 needs the model's tokenizer (a token-id model has none); over
gRPC it sends an ``exclude_input_in_output`` input with every request, which ``sextant deploy
triton``'s streaming config declares, as the vLLM backend does
(``benchmarks/analyze_llm_vs_model_analyzer.py`` runs it side by side); perf_analyzer already runs
here and the file is the one GenAI-Perf reads.

The metric names follow the generation objectives of :class:`sextant.api.Objective`:
``throughput`` is output tokens/s, ``p50_ms``/``p90_ms``/``p99_ms`` the inter-token latency,
``ttft_ms`` the p99 time to first token (``max_ttft_ms`` bounds the tail, as ``max_p99_ms`` does).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sextant.api import SextantError

from sextant_triton import perf

#: perf_analyzer's lines that say a request failed (the model's own error follows)
_FAILED = ("rror", "failed")
#: what perf_analyzer says when no request finished within a window
_NO_REQUESTS = "No valid requests recorded within time interval"
#: requests per window (per request in flight) once time windows held none
COUNT_WINDOW_REQUESTS = 4


class _NoRequests(perf._Unstable):
    """No request finished within a time window (cold instances, a slow or busy machine)."""


def method() -> str:
    """How the token metrics are measured here, and whether GenAI-Perf or AIPerf could be (for the report)."""
    from importlib.util import find_spec

    found = [name for name, module in (("GenAI-Perf", "genai_perf"), ("AIPerf", "aiperf")) if find_spec(module)]
    present = f"{' and '.join(found)} installed but not used" if found else "GenAI-Perf and AIPerf are not installed"
    return (
        f"perf_analyzer {perf.VERSION} --streaming, per-response timestamps of its profile export, "
        f"computed as GenAI-Perf computes them ({present})"
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of ``values`` with linear interpolation (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _tokens(output: Any) -> int:
    """The tokens in one response's ``response_outputs`` entry (a scalar is one; an empty list none):
    its ``output_ids`` where it has them (not its ``text_output`` too: that is the same tokens' text)."""
    if isinstance(output, Mapping):
        if "output_ids" in output:
            return _tokens(output["output_ids"])
        return sum(_tokens(v) for v in output.values())
    if isinstance(output, (list, tuple)):
        return len(output)
    if output is None or output == "":
        return 0
    return 1


def parse_export(data: Mapping[str, Any], experiment: int = -1) -> dict[str, float]:
    """The metrics (see the module) of one experiment of a perf_analyzer profile export (the last
    by default: one run measures one load)."""
    experiments = data.get("experiments") or []
    if not experiments:
        raise SextantError("perf_analyzer's profile export holds no experiment")
    requests = experiments[experiment].get("requests") or []
    ttft, itl, latency, out_tokens, in_tokens = [], [], [], [], []
    start, end = math.inf, -math.inf
    for request in requests:
        sent = int(request["timestamp"])
        outputs = request.get("response_outputs") or [None] * len(request.get("response_timestamps", []))
        arrivals = []
        count = 0
        for stamp, output in zip(request.get("response_timestamps") or [], outputs):
            n = 1 if output is None else _tokens(output)
            if n:
                arrivals.append(int(stamp))
                count += n
        if not arrivals:
            continue
        first, last = arrivals[0], arrivals[-1]
        ttft.append((first - sent) / 1e6)
        latency.append((last - sent) / 1e6)
        if count > 1:
            itl.append((last - first) / 1e6 / (count - 1))
        out_tokens.append(count)
        inputs = request.get("request_inputs") or {}
        ids = inputs.get("input_ids")
        if ids is not None:
            in_tokens.append(len(ids) if isinstance(ids, (list, tuple)) else 1)
        start, end = min(start, sent), max(end, last)
    if not latency:
        raise SextantError("perf_analyzer's profile export holds no request that received a token")
    duration_s = max((end - start) / 1e9, 1e-9)
    metrics = {
        "throughput": sum(out_tokens) / duration_s,
        "requests_per_s": len(latency) / duration_s,
        "requests": float(len(latency)),
        "output_tokens": float(sum(out_tokens)),
        "output_tokens_avg": sum(out_tokens) / len(out_tokens),
        "ttft_ms": percentile(ttft, 99),
        "ttft_avg_ms": sum(ttft) / len(ttft),
        "request_avg_ms": sum(latency) / len(latency),
    }
    for q in (50, 90, 99):
        metrics[f"ttft_p{q}_ms"] = percentile(ttft, q)
        metrics[f"request_p{q}_ms"] = percentile(latency, q)
        if itl:
            metrics[f"p{q}_ms"] = percentile(itl, q)
    if itl:
        metrics["itl_avg_ms"] = sum(itl) / len(itl)
    if in_tokens:
        metrics["input_tokens_avg"] = sum(in_tokens) / len(in_tokens)
    return metrics


def measure(
    model: str,
    url: str,
    load: perf.Load,
    *,
    windows: perf.Windows = perf.Windows(),
    input_data: Path | str,
    shapes: Mapping[str, Sequence[int]] | None = None,
    workdir: Path,
    timeout_s: float = 300.0,
    export: Path | None = None,
) -> dict[str, float]:
    """One measurement of the streaming ``model`` at ``url`` under ``load`` (the same signature as
    :func:`sextant_triton.perf.measure`). Windows that do not settle are measured once more with
    :meth:`~sextant_triton.perf.Windows.relaxed`, then taken as they are with ``stable`` 0.0. Once a
    time window holds no finished request (cold instances, whose first generations are slow, or a
    busy machine), the next tries are windows of a number of requests (``count_windows``) instead.
    ``export``: where to keep perf_analyzer's profile export (by default it is removed)."""
    count = None
    for tried, stability in ((windows, None), (windows.relaxed(), None), (windows, 999.0)):
        try:
            metrics = _run(model, url, load, tried, stability, input_data, shapes, workdir, timeout_s, export, count)
        except _NoRequests:
            count = COUNT_WINDOW_REQUESTS * max(1, load.concurrency or 1)
            continue
        except perf._Unstable:
            continue
        return {**metrics, "stable": 1.0 if stability is None else 0.0}
    raise SextantError(f"the load did not settle ({load.describe()})")


def _run(
    model: str,
    url: str,
    load: perf.Load,
    windows: perf.Windows,
    stability: float | None,
    input_data: Path | str,
    shapes: Mapping[str, Sequence[int]] | None,
    workdir: Path,
    timeout_s: float,
    keep: Path | None = None,
    count: int | None = None,
) -> dict[str, float]:
    path = perf.binary()
    workdir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="profile-", dir=workdir))
    export = folder / "profile.json"  # perf_analyzer refuses a path that exists
    rate = f"{load.request_rate or 0:g}"
    command = [
        str(path),
        *("-m", model, "-u", url, "-i", "grpc", "--streaming"),
        *(
            [f"--request-rate-range={rate}:{rate}"]
            if load.request_rate
            else [f"--concurrency-range={load.concurrency}:{load.concurrency}"]
        ),
        f"--measurement-interval={windows.interval_ms}",
        *(["--measurement-mode=count_windows", f"--measurement-request-count={count}"] if count else []),
        f"--stability-percentage={stability if stability is not None else windows.stability:g}",
        f"--max-trials={windows.max_trials}",
        f"--input-data={input_data}",
        *(f"--shape={name}:{','.join(map(str, dims))}" for name, dims in (shapes or {}).items()),
        *("--profile-export-file", str(export)),
    ]
    try:
        done = perf._run_tracked(command, timeout_s, perf._environment(path))
        text = export.read_text() if export.is_file() else ""
    except subprocess.TimeoutExpired as exc:
        raise SextantError(f"perf_analyzer did not finish within {timeout_s:g} s ({load.describe()})") from exc
    finally:
        if keep is not None and export.exists():
            keep.parent.mkdir(parents=True, exist_ok=True)
            export.replace(keep)
        shutil.rmtree(folder, ignore_errors=True)
    said = (done.stdout + done.stderr).strip()
    if _NO_REQUESTS in said:
        raise _NoRequests(said.splitlines()[-1])
    if "Failed to obtain stable measurement" in said:
        raise perf._Unstable(said.splitlines()[-1] if said else "unstable")
    if done.returncode != 0 or not text:
        lines = [ln.strip() for ln in said.splitlines() if any(w in ln for w in _FAILED)] or said.splitlines()[-5:]
        raise SextantError(
            f"perf_analyzer could not measure the streaming model {model!r} at {load.describe()}: "
            + " ".join(lines)[:800],
            hint="Check that the server is up and the model streams tokens: " + " ".join(command),
        )
    return parse_export(json.loads(text))

