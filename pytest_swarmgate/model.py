"""The public home of the data model that hooks receive; the types live in `core/model.py`."""

from .core.model import (
    OUTCOMES,
    SEVERITIES,
    VERDICTS,
    Finding,
    NotReviewed,
    Outcome,
    RunResult,
    Section,
    SectionResult,
    Settings,
    Usage,
    Verdict,
    Vote,
    Voter,
)

__all__ = [
    "OUTCOMES",
    "SEVERITIES",
    "VERDICTS",
    "Finding",
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
]
