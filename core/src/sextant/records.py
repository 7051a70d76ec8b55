"""What a run records about each step and candidate: typed, frozen, and written as status.json.

Every status and cause is a member of :class:`Status` or :class:`Cause`; the JSON keeps their
string values (schema 1), so packages written before these types existed read back unchanged.
A record is replaced, never edited: ``dataclasses.replace(record, status=Status.OK, ...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any


class Status(str, Enum):
    """Where a step or candidate ended (``PENDING`` and ``PROFILING`` only while it runs)."""

    OK = "ok"
    FAILED = "failed"  # it could not build or run; ``cause`` and ``reason`` say why
    INCORRECT = "incorrect"  # its outputs are not the reference's within the tolerance
    REJECTED = "rejected"  # the user's verify_func said no (or raised)
    SKIPPED = "skipped"  # not run; ``reason`` says why (its input failed, a policy)
    DUPLICATE = "duplicate"  # the same bytes as an earlier step's artifact (``duplicate_of``), or a candidate on them
    PENDING = "pending"
    PROFILING = "profiling"

    def __str__(self) -> str:
        return self.value

    @property
    def judged_wrong(self) -> bool:
        """It ran, and its answers were refused (by the comparator or by verify_func)."""
        return self in (Status.INCORRECT, Status.REJECTED)


class Cause(str, Enum):
    """Why a child failed."""

    EXCEPTION = "exception"
    CRASH = "crash"  # killed by a signal
    TIMEOUT = "timeout"  # no progress for --step-timeout seconds
    LOST = "lost"  # ended without a result
    INTERRUPTED = "interrupted"
    DISK_FULL = "disk-full"  # a file system ran out of space while it wrote
    OUT_OF_MEMORY = "out-of-memory"  # killed by SIGKILL, MemoryError, bad_alloc, a failed allocation
    BUDGET = "budget"  # not started: the run's --budget-s was spent

    def __str__(self) -> str:
        return self.value

    @property
    def environmental(self) -> bool:
        """The machine, not the model, was likely at fault: memory, disk space, a hang or a lost child."""
        return self in (Cause.TIMEOUT, Cause.LOST, Cause.DISK_FULL, Cause.OUT_OF_MEMORY)

    @property
    def retried(self) -> bool:
        """Worth trying again on a re-run (the machine, not the model, may have been at fault; or
        the run stopped before it)."""
        return self.environmental or self in (Cause.INTERRUPTED, Cause.BUDGET)


#: how a sweep stopped early is described (``sextant.earlystop.stop_reason``)
CUTOFF_WORDS = "stopped early: cannot win"
#: how a candidate screened out is described (``sextant.screening.screen_verdict``)
SCREENED_WORDS = "screened out"


class Stop(str, Enum):
    """Why a profile sweep ended."""

    MAX_BATCH = "max_batch"  # it reached the largest batch size
    PLATEAU = "plateau"  # throughput stopped improving
    CUTOFF = "cutoff"  # stopped early: even a bound on its larger batch sizes is under the cut-off share of the best
    SCREENED = "screened"  # a short screen at the ends of the batch range showed it cannot win

    def __str__(self) -> str:
        return self.value


def _to_json(record: Any, renames: Mapping[str, str] = {}) -> dict[str, Any]:  # noqa: B006 - read only
    """Fields in declaration order, leaving out the ones at their "nothing to say" value."""
    out: dict[str, Any] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if value is None or value is False or (f.name in _OPTIONAL_EMPTY and not value):
            continue
        if hasattr(value, "to_json"):
            value = value.to_json()
        elif isinstance(value, Enum):
            value = value.value
        out[renames.get(f.name, f.name)] = value
    return out


_OPTIONAL_EMPTY = {"log_tail"}


@dataclass(frozen=True)
class StepRecord:
    """One export or conversion: where it came from, its key, and how it ended."""

    kind: str
    spec: str
    plugin: str
    parent: str  # the step it read, or "source"
    format: str
    precision: str
    device: str
    key: str
    status: Status = Status.PENDING
    reason: str | None = None
    cause: Cause | None = None
    log_tail: str = ""
    traceback: str | None = None
    seconds: float | None = None
    log: str | None = None
    artifact: str | None = None  # relative to the package
    content: str | None = None  # hash of the artifact's bytes
    #: fingerprint of the artifact's canonical form (its format's ``FormatSpec.canonical_hash``)
    canonical: str | None = None
    cached: bool = False
    #: the earlier step of the run whose artifact has the same bytes or canonical form (status ``duplicate``)
    duplicate_of: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _to_json(self, {"parent": "from"})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StepRecord:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["parent"] = data.get("from", "source")
        return cls(**_typed(values))


@dataclass(frozen=True)
class Correctness:
    """The comparator's verdict over every correctness batch, with the tolerance it applied."""

    passed: bool
    outputs: tuple[Mapping[str, Any], ...]  # one report per output (sextant.compare.OutputReport)
    atol: float
    rtol: float
    summary: str

    @property
    def max_abs_error(self) -> float:
        return max((o["max_abs_error"] for o in self.outputs), default=0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "outputs": [dict(o) for o in self.outputs],
            "atol": self.atol,
            "rtol": self.rtol,
            "summary": self.summary,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Correctness:
        return cls(data["passed"], tuple(data["outputs"]), data["atol"], data["rtol"], data.get("summary", ""))


@dataclass(frozen=True)
class Point:
    """One batch size's measurement of a candidate, in milliseconds and items/s.

    A profile point (:mod:`sextant.profiler`) has the window statistics and, from runners that time
    them, ``stages_ms``; a generation point (:mod:`sextant.generation.measure`) has the prompt, the
    tokens and ``ttft_ms``, its ``throughput`` in output tokens/s and its ``p50_ms`` to ``p99_ms`` the
    inter-token latency. ``memory_mb``: the peak resident memory while measured (MB, 2**20 bytes),
    ``device_memory_mb`` the GPU's. JSON keys it does not know are kept in ``extra``, and a point read
    from JSON is written back with the keys it was read with, in their order.
    """

    batch: int
    p50_ms: float
    p99_ms: float
    throughput: float
    p90_ms: float | None = None
    p95_ms: float | None = None
    mean_ms: float | None = None
    std_ms: float | None = None
    calls: int | None = None
    windows: int | None = None
    stable: bool | None = None
    window_spread: float | None = None
    stages_ms: Mapping[str, float] | None = None
    memory_mb: float | None = None
    device_memory_mb: float | None = None
    remeasured: int = 0  # times measured again for being off its neighbours' trend (``profiler.sweep``)
    prompt_length: int | None = None
    new_tokens: int | None = None
    ttft_ms: float | None = None
    repeats: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    read_keys: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def per_item_ms(self) -> float:
        return (self.mean_ms or self.p50_ms) / self.batch

    @property
    def metrics(self) -> dict[str, float]:
        """What an :class:`~sextant.objective.Objective` reads: the batch size and each metric measured."""
        return {k: v for k in _METRICS if (v := getattr(self, k)) is not None}

    def to_json(self) -> dict[str, Any]:
        keys = self.read_keys or (GENERATION_KEYS if self.new_tokens is not None else PROFILE_KEYS)
        return {k: self.extra[k] if k in self.extra else getattr(self, k) for k in keys}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Point:
        known = {k: v for k, v in data.items() if k in _KNOWN}
        return cls(**known, extra={k: v for k, v in data.items() if k not in _KNOWN}, read_keys=tuple(data))


#: a profile point's and a generation point's JSON keys, in the order they are written
PROFILE_KEYS = (
    "batch", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms", "std_ms", "throughput", "calls", "windows", "stable",
    "window_spread", "stages_ms", "memory_mb", "device_memory_mb", "remeasured",
)  # fmt: skip
GENERATION_KEYS = (
    "batch", "prompt_length", "new_tokens", "ttft_ms", "p50_ms", "p90_ms", "p99_ms", "throughput", "repeats", "memory_mb",
)  # fmt: skip
_KNOWN = set(PROFILE_KEYS + GENERATION_KEYS)
_METRICS = ("batch", "throughput", "p50_ms", "p90_ms", "p99_ms", "memory_mb", "ttft_ms")


@dataclass(frozen=True)
class Profile:
    """Profile points, the threads they used, why the sweep stopped, and the resident memory of the
    candidate's process once loaded."""

    points: tuple[Point, ...] = ()
    threads: int | None = None
    stopped: str | None = None  # in words
    loaded_memory_mb: float | None = None
    stop: Stop | None = None  # in one word (not recorded before this field existed)

    @property
    def cut_off(self) -> bool:
        return self.stop is Stop.CUTOFF

    @property
    def screened(self) -> bool:
        """Its points are a short screen, not a sweep: the candidate was screened out and never
        competes (:mod:`sextant.screening`)."""
        return self.stop is Stop.SCREENED

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"points": [p.to_json() for p in self.points], "threads": self.threads}
        if self.stopped is not None:
            out["stopped"] = self.stopped
        if self.stop is not None:
            out["stop"] = self.stop.value
        if self.loaded_memory_mb is not None:
            out["loaded_memory_mb"] = self.loaded_memory_mb
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Profile:
        stop = data.get("stop")
        return cls(
            tuple(Point.from_json(p) for p in data.get("points", ())),
            data.get("threads"),
            data.get("stopped"),
            data.get("loaded_memory_mb"),
            Stop(stop) if stop else _stop_in_words(data.get("stopped")),
        )


