"""The public home of the data model that hooks receive; the types live in `core/model.py`."""

from .core.choices import OUTCOMES, SEVERITIES, VERDICTS, Outcome, Verdict
from .core.decision import run_passes, status
from .core.gate import Gate
from .core.model import (
    Finding,
    Held,
    NotReviewed,
    RunResult,
    Section,
    SectionResult,
    Settings,
    Usage,
    Vote,
    Voter,
)

__all__ = [
    "OUTCOMES",
    "SEVERITIES",
    "VERDICTS",
    "Finding",
    "Gate",
    "Held",
    "NotReviewed",
    "Outcome",
    "RunResult",
    "Section",
    "SectionResult",
    "Settings",
    "Usage",
    "Verdict",
    "Vote",
    "Voter",
    "run_passes",
    "status",
]
