"""The run's ledger: every record, one owner that writes ``status.json`` and emits an event for each.

``status.json`` is rewritten atomically after every change, so an interrupted run loses nothing.
Records of an earlier run in the same workspace stay until this run replaces them; a finished run
drops those its plan no longer has.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sextant.atomic import write_json
from sextant.optimizer.events import CandidateEnded, Event, EventHandler, Noted, StepEnded
from sextant.package import Earlier
from sextant.package.document import STATUS, RunDocument
from sextant.records import CandidateRecord, StepRecord


class Ledger:
    """Records of steps and candidates, the run's header (a :class:`RunDocument`), and the earlier
    run's document (``previous``)."""

    def __init__(self, folder: Path, header: Mapping[str, Any], previous: Earlier | None, emit: EventHandler):
        self._path = folder / STATUS
        self._emit = emit
        #: the run's header entries (``steps`` and ``candidates`` live below, as this run changes them)
        self.header = RunDocument().updated(**header)
        self.unreadable = list(previous.dropped) if previous else []  # records of the earlier run that did not parse
        self.previous = previous.document if previous else RunDocument()
        self.steps: dict[str, StepRecord] = dict(self.previous.steps)
        self.candidates: dict[str, CandidateRecord] = dict(self.previous.candidates)
        self.run_steps: list[str] = []  # recorded by this run, in order
        self.run_candidates: list[str] = []

    # -- reading --------------------------------------------------------------------------------

    def previous_step(self, step_id: str) -> StepRecord | None:
        """What an earlier run recorded for this step (whatever this run did since)."""
        return self.previous.steps.get(step_id)

    def previous_candidate(self, candidate_id: str) -> CandidateRecord | None:
        return self.previous.candidates.get(candidate_id)

    def unreadable_note(self) -> str | None:
        """What the run says when records of the earlier run could not be read."""
        if not self.unreadable:
            return None
        shown = ", ".join(self.unreadable[:5]) + (" ..." if len(self.unreadable) > 5 else "")
        return f"{len(self.unreadable)} record(s) of the earlier run could not be read and are redone: {shown}"

    def recorded(self, candidate_id: str) -> bool:
        """Whether this run has recorded the candidate."""
        return candidate_id in self.run_candidates

    def measured(self, candidate_id: str) -> bool:
        """Whether this run got to the candidate: recorded, and, when correct, profiled (the
        reference waits for its profile, correct, until its place in the order)."""
        return self.recorded(candidate_id) and not self.candidates[candidate_id].unprofiled

    # -- writing --------------------------------------------------------------------------------

    def record_step(self, step_id: str, record: StepRecord) -> None:
        self.steps[step_id] = record
        self.run_steps.append(step_id)
        self._save_unless_cached(record)
        self._emit(StepEnded(step_id, record))

    def record_candidate(self, candidate_id: str, record: CandidateRecord, *, announce: bool = True) -> None:
        self.candidates[candidate_id] = record
        if candidate_id not in self.run_candidates:
            self.run_candidates.append(candidate_id)
        self._save_unless_cached(record)
        if announce:
            self._emit(CandidateEnded(candidate_id, record))

    def set(self, **entries: Any) -> None:
        """Set header entries (``signature``, ``baseline``, ``selection``, ...; typed or as JSON,
        ``None`` removes one) and save."""
        self.header = self.header.updated(**entries)
        self.save()

    def note(self, text: str) -> None:
        self.header = self.header.updated(notes=(*self.header.notes, text))
        self._emit(Noted(text))

    def emit(self, event: Event) -> None:
        self._emit(event)

    def keep_only(self, step_ids: list[str], candidate_ids: list[str]) -> None:
        """Drop records the plan no longer has (a finished run), in plan order."""
        self.steps = {s: self.steps[s] for s in step_ids}
        self.candidates = {c: self.candidates[c] for c in candidate_ids}

    @property
    def document(self) -> RunDocument:
        """status.json's content."""
        return self.header.with_records(self.steps, self.candidates)

    def save(self) -> None:
        write_json(self._path, self.document.to_json())

    def _save_unless_cached(self, record: StepRecord | CandidateRecord) -> None:
        """Save after each new result; a result reused from the workspace is already in the file
        this run started from, so nothing is lost if the run stops before the next save."""
        if not record.cached:
            self.save()
