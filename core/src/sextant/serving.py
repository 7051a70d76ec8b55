"""Serving settings derived from what a package measured, whatever the serving target: what the
user asked for (:class:`ServingOptions`) over defaults from the candidate's profile (:func:`derive`
→ :class:`ServingSettings`). A deployer turns them into its target's own configuration (Triton's
``config.pbtxt``, a folder's ``serve.py``).

The defaults, each explained in ``ServingSettings.reasons``:

- ``max_batch_size``: the largest batch size the candidate was profiled at, or, when its sweep was
  cut off because it could not win, the largest batch its outputs were checked at (0, no
  batching, when a tensor has no batch axis or the model fixes its batch size);
- dynamic batching when batches larger than 1 are allowed, with preferred batch sizes the
  profiled batch sizes within 10 % of the best throughput, and a queue delay of the median batch-1
  latency (a lone request waits at most about one more inference);
- instances: on a GPU one; on the CPU as many as the host's threads divided by the threads one
  call used (a runner measured with one thread gets one instance per core).

:data:`OPTIONS` are these overrides as deployer options (``DeployerSpec.options``), so every target
that derives its settings here offers the same flags.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sextant.errors import UsageError
from sextant.specs import DeployOption

if TYPE_CHECKING:
    from sextant.package import CandidateView
    from sextant.records import CandidateRecord, Point
    from sextant.signature import Signature

#: a profiled batch size is preferred when its throughput is at least this share of the best
PREFERRED_SHARE = 0.9

#: the overrides of :class:`ServingOptions`, as a deployer's command-line options
OPTIONS = (
    DeployOption("max_batch_size", "int", help="0 disables batching. Default: the largest batch size profiled."),
    DeployOption("instances", "int", help="Model instances. Default: host threads / threads per call as measured."),
    DeployOption("dynamic_batching", "bool", help="Default: on when batches above 1 are allowed."),
    DeployOption(
        "preferred_batch_sizes",
        "ints",
        help="Comma-separated. Default: batch sizes within 10 % of the best throughput.",
    ),
    DeployOption(
        "queue_delay_us", "int", help="Dynamic batcher's max queue delay. Default: the median batch-1 latency."
    ),
)


@dataclass(frozen=True)
class ServingOptions:
    """What the user asked for; ``None``: derive it from the package."""

    max_batch_size: int | None = None
    instances: int | None = None
    dynamic_batching: bool | None = None
    preferred_batch_sizes: tuple[int, ...] | None = None
    queue_delay_us: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "queue_delay_us"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UsageError(f"--{name.replace('_', '-')} {value}: must be 0 or more")
        if self.instances is not None and self.instances < 1:
            raise UsageError(f"--instances {self.instances}: must be 1 or more")
        if self.preferred_batch_sizes is not None and any(b < 1 for b in self.preferred_batch_sizes):
            raise UsageError(f"--preferred-batch-sizes {list(self.preferred_batch_sizes)}: sizes are 1 or more")


@dataclass(frozen=True)
class ServingSettings:
    """Resolved settings for one served model; ``reasons`` says where each came from."""

    max_batch_size: int
    dynamic_batching: bool
    preferred_batch_sizes: tuple[int, ...]
    queue_delay_us: int
    instances: int
    device: str  # where the candidate ran: "cpu" or "cuda"
    threads: int  # threads per call, as measured
    reasons: tuple[str, ...] = field(default=(), compare=False)


def batch_axis_blocker(signature: Signature) -> str | None:
    """Why the model cannot be served in batches, or ``None`` when it can."""
    unbatched = [t.name for t in (*signature.inputs, *signature.outputs) if not t.batched]
    if unbatched:
        return f"{', '.join(unbatched)} has no batch axis"
    if signature.max_batch is not None:
        return f"the model fixes its batch size to {signature.max_batch}"
    return None


def preferred_sizes(points: Sequence[Point], max_batch_size: int) -> tuple[int, ...]:
    """Profiled batch sizes (above 1, within ``max_batch_size``) whose throughput is within 10 % of
    the best one's."""
    usable = [p for p in points if p.throughput and p.batch <= max_batch_size]
    if not usable:
        return ()
    best = max(p.throughput for p in usable)
    return tuple(sorted(p.batch for p in usable if p.throughput >= PREFERRED_SHARE * best and p.batch > 1))


def for_candidate(
    view: CandidateView, options: ServingOptions = ServingOptions(), threads: int | None = None
) -> ServingSettings:
    """:func:`derive` for one candidate of a package, from what its document recorded (signature,
    host threads, correctness batches)."""
    document = view.package.document
    host_threads = int((document.host.threads if document.host else None) or os.cpu_count() or 1)
    assert document.signature is not None, "a package with candidates records its signature"
    return derive(view.record, document.signature, host_threads, options, document.correctness_batches or (), threads)


def derive(
    record: CandidateRecord,
    signature: Signature,
    host_threads: int,
    options: ServingOptions = ServingOptions(),
    checked_batches: Sequence[int] = (),
    threads: int | None = None,
) -> ServingSettings:
    """Serving settings for a candidate: the user's options over defaults from its measurements.
    ``checked_batches``: the batch sizes its outputs were checked at (the package's correctness
    batches); ``threads``: the threads one call used, where the deployer knows the runner option
    that set them (default: the threads the profile ran with, else the host's)."""
    reasons: list[str] = []
    points = list(record.points)
    blocker = batch_axis_blocker(signature)
    measured_max = max((p.batch for p in points), default=1)
    cut_off = bool(record.profile and record.profile.cut_off)
    checked_max = max(checked_batches, default=measured_max)

    if options.max_batch_size is not None:
        max_batch = options.max_batch_size
        if max_batch > 0 and blocker:
            raise UsageError(
                f"--max-batch-size {max_batch}: this model cannot be served in batches: {blocker}",
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
            first = next((p for p in points if p.batch == 1 and p.p50_ms), None)
            if first is not None:
                delay = max(1, round(first.p50_ms * 1000))
                reasons.append(f"max queue delay {delay} µs: the median latency at batch 1")

    threads = threads or (record.profile.threads if record.profile and record.profile.threads else host_threads)
    gpu = record.device == "cuda"
    if options.instances is not None:
        instances = options.instances
    elif gpu:
        instances = 1
        reasons.append("1 GPU instance per GPU")
    else:
        instances = max(1, host_threads // max(1, threads))
        reasons.append(f"{instances} CPU instance(s): {host_threads} host threads / {threads} per call as measured")
    return ServingSettings(
        max_batch_size=max_batch,
        dynamic_batching=dynamic,
        preferred_batch_sizes=preferred,
        queue_delay_us=delay,
        instances=instances,
        device=record.device,
        threads=threads,
        reasons=tuple(reasons),
    )
