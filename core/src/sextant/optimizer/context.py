"""What every step and candidate of one run shares, and how a job is handed to a child."""

from __future__ import annotations

import shlex
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sextant.cache import cache_dir, code_fingerprint
from sextant.causes import out_of_memory
from sextant.isolation import ChildResult, Isolator
from sextant.jobs import Job, job_document
from sextant.messages import ChildEvent, parse_event
from sextant.objective import Objective
from sextant.options import OptimizeOptions
from sextant.atomic import write_json
from sextant.optimizer.budget import Budget
from sextant.optimizer.ledger import Ledger
from sextant.optimizer.workspace import Workspace, WrittenSource
from sextant.profiler import ProfilerConfig
from sextant.records import Cause, Status
from sextant.signature import Signature


class Reply(Protocol):
    def to_json(self) -> Any: ...


#: sees each message of a job's child; what it returns (for an ask) is the reply
Handler = Callable[[ChildEvent], Reply | None]


@dataclass(frozen=True)
class Run:
    """One run's settings and services. ``signature`` gains the outputs once the reference ran
    (``dataclasses.replace``)."""

    options: OptimizeOptions
    workspace: Workspace
    ledger: Ledger
    isolator: Isolator
    threads: int
    source: WrittenSource
    signature: Signature
    max_batch: int
    inputs_key: str
    #: the run's time (``--budget-s``), started with the run
    budget: Budget = field(default_factory=Budget)
    #: candidates that only compute the reference (the plan's ``reference_only``): never rivals
    reference_only: frozenset[str] = frozenset()
    #: the loader's :attr:`~sextant.specs.SourceModel.probe` of the live model, to explain a failed reference
    probe: Callable[[Mapping[str, Any], Signature], object] | None = field(default=None, compare=False, repr=False)
    #: format name → its ``FormatSpec.canonical_hash`` (:meth:`sextant.plugins.Catalog.canonical_hashes`)
    canonical_hashes: Mapping[str, str] = field(default_factory=dict)
    #: :func:`~sextant.cache.code_fingerprint` by top-level package, computed once per run
    fingerprints: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def code(self, ref: str) -> str:
        """The fingerprint of the installed source that holds ``ref`` (a spec's ``run`` or ``load``)."""
        top = ref.partition(":")[0].split(".", 1)[0]
        if top not in self.fingerprints:
            self.fingerprints[top] = code_fingerprint(ref)
        return self.fingerprints[top]

    @property
    def profiler(self) -> ProfilerConfig:
        fixed = self.signature.max_batch  # a model that fixes its batch size runs at that size only
        return replace(self.options.profiler, max_batch=self.max_batch, min_batch=self.max_batch if fixed else 1)

    @property
    def objective(self) -> Objective:
        return self.options.goal(self.max_batch)

    def child(self, job: Job, name: str, handler: Handler | None = None) -> ChildResult:
        """Write the job next to its log, then run it in an isolated child; ``handler`` sees its
        messages, typed. The result's ``value`` is the child's answer, typed (``job.answer``)."""
        log = self.workspace / self.workspace.log(name)
        document = job_document(job)

        def handle(kind: str, data: Any) -> Any:
            reply = handler(parse_event(kind, data)) if handler else None
            return None if reply is None else reply.to_json()

        try:  # from its first file on, a Ctrl-C stops this step (the log exists before the child does)
            write_json(log.with_suffix(".job.json"), document)
            job_file = shlex.quote(str(log.with_suffix(".job.json")))  # a workspace path may hold spaces
            log.write_text(f"# {name}\n# reproduce in this process: python -m sextant.worker {job_file}\n")
            result = self.isolator.run(
                job.target,
                document["job"],
                log_path=log,
                timeout=self.options.step_timeout,
                handler=handle,
                env={"SEXTANT_CACHE_DIR": str(cache_dir())},
            )
        except KeyboardInterrupt:
            self.ledger.set(interrupted=name)
            raise
        return replace(result, value=job.answer.from_json(result.value)) if result.ok else result


def outcome(result: ChildResult) -> dict[str, Any]:
    """A child's end as record fields: status, seconds, and for a failure its cause and reason."""
    out: dict[str, Any] = {"status": Status.OK if result.ok else Status.FAILED, "seconds": round(result.seconds, 3)}
    if not result.ok:
        if result.timed_out:
            out["cause"] = Cause.TIMEOUT
        elif result.disk_full:
            out["cause"] = Cause.DISK_FULL
        elif result.error:
            out["cause"] = Cause.OUT_OF_MEMORY if out_of_memory(result.error) else Cause.EXCEPTION
        elif result.exitcode == -signal.SIGKILL or ((result.exitcode or 0) < 0 and out_of_memory(result.log_tail)):
            out["cause"] = Cause.OUT_OF_MEMORY  # the kernel's OOM killer, or an abort after a failed allocation
        elif result.exitcode is not None and result.exitcode < 0:
            out["cause"] = Cause.CRASH
        else:
            out["cause"] = Cause.LOST
        out.update(reason=result.reason(), log_tail=result.log_tail, traceback=result.traceback)
    return out
