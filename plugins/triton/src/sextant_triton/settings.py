"""Serving settings: what the user asked for (:class:`DeployOptions`) over defaults derived from
what the package measured (:func:`derive` → :class:`ServingSettings`).

The defaults, each explained in ``ServingSettings.reasons``:

- ``max_batch_size``: the largest batch size the candidate was profiled at, or, when its sweep was
  cut off because it could not win, the largest batch its outputs were checked at (0, no
  batching, when a tensor has no batch axis or the model fixes its batch size);
- dynamic batching when batches larger than 1 are allowed, with ``preferred_batch_size`` the
  profiled batch sizes within 10 % of the best throughput, and a queue delay of the median batch-1
  latency (a lone request waits at most about one more inference);
- the instance kind from the device the candidate ran on; on the CPU as many instances as the
  host's threads divided by the threads one call used (an ONNX Runtime variant measured with one
  thread gets one instance per core), on a GPU one;
- warmup requests made from the package's samples at batch 1 and at ``max_batch_size``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

from sextant.api import UsageError

from sextant_triton.backends import threads_per_call

if TYPE_CHECKING:
    from sextant.api import CandidateRecord, Signature

BackendChoice = Literal["auto", "native", "python"]
#: a profiled batch size is preferred when its throughput is at least this share of the best
PREFERRED_SHARE = 0.9


@dataclass(frozen=True)
class DeployOptions:
    """The deployer's own options (``DeployRequest.options``); ``None``: derive from the package."""

    version: int = 1
    backend: BackendChoice = "auto"
    max_batch_size: int | None = None
    instances: int | None = None
    dynamic_batching: bool | None = None
    preferred_batch_sizes: tuple[int, ...] | None = None
    queue_delay_us: int | None = None
    warmup: bool = True
    #: Let the deployed model unpickle the candidate's files (a source ``nn.Module``, Keras custom
    #: classes) when Triton's Python backend loads it: ``--trust-source``.
    trust_source: bool = False

    def __post_init__(self) -> None:
        if self.backend not in ("auto", "native", "python"):
            raise UsageError(f"--backend {self.backend}: choose native, python or auto")
        if self.version < 1:
            raise UsageError(f"--version {self.version}: Triton's model versions are positive integers")
        for name in ("max_batch_size", "queue_delay_us"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UsageError(f"--{name.replace('_', '-')} {value}: must be 0 or more")
        if self.instances is not None and self.instances < 1:
            raise UsageError(f"--instances {self.instances}: must be 1 or more")
        if self.preferred_batch_sizes is not None and any(b < 1 for b in self.preferred_batch_sizes):
            raise UsageError(f"--preferred-batch-sizes {list(self.preferred_batch_sizes)}: sizes are 1 or more")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> DeployOptions:
        known = {f.name for f in fields(cls)}
        unknown = set(options) - known
        if unknown:
            raise UsageError(
                f"the triton deployer has no option {', '.join(sorted(unknown))}",
                hint=f"Its options: {', '.join(sorted(known))}.",
            )
        values = {k: v for k, v in options.items() if v is not None}
        if "preferred_batch_sizes" in values:
            values["preferred_batch_sizes"] = tuple(int(b) for b in values["preferred_batch_sizes"])
        return cls(**values)


@dataclass(frozen=True)
class ServingSettings:
    """Resolved settings for one model; ``reasons`` says where each came from."""

    max_batch_size: int
    dynamic_batching: bool
    preferred_batch_sizes: tuple[int, ...]
    queue_delay_us: int
    instances: int
    kind: Literal["KIND_CPU", "KIND_GPU"]
    threads: int
    warmup: bool
    reasons: tuple[str, ...] = field(default=(), compare=False)


def batch_axis_blocker(signature: Signature) -> str | None:
    """Why the model cannot be batched by Triton, or ``None`` when it can."""
    unbatched = [t.name for t in (*signature.inputs, *signature.outputs) if not t.batched]
    if unbatched:
        return f"{', '.join(unbatched)} has no batch axis"
    if signature.max_batch is not None:
        return f"the model fixes its batch size to {signature.max_batch}"
    return None


def preferred_sizes(points: Sequence[Mapping[str, Any]], max_batch_size: int) -> tuple[int, ...]:
    """Profiled batch sizes (above 1, within ``max_batch_size``) whose throughput is within 10 % of
    the best one's."""
    usable = [p for p in points if p.get("throughput") and p["batch"] <= max_batch_size]
    if not usable:
        return ()
    best = max(p["throughput"] for p in usable)
    return tuple(sorted(p["batch"] for p in usable if p["throughput"] >= PREFERRED_SHARE * best and p["batch"] > 1))


def derive(
    record: CandidateRecord,
    signature: Signature,
    host_threads: int,
    options: DeployOptions,
    checked_batches: Sequence[int] = (),
) -> ServingSettings:
    """Serving settings for a candidate: the user's options over defaults from its measurements.
    ``checked_batches``: the batch sizes its outputs were checked at (the package's correctness batches)."""
    reasons: list[str] = []
    points = list(record.points)
    blocker = batch_axis_blocker(signature)
    measured_max = max((p["batch"] for p in points), default=1)
    cut_off = bool(record.profile and record.profile.cut_off)
    checked_max = max(checked_batches, default=measured_max)

    if options.max_batch_size is not None:
        max_batch = options.max_batch_size
        if max_batch > 0 and blocker:
            raise UsageError(
                f"--max-batch-size {max_batch}: Triton cannot batch this model: {blocker}",
                hint="Use --max-batch-size 0.",
            )
        if max_batch > measured_max:
            reasons.append(f"max_batch_size {max_batch} (given; the largest batch measured was {measured_max})")
        else:
            reasons.append(f"max_batch_size {max_batch} (given)")
    elif blocker:
        max_batch = 0
        reasons.append(f"max_batch_size 0: {blocker}")
    elif cut_off and checked_max > measured_max:
        max_batch = checked_max
        reasons.append(
            f"max_batch_size {max_batch}: the largest batch checked for correctness "
            f"(its profile was cut off at batch {measured_max})"
        )
    else:
        max_batch = measured_max
        reasons.append(f"max_batch_size {max_batch}: the largest batch size profiled")

    if options.dynamic_batching and max_batch == 0:
        raise UsageError("--dynamic-batching needs batching, and max_batch_size is 0", hint="Set --max-batch-size.")
    dynamic = options.dynamic_batching if options.dynamic_batching is not None else max_batch > 1

    preferred: tuple[int, ...] = ()
    delay = 0
    if dynamic:
        if options.preferred_batch_sizes is not None:
            preferred = tuple(sorted(set(options.preferred_batch_sizes)))
            too_big = [b for b in preferred if b > max_batch]
            if too_big:
                raise UsageError(f"--preferred-batch-sizes {too_big} exceed max_batch_size {max_batch}")
        else:
            preferred = preferred_sizes(points, max_batch)
            if preferred:
                reasons.append(f"preferred batch sizes {list(preferred)}: within 10 % of the best profiled throughput")
        if options.queue_delay_us is not None:
            delay = options.queue_delay_us
        else:
            first = next((p for p in points if p["batch"] == 1 and p.get("p50_ms")), None)
            if first is not None:
                delay = max(1, round(first["p50_ms"] * 1000))
                reasons.append(f"max queue delay {delay} µs: the median latency at batch 1")

    threads = threads_per_call(record, host_threads)
    if record.device == "cuda":
        kind, default_instances = "KIND_GPU", 1
    else:
        kind, default_instances = "KIND_CPU", max(1, host_threads // max(1, threads))
    if options.instances is not None:
        instances = options.instances
    else:
        instances = default_instances
        if kind == "KIND_CPU":
            reasons.append(f"{instances} CPU instance(s): {host_threads} host threads / {threads} per call as measured")
        else:
            reasons.append("1 GPU instance per GPU")
    return ServingSettings(
        max_batch_size=max_batch,
        dynamic_batching=dynamic,
        preferred_batch_sizes=preferred,
        queue_delay_us=delay,
        instances=instances,
        kind=kind,
        threads=threads,
        warmup=options.warmup,
        reasons=tuple(reasons),
    )
