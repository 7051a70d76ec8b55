"""``--model-type llm``: the load a streaming generation model is measured under, and the checks
made before anything is started.

The model is a decoupled (streaming) Triton model with the tensor names ``sextant deploy triton``
writes for a generation package: ``input_ids`` (INT64, ``[-1]``) in, optionally ``max_tokens``
(INT32, ``[1]``) and ``stream`` (BOOL, ``[1]``); ``output_ids`` out, one response per token.

The prompts are synthetic token ids (input lengths drawn from a normal distribution of
``input_tokens_mean`` / ``input_tokens_stddev``, at least one token, seeded; ids below ``llm.vocab``,
else the model configuration's ``vocab_size`` parameter, else 100) or read from a
``prompt_file`` (one prompt a line, token ids separated by spaces); every request asks for
``output_tokens`` tokens (``max_tokens``). They are written as perf_analyzer's ``--input-data``
JSON, which it sends in turn. A prompt that with its output does not fit the model's context
(``context_length`` in the YAML, else the model configuration's ``context_length`` /
``max_position_embeddings`` / ``n_positions`` / ``max_seq_len`` parameter) is refused before
the server starts.

.. code-block:: yaml

    model_type: llm
    llm: {input_tokens_mean: 64, input_tokens_stddev: 16, output_tokens: 32, prompts: 50, seed: 0}
    objective: ttft                     # or itl, tokens-per-second (default: throughput = tokens/s)
    constraints: {max_ttft_ms: 200, max_itl_ms: 20, min_output_tokens_per_s: 100}
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sextant.api import SextantError, UsageError

if TYPE_CHECKING:
    from sextant_triton.analyze.model import ModelInfo

MODEL_TYPES = ("default", "llm")
#: the objectives (``--objective``, :class:`sextant.api.Objective`'s presets) only a generation model has
GENERATION_OBJECTIVES = ("tokens-per-second", "ttft", "itl")
#: the generation constraints (YAML ``constraints``, CLI flags) → the :class:`~sextant.api.Objective`
#: field they set; in an LLM measurement ``p99_ms`` is the inter-token latency's p99 and
#: ``throughput`` output tokens/s (:mod:`sextant_triton.llmperf`)
CONSTRAINTS = {"max_ttft_ms": "max_ttft_ms", "max_itl_ms": "max_p99_ms", "min_output_tokens_per_s": "min_throughput"}
#: the configuration parameters that may give a model's context length
CONTEXT_KEYS = ("context_length", "max_position_embeddings", "n_positions", "max_seq_len")
#: token ids are drawn below this where neither ``llm.vocab`` nor the model says its vocabulary
DEFAULT_VOCAB = 100
TOKENS, MAX_TOKENS, STREAM, OUTPUT = "input_ids", "max_tokens", "stream", "output_ids"


class NotStreaming(SextantError):
    """A model analyzed as ``llm`` that does not stream (not decoupled)."""


@dataclass(frozen=True)
class LlmLoad:
    """The prompts and output length of an LLM analysis (the YAML's ``llm:``)."""

    input_tokens_mean: int = 32
    input_tokens_stddev: float = 0.0
    output_tokens: int = 16
    prompts: int = 32
    seed: int = 0
    vocab: int | None = None  # token ids drawn from 1..vocab-1 (id 0 is often padding); None: the model's
    # ``vocab_size`` parameter (written by ``sextant deploy triton``), else 100
    prompt_file: str | None = None
    context_length: int | None = None  # None: from the model's configuration

    def __post_init__(self) -> None:
        for name in ("input_tokens_mean", "output_tokens", "prompts", "vocab"):
            value = getattr(self, name)
            if name == "vocab" and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"llm.{name}: {value!r} is not allowed: it must be an integer >= 1")
        if not isinstance(self.input_tokens_stddev, (int, float)) or self.input_tokens_stddev < 0:
            raise UsageError(f"llm.input_tokens_stddev: {self.input_tokens_stddev!r} is not allowed: it must be >= 0")
        context = self.context_length
        if context is not None and (not isinstance(context, int) or isinstance(context, bool) or context < 2):
            raise UsageError(f"llm.context_length: {context!r} is not allowed: it must be an integer >= 2")

    @classmethod
    def parse(cls, given: Any) -> LlmLoad:
        """``llm:`` as the YAML wrote it; an unknown key is named with the valid ones."""
        given = given or {}
        valid = [f.name for f in fields(cls)]
        if not isinstance(given, Mapping):
            raise UsageError(f"llm: give a mapping of {', '.join(valid)}, not {given!r}")
        unknown = sorted(set(given) - set(valid))
        if unknown:
            raise UsageError(
                f"llm: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}",
                hint=f"Valid keys: {', '.join(valid)}.",
            )
        try:
            return cls(**given)
        except TypeError as exc:  # a value of the wrong kind (a string where a number goes)
            raise UsageError(f"llm: {given!r} is not allowed: {exc}", hint=f"Valid keys: {', '.join(valid)}.") from exc

    def describe(self) -> str:
        """The load in words (``analysis.json``)."""
        if self.prompt_file:
            source = f"prompts {self.prompt_file}"
        else:
            spread = f"{self.input_tokens_mean}+-{self.input_tokens_stddev:g}"
            source = f"{self.prompts} prompts of {spread} tokens, seed {self.seed}"
        return f"{source}, {self.output_tokens} output tokens"

    def prompts_ids(self, vocab: int | None = None) -> list[list[int]]:
        """The prompts' token ids (see the module); ``vocab``: the model's, where ``self.vocab`` is not set."""
        if self.prompt_file:
            return _read_prompts(Path(self.prompt_file))
        vocab = self.vocab or vocab or DEFAULT_VOCAB
        rng = random.Random(self.seed)
        out = []
        for _ in range(self.prompts):
            length = max(1, round(rng.gauss(self.input_tokens_mean, self.input_tokens_stddev)))
            out.append([rng.randrange(1, max(vocab, 2)) for _ in range(length)])
        return out


