"""The run's ledger: every record, one owner that writes ``status.json`` and emits an event for each.

``status.json`` is rewritten atomically after every change, so an interrupted run loses nothing.
Records of an earlier run in the same workspace stay until this run replaces them; a finished run
drops those its plan no longer has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sextant.package import SCHEMA_VERSION, STATUS, write_json
from sextant.records import CandidateRecord, StepRecord

EventHandler = Callable[[str, Mapping[str, Any]], None]


class Ledger:
    """Records of steps and candidates, the run's header, and the earlier run's records."""

    def __init__(self, folder: Path, header: Mapping[str, Any], previous: Mapping[str, Any], emit: EventHandler):
        self._path = folder / STATUS
        self._emit = emit
        self.header: dict[str, Any] = {"schema": SCHEMA_VERSION, **header, "notes": []}
        self.unreadable: list[str] = []  # records of the earlier run that did not parse
        self._previous_steps = _parse(previous.get("steps", {}), StepRecord.from_json, self.unreadable)
        self._previous_candidates = _parse(previous.get("candidates", {}), CandidateRecord.from_json, self.unreadable)
        self._previous_header = {k: v for k, v in previous.items() if k not in ("steps", "candidates")}
        self.steps: dict[str, StepRecord] = dict(self._previous_steps)
        self.candidates: dict[str, CandidateRecord] = dict(self._previous_candidates)
        self.run_steps: list[str] = []  # recorded by this run, in order
        self.run_candidates: list[str] = []

    # -- reading --------------------------------------------------------------------------------

    def previous_step(self, step_id: str) -> StepRecord | None:
        """What an earlier run recorded for this step (whatever this run did since)."""
        return self._previous_steps.get(step_id)

    def previous_candidate(self, candidate_id: str) -> CandidateRecord | None:
        return self._previous_candidates.get(candidate_id)

    def previous_header(self, key: str) -> Any:
        """An entry of the earlier run's header (``None`` if it had none)."""
        return self._previous_header.get(key)

    def unreadable_note(self) -> str | None:
        """What the run says when records of the earlier run could not be read."""
        if not self.unreadable:
            return None
        shown = ", ".join(self.unreadable[:5]) + (" ..." if len(self.unreadable) > 5 else "")
        return f"{len(self.unreadable)} record(s) of the earlier run could not be read and are redone: {shown}"

    def recorded(self, candidate_id: str) -> bool:
        """Whether this run has recorded the candidate."""
        return candidate_id in self.run_candidates

    # -- writing --------------------------------------------------------------------------------

    def record_step(self, step_id: str, record: StepRecord) -> None:
        self.steps[step_id] = record
        self.run_steps.append(step_id)
        self._save_unless_cached(record)
        self._emit("step_end", {"id": step_id, "record": record.to_json()})

    def record_candidate(self, candidate_id: str, record: CandidateRecord, *, announce: bool = True) -> None:
        self.candidates[candidate_id] = record
        if candidate_id not in self.run_candidates:
            self.run_candidates.append(candidate_id)
        self._save_unless_cached(record)
        if announce:
            self._emit("candidate_end", {"id": candidate_id, "record": record.to_json()})

    def set(self, **items: Any) -> None:
        """Set header entries (``signature``, ``baseline``, ``selection``, ...) and save."""
        self.header.update(items)
        self.save()

    def note(self, text: str) -> None:
        self.header["notes"].append(text)
        self._emit("note", {"text": text})

    def emit(self, kind: str, data: Mapping[str, Any]) -> None:
        self._emit(kind, data)

    def keep_only(self, step_ids: list[str], candidate_ids: list[str]) -> None:
        """Drop records the plan no longer has (a finished run), in plan order."""
        self.steps = {s: self.steps[s] for s in step_ids}
        self.candidates = {c: self.candidates[c] for c in candidate_ids}

    def document(self) -> dict[str, Any]:
        """status.json's content."""
        return {
            **self.header,
            "steps": {k: r.to_json() for k, r in self.steps.items()},
            "candidates": {k: r.to_json() for k, r in self.candidates.items()},
        }

    def save(self) -> None:
        write_json(self._path, self.document())

    def _save_unless_cached(self, record: StepRecord | CandidateRecord) -> None:
        """Save after each new result; a result reused from the workspace is already in the file
        this run started from, so nothing is lost if the run stops before the next save."""
        if not record.cached:
            self.save()


def _parse(records: Mapping[str, Any], parse: Callable[[Mapping[str, Any]], Any], dropped: list[str]) -> dict[str, Any]:
    """Records of an earlier run; one that does not parse is dropped (it is redone, not trusted)
    and its id added to ``dropped``."""
    out = {}
    for key, data in records.items():
        try:
            out[key] = parse(data)
        except (KeyError, TypeError, ValueError, AttributeError):
            dropped.append(key)
    return out
