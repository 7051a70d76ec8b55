"""What a run says while it goes (``optimize(on_event=...)``, ``optimize_pipeline(on_event=...)``):
one frozen dataclass per kind of progress, each with its ``kind`` in one word for a quick filter
(``event.kind == "candidate_start"``). They stay in the process that runs: no JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from sextant.generation.plan import GenerationPlan
    from sextant.package.document import RunDocument
    from sextant.pipelines.records import CompositeRecord, StructureRecord
    from sextant.planner import Plan
    from sextant.records import CandidateRecord, Point, StepRecord
    from sextant.specs import SourceModel


@dataclass(frozen=True)
class Planned:
    """The run's plan (a generation run's, for a causal LM), before anything runs."""

    plan: Plan | GenerationPlan
    source: SourceModel
    kind: ClassVar[str] = "plan"


@dataclass(frozen=True)
class StepStarted:
    """An export or conversion starts in a child."""

    id: str
    kind: ClassVar[str] = "step_start"


@dataclass(frozen=True)
class StepEnded:
    """A step's record: built, reused, failed, skipped or a duplicate."""

    id: str
    record: StepRecord
    kind: ClassVar[str] = "step_end"


@dataclass(frozen=True)
class CandidateStarted:
    """A candidate starts in a child (one reused or skipped never starts)."""

    id: str
    kind: ClassVar[str] = "candidate_start"


@dataclass(frozen=True)
class CandidatePoint:
    """One profile point of a candidate; ``screen``: of its short screen."""

    id: str
    point: Point
    screen: bool = False
    kind: ClassVar[str] = "candidate_point"


@dataclass(frozen=True)
class CandidateEnded:
    """A candidate's record, whatever became of it."""

    id: str
    record: CandidateRecord
    kind: ClassVar[str] = "candidate_end"


@dataclass(frozen=True)
class Noted:
    """A note the run adds to the package (or only says, as a report without plots)."""

    text: str
    kind: ClassVar[str] = "note"


@dataclass(frozen=True)
class Done:
    """The run's last ``status.json`` (written before the report and the manifest)."""

    document: RunDocument
    kind: ClassVar[str] = "done"


@dataclass(frozen=True)
class PartStarted:
    """A pipeline's part (``module``) starts its optimize run for one call structure."""

    module: str
    structure: str
    kind: ClassVar[str] = "part_start"


@dataclass(frozen=True)
class PartEnded:
    module: str
    record: StructureRecord
    kind: ClassVar[str] = "part_end"


@dataclass(frozen=True)
class PipelineDone:
    """The pipeline's record, as written to ``pipeline.json``."""

    record: CompositeRecord
    kind: ClassVar[str] = "pipeline_done"


Event = (
    Planned
    | StepStarted
    | StepEnded
    | CandidateStarted
    | CandidatePoint
    | CandidateEnded
    | Noted
    | Done
    | PartStarted
    | PartEnded
    | PipelineDone
)
EventHandler = Callable[[Event], None]