def _stop_in_words(stopped: str | None) -> Stop | None:
    """The stop of a package written before ``stop`` was recorded, from the words it did record."""
    for prefix, stop in (
        (CUTOFF_WORDS, Stop.CUTOFF),
        ("reached max batch", Stop.MAX_BATCH),
        ("throughput stopped improving", Stop.PLATEAU),
    ):
        if stopped and stopped.startswith(prefix):
            return stop
    return None


@dataclass(frozen=True)
class CandidateKeys:
    """``outputs``: what the outputs depend on; ``profile``: that plus the profiler's settings."""

    outputs: str
    profile: str

    def to_json(self) -> dict[str, str]:
        return {"outputs": self.outputs, "profile": self.profile}


@dataclass(frozen=True)
class CandidateRecord:
    """One candidate: what it is, how it was judged and measured, and how it ranks."""

    step: str  # the step whose artifact it runs, or "source"
    format: str
    runner: str
    plugin: str
    device: str
    precision: str
    options: Mapping[str, Any] = field(default_factory=dict)
    status: Status = Status.PENDING
    reason: str | None = None
    cause: Cause | None = None
    log_tail: str = ""
    traceback: str | None = None
    artifact: str | None = None
    keys: CandidateKeys | None = None
    outputs: str | None = None
    log: str | None = None
    load_seconds: float | None = None
    correctness: Correctness | None = None
    verified: bool | None = None
    verify_error: str | None = None
    profile: Profile | None = None
    seconds: float | None = None
    cached: bool = False
    best_point: Point | None = None  # set by the selection
    speedup: float | None = None  # set by the selection
    #: a text-generation candidate's time to first token at batch 1, by prompt length (ms)
    ttft_ms: Mapping[str, float] | None = None
    #: the candidate measured in its place: the same runner, options, device and precision on an
    #: artifact with the same bytes, or a runner that compiled the same graph to run the same way
    #: (the same ``fingerprint``) (status ``duplicate``; :mod:`sextant.optimizer.duplicates`)
    duplicate_of: str | None = None
    #: what its runner said it runs once loaded (:class:`sextant.runtime.Fingerprinted`)
    fingerprint: str | None = None

    @property
    def points(self) -> tuple[Point, ...]:
        return self.profile.points if self.profile else ()

    @property
    def screened(self) -> bool:
        return self.profile is not None and self.profile.screened

    @property
    def unprofiled(self) -> bool:
        """Correct, and not profiled yet: the reference between its outputs and its place in the order."""
        return self.status == Status.OK and self.profile is None

    @property
    def profiled_in_full(self) -> bool:
        """Correct and swept in full: it competes, and is a rival to the candidates after it."""
        return self.status == Status.OK and self.profile is not None and not self.screened

    def to_json(self) -> dict[str, Any]:
        out = _to_json(self)
        out["options"] = dict(self.options)
        if self.verified is False:
            out["verified"] = False
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CandidateRecord:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        return cls(**_typed(values))


def _typed(values: dict[str, Any]) -> dict[str, Any]:
    """JSON values → the records' field types."""
    if "status" in values:
        values["status"] = Status(values["status"])
    if values.get("cause") is not None:
        values["cause"] = Cause(values["cause"])
    if isinstance(values.get("keys"), Mapping):
        values["keys"] = CandidateKeys(**values["keys"])
    if isinstance(values.get("correctness"), Mapping):
        values["correctness"] = Correctness.from_json(values["correctness"])
    if isinstance(values.get("profile"), Mapping):
        values["profile"] = Profile.from_json(values["profile"])
    if isinstance(values.get("best_point"), Mapping):
        values["best_point"] = Point.from_json(values["best_point"])
    return values


Record = StepRecord | CandidateRecord
