"""What the callables named by specs receive and return at run time.

Plugins implement these shapes; they never subclass core classes. Requests are plain frozen
dataclasses built by the pipeline inside the isolated child process.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from sextant.signature import Signature
    from sextant.specs import Param


@dataclass(frozen=True)
class StepRequest:
    """Input to an exporter or converter.

    ``input`` is the artifact to read (the source artifact for an exporter); the step writes its
    artifact into the empty folder ``output_dir`` and returns the path. ``samples`` holds example
    batches (``sextant.samples.load_batches`` reads them) for tracing and calibration.
    """

    input: Path
    output_dir: Path
    signature: Signature
    samples: Path
    device: str = "cpu"
    max_batch: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunnerRequest:
    """Input to a runner's ``load``: the artifact, where and how to run it.

    ``shared`` says that the runner shares its process with other work between its calls (a
    pipeline's other parts, see ``sextant.optimize_pipeline``): a runner whose threads busy-wait
    for the next call (ONNX Runtime's spinning) should not, as they would take the cores the
    rest of the pipeline needs.
    """

    artifact: Path
    signature: Signature
    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)
    shared: bool = False


def ignored_inputs(signature: Signature, takes: Iterable[str]) -> frozenset[str]:
    """The run's inputs (``signature``) that a graph taking ``takes`` does not take.

    An exporter may drop an input the model never reads (the TorchScript-based ONNX exporter drops
    the encoder states a decoder's cached step ignores). A runner of such a graph leaves these out
    of each batch it is given, and still refuses a name that neither the run nor the graph knows."""
    return frozenset(signature.input_names) - frozenset(takes)


@dataclass(frozen=True)
class GeneratorRequest:
    """Input to a generator's ``load``: the artifact (the source's ``save_pretrained`` folder, or
    what the generator's ``build`` wrote), where and how to run it, and the largest work it will be
    given: ``max_batch`` sequences of at most ``max_length`` tokens (prompt and generated), what a
    static KV cache must hold."""

    artifact: Path
    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 1
    options: Mapping[str, Any] = field(default_factory=dict)
    max_batch: int = 1
    max_length: int = 256


@dataclass(frozen=True)
class DeployRequest:
    """Input to a deployer: which candidate of which package, to where, with what settings.

    ``candidate`` is a candidate id, or ``None`` for the package's selected best (or the regime pick
    that fits the serving batch size: :func:`sextant.deploying.choose_candidate`). ``target`` is
    where it goes (a model repository folder, a URL), ``name`` the served model's name (default:
    the package's model name). ``options`` are the deployer's own settings (its
    ``DeployerSpec.options``); ``force`` allows replacing what is already there; ``trust_source``
    lets the deployed model unpickle the candidate's files (see ``CandidateView.verify``).
    """

    package: Path
    target: str
    candidate: str | None = None
    name: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    force: bool = False
    trust_source: bool = False


@dataclass(frozen=True)
class Deployment:
    """What a deployer wrote: where, under which name, which candidate, the files, notes for the
    user, what to run next (one command a line, printed as given), and ``details`` for ``--json``."""

    target: str
    name: str
    files: tuple[Path, ...] = ()
    notes: tuple[str, ...] = ()
    candidate: str | None = None
    next_steps: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Runner(Protocol):
    """A loaded model. ``infer`` takes and returns named numpy arrays (a whole batch)."""

    def infer(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]: ...

    def close(self) -> None: ...


@runtime_checkable
class Generator(Protocol):
    """A loaded causal LM, run as a generation loop. ``prefill`` runs the prompts (``input_ids`` and
    ``attention_mask``: int64 ``[batch, length]``) and returns the logits of the last position
    (float32 ``[batch, vocab]``) and the state to continue from (the KV cache, positions: the
    generator's own); ``decode`` appends one token per sequence (``next_ids``: int64 ``[batch]``)
    and returns the next logits and state. A state is used once: decode may update it in place.
    ``vocab_size`` and ``max_positions`` (the longest sequence the model takes) are checked before
    anything runs."""

    vocab_size: int
    max_positions: int

    def prefill(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, Any]: ...

    def decode(self, state: Any, next_ids: np.ndarray) -> tuple[np.ndarray, Any]: ...

    def close(self) -> None: ...


@runtime_checkable
class StreamingGenerator(Protocol):
    """A generator whose backend owns the generation loop (openvino-genai's pipeline): ``stream``
    runs it greedily from ``input_ids`` (int64 ``[batch, length]``, unpadded) for exactly
    ``max_new_tokens`` tokens (an end-of-sequence id does not stop it) and yields each step's new
    ids (int64 ``[batch]``) as the backend produces them. sextant measures such a generator
    through ``stream`` (time to its first token, the gaps between tokens) and judges its streamed
    ids against the reference's (agreement); its ``prefill`` / ``decode`` (the same model, token by
    token) give the logits teacher forcing compares."""

    def stream(self, input_ids: np.ndarray, max_new_tokens: int) -> Iterator[np.ndarray]: ...


@runtime_checkable
class SequenceBatcher(Protocol):
    """Optional for a :class:`Generator`: sequences join and leave one running batch between decode
    steps (continuous batching), so a server decodes every request it holds in one ``decode`` call.

    ``join(batch, state)`` appends the sequence of ``state`` (what ``prefill`` returned for one
    prompt, a batch of one) to ``batch`` (a state from ``join``, ``leave`` or ``decode``; ``None``
    starts one) as its last row, whatever the two lengths, and returns the batch's state.
    ``leave(batch, rows)`` returns it without the given rows (positions in the batch, its order
    kept), ``None`` when none is left. ``decode(batch, next_ids)`` is the generator's own: one token
    per row, each row's logits those the sequence gets decoded alone (up to floating-point
    rounding). The states passed in are used up, as ``decode``'s are. A generator without these
    methods is served one sequence at a time."""

    def join(self, batch: Any | None, state: Any) -> Any: ...

    def leave(self, batch: Any, rows: Sequence[int]) -> Any | None: ...


@runtime_checkable
class StreamBatcher(Protocol):
    """Optional for a :class:`StreamingGenerator`: its backend runs several sequences at once in its
    own loop (openvino-genai's continuous-batching pipeline), sequences added and removed between
    its steps, so a server runs every request it holds in that loop.

    ``add(input_ids, max_new_tokens)`` queues one sequence (``input_ids``: int64 ``[length]``),
    greedy for exactly ``max_new_tokens`` tokens as ``stream``'s, and returns its handle (hashable;
    the generator's own). ``step()`` runs one step of the backend over the sequences it holds and
    returns, by handle, each one's new ids (int64 ``[n]``, ``n >= 1``; a sequence that got none this
    step is left out) or the exception that ended it (the backend dropped it: no more ids come);
    every sequence's ids are those ``stream`` gives it alone. A sequence that has all its tokens is
    done: nothing more is to be done with its handle. ``cancel(handle)`` stops a sequence that is
    not done (no more ids come; a handle already done or cancelled is ignored). A generator
    without these methods is served one request at a time."""

    def add(self, input_ids: np.ndarray, max_new_tokens: int) -> Hashable: ...

    def step(self) -> Mapping[Hashable, np.ndarray | Exception]: ...

    def cancel(self, handle: Hashable) -> None: ...


@runtime_checkable
class StageTimer(Protocol):
    """A runner that times the stages of a call (a GPU runner: copies in, compute, copies out).

    ``stage_times`` returns the mean milliseconds per call of each stage since it was last called,
    and starts a new count; the profiler records them with each batch size's point.
    """

    def stage_times(self) -> Mapping[str, float]: ...


@runtime_checkable
class Fingerprinted(Protocol):
    """A runner that can name what it runs once loaded: the backend's compiled graph (its
    operations, their kernels, layouts and precisions, how they connect) and the settings it runs
    it with, hashed. Two runners with the same fingerprint compute the same way, so they are as
    fast as each other: a run profiles one and records the other as its duplicate
    (:mod:`sextant.optimizer.duplicates`). Weights need not count (the candidates' outputs are
    judged each on their own); anything that changes speed must. ``None``: it cannot tell.
    """

    def fingerprint(self) -> str | None: ...


@runtime_checkable
class Synchronizer(Protocol):
    """A runner whose device may still be working when a call returns (a GPU runner that enqueues
    work and leaves results on the device).

    ``synchronize`` waits until the device has finished everything the runner gave it. The profiler
    calls it before each reading of its clock, so a timed call ends when its device work does, and
    no earlier call's work is counted in the next one.
    """

    def synchronize(self) -> None: ...


@runtime_checkable
class SearchStrategy(Protocol):
    """Proposes configurations; ``ask`` returns the next ones to measure, empty when done.

    ``history`` holds ``(configuration, score)`` pairs measured so far, higher scores better,
    ``None`` for a configuration that failed or broke a constraint.
    """

    space: Sequence[Param]

    def ask(self, history: Sequence[tuple[Mapping[str, Any], float | None]]) -> list[dict[str, Any]]: ...
