"""What a generation run measures and under which constraints (light: read by the CLI's help)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sextant.errors import UsageError

#: ``--objective`` for generation → the objective preset it ranks by (``sextant.objective``); the
#: single-model names mean their generation counterpart
GENERATION_OBJECTIVES = {
    "tokens-per-second": "tokens-per-second",
    "throughput": "tokens-per-second",
    "ttft": "ttft",
    "itl": "itl",
    "latency": "itl",
    "memory": "memory",
}


@dataclass(frozen=True)
class GenerationConfig:
    """The prompts' lengths (when none are given), the tokens generated per prompt, the batch sizes
    (concurrent sequences) output tokens/s is measured at, the measured repeats after ``warmup``,
    and the constraints on time to first token and inter-token latency (p99), in milliseconds.

    ``min_agreement``: the share of greedy tokens a reduced-precision candidate must agree on
    (teacher-forced); fp32 candidates must agree everywhere but at near-ties."""

    prompt_lengths: tuple[int, ...] = (32, 128)
    new_tokens: int = 32
    batch_sizes: tuple[int, ...] = (1, 4)
    repeats: int = 3
    warmup: int = 1
    prompts_per_length: int = 1
    max_ttft_ms: float | None = None
    max_itl_ms: float | None = None
    min_agreement: float = 0.9
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.prompt_lengths or min(self.prompt_lengths) < 1:
            raise UsageError(
                f"--prompt-lengths {','.join(map(str, self.prompt_lengths))}: each length must be at least 1",
                hint="For example --prompt-lengths 32,128,512.",
            )
        if self.new_tokens < 2:
            raise UsageError(
                f"--new-tokens {self.new_tokens} must be at least 2",
                hint="The first token measures the time to first token, the others the inter-token latency.",
            )
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise UsageError("--generation-batches takes batch sizes of at least 1, e.g. 1,4,8")
        if self.repeats < 1 or self.warmup < 0 or self.prompts_per_length < 1:
            raise UsageError("repeats and prompts per length must be at least 1, warmup at least 0")
        for flag, value in (("--max-ttft-ms", self.max_ttft_ms), ("--max-itl-ms", self.max_itl_ms)):
            if value is not None and value <= 0:
                raise UsageError(f"{flag} {value:g} must be positive", hint="Leave it out for no limit.")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise UsageError(f"the minimum agreement {self.min_agreement:g} is not a share between 0 and 1")

    @property
    def max_batch(self) -> int:
        return max(self.batch_sizes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationConfig:
        values = dict(data)
        for key in ("prompt_lengths", "batch_sizes"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)
