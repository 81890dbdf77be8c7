"""Consensus: votes to a section's outcome under the Gate. Pure, no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from .gate import outcome
from .model import Section, SectionResult, Vote, Voter


def count(votes: Iterable[Vote]) -> tuple[int, int, int]:
    """(SAFE, UNSAFE, ERROR) counts; anything but SAFE or UNSAFE counts as ERROR."""
    safe = unsafe = errors = 0
    for v in votes:
        if v.verdict == "SAFE":
            safe += 1
        elif v.verdict == "UNSAFE":
            unsafe += 1
        else:
            errors += 1
    return safe, unsafe, errors


def judge(section: Section, votes: Iterable[Vote], n: int, k: int) -> SectionResult:
    """The SectionResult for one section's votes under threshold K of N."""
    votes = tuple(votes)
    if len(votes) > n:
        raise ValueError(f"{len(votes)} votes for section {section.id} exceed a panel of {n}")
    safe, unsafe, _ = count(votes)
    return SectionResult(section=section, votes=votes, outcome=outcome(safe, unsafe, n, k), n=n, k=k)


def check_voter_ids(panel: Sequence[Voter]) -> None:
    """Raise ValueError when two voters share an id: votes and cached votes are keyed by it."""
    ids = [v.id for v in panel]
    if any(times > 1 for times in Counter(ids).values()):
        raise ValueError(f"voter ids repeat in the panel: {', '.join(ids)}")