def _read_prompts(path: Path) -> list[list[int]]:
    if not path.is_file():
        raise UsageError(
            f"llm.prompt_file {path}: no such file", hint="One prompt a line, token ids separated by spaces."
        )
    out = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append([int(t) for t in line.split()])
        except ValueError:
            raise UsageError(
                f"llm.prompt_file {path}, line {number}: {line[:60]!r} is not a list of token ids",
                hint="One prompt a line, token ids (integers) separated by spaces.",
            ) from None
    if not out:
        raise UsageError(f"llm.prompt_file {path} holds no prompt")
    return out


def check_streaming(info: ModelInfo) -> None:
    """Refuse a model that cannot be measured as a token stream, saying how to fix it."""
    config = info.config
    if not (config.get("model_transaction_policy") or {}).get("decoupled"):
        raise NotStreaming(
            f"{info.name} is not a streaming model (its config.pbtxt is not decoupled): --model-type llm measures "
            "time to first token and inter-token latency from one response per generated token",
            hint="Deploy a generation package with `sextant deploy triton PACKAGE` (it writes a decoupled model), "
            "or, if the model sends one response per token, add `model_transaction_policy { decoupled: true }` to "
            f"{info.name}/config.pbtxt. Analyze a model that answers once per request without --model-type llm.",
        )
    names = {t.get("name") for t in config.get("input", [])}
    if TOKENS not in names:
        raise UsageError(
            f"{info.name} has no {TOKENS!r} input (it has {', '.join(sorted(map(str, names))) or 'none'}): "
            "--model-type llm sends token ids there",
            hint="Deploy the generation package with `sextant deploy triton`, which writes the input_ids input.",
        )


def _parameter(info: ModelInfo, keys: tuple[str, ...]) -> int | None:
    parameters = info.config.get("parameters") or {}
    for key in keys:
        value = (parameters.get(key) or {}).get("string_value")
        if value and str(value).isdigit():
            return int(value)
    return None


def context_length(info: ModelInfo, load: LlmLoad) -> int | None:
    """The model's context (prompt plus output tokens), or ``None`` where nothing says it."""
    if load.context_length is not None:
        return load.context_length
    return _parameter(info, CONTEXT_KEYS)


def write_prompts(info: ModelInfo, load: LlmLoad, out: Path) -> Path:
    """perf_analyzer's ``--input-data`` for ``info`` under ``load``, after the checks (see the module)."""
    check_streaming(info)
    prompts = load.prompts_ids(_parameter(info, ("vocab_size",)))
    context = context_length(info, load)
    longest = max(prompts, key=len)
    if context is not None and len(longest) + load.output_tokens > context:
        raise UsageError(
            f"{info.name}: a prompt of {len(longest)} tokens plus {load.output_tokens} output tokens does not fit "
            f"the model's context of {context} tokens",
            hint="Lower llm.input_tokens_mean / input_tokens_stddev (or shorten the prompt file) or "
            "llm.output_tokens so that prompt + output <= the context.",
        )
    names = {t.get("name") for t in info.config.get("input", [])}
    rows = []
    for ids in prompts:
        row: dict[str, Any] = {TOKENS: {"content": ids, "shape": [len(ids)]}}
        if MAX_TOKENS in names:
            row[MAX_TOKENS] = {"content": [load.output_tokens], "shape": [1]}
        if STREAM in names:
            row[STREAM] = {"content": [True], "shape": [1]}
        rows.append(row)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": rows}))
    return out


# -- how an LLM measurement is shown (outputs, report, the CLI's progress) ----------------------------

#: Model Analyzer's LLM column names (metrics-model-inference.csv) → the metric: an LLM row's
#: "Throughput (infer/sec)" and latency columns are requests/s and request latency
CSV_METRICS = {
    "Throughput (infer/sec)": "requests_per_s",
    "p99 Latency (ms)": "request_p99_ms",
    "p90 Latency (ms)": "request_p90_ms",
    "p50 Latency (ms)": "request_p50_ms",
    "Avg Latency (ms)": "request_avg_ms",
    "Output Token Throughput (tokens/sec)": "throughput",
    "Avg Time To First Token (ms)": "ttft_avg_ms",
    "p50 Time To First Token (ms)": "ttft_p50_ms",
    "p90 Time To First Token (ms)": "ttft_p90_ms",
    "p99 Time To First Token (ms)": "ttft_p99_ms",
    "Avg Inter Token Latency (ms)": "itl_avg_ms",
    "p50 Inter Token Latency (ms)": "p50_ms",
    "p90 Inter Token Latency (ms)": "p90_ms",
    "p99 Inter Token Latency (ms)": "p99_ms",
    "Avg Input Tokens": "input_tokens_avg",
    "Avg Output Tokens": "output_tokens_avg",
    "RAM Usage (MB)": "memory_mb",
}
#: a weighted metric in words
METRIC_NAMES = {"throughput": "output tokens/s", "p50_ms": "inter-token latency", "ttft_ms": "time to first token"}


def is_llm(metrics: Mapping[str, float] | None) -> bool:
    """Whether ``metrics`` are an LLM measurement's (:mod:`sextant_triton.llmperf`)."""
    return bool(metrics) and "ttft_ms" in (metrics or {})


def numbers(m: Mapping[str, float]) -> str:
    """An LLM measurement in a few words."""
    text = f"{m.get('throughput', 0):,.1f} tokens/s, TTFT p99 {m.get('ttft_ms', 0):.2f} ms"
    if "p99_ms" in m:
        text += f", ITL p50 {m.get('p50_ms', 0):.2f} / p99 {m['p99_ms']:.2f} ms"
    return text + f", {m.get('requests_per_s', 0):,.1f} req/s"


def constraints_text(objective: Any) -> str:
    """An LLM analysis's constraints in words (``none`` without any)."""
    parts = []
    if objective.max_ttft_ms is not None:
        parts.append(f"time to first token p99 of at most {objective.max_ttft_ms:g} ms")
    if objective.max_p99_ms is not None:
        parts.append(f"inter-token latency p99 of at most {objective.max_p99_ms:g} ms")
    if objective.min_throughput is not None:
        parts.append(f"at least {objective.min_throughput:g} output tokens/s")
    if objective.max_memory_mb is not None:
        parts.append(f"at most {objective.max_memory_mb:g} MB of memory")
    return ", ".join(parts) or "none"
