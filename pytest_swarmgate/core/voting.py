"""Consensus: votes to outcomes, and the Gate that decides what passes. Pure, no I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, get_args

from .model import Outcome, RunResult, Section, SectionResult, Vote, Voter
from .promise import InconclusivePolicy, broken

__all__ = [
    "INCONCLUSIVE_POLICIES",
    "Gate",
    "InconclusivePolicy",
    "check_threshold",
    "check_voter_ids",
    "count",
    "decided",
    "judge",
    "outcome",
]

INCONCLUSIVE_POLICIES: tuple[InconclusivePolicy, ...] = get_args(InconclusivePolicy)


def check_threshold(n: int, k: int) -> None:
    """Raise ValueError unless 1 <= K <= N."""
    if n < 1:
        raise ValueError(f"the panel needs at least one voter, got N={n}")
    if not 1 <= k <= n:
        raise ValueError(f"threshold K must be between 1 and N={n}, got K={k}")


def outcome(safe: int, unsafe: int, n: int, k: int) -> Outcome:
    """SAFE when SAFE votes reach K; UNSAFE when UNSAFE votes put K out of reach; else INCONCLUSIVE.

    ERROR votes count for neither side, so enough of them leave both out of reach.
    """
    check_threshold(n, k)
    if safe + unsafe > n:
        raise ValueError(f"{safe} SAFE + {unsafe} UNSAFE votes exceed a panel of {n}")
    if safe >= k:
        return "SAFE"
    if unsafe > n - k:
        return "UNSAFE"
    return "INCONCLUSIVE"


def decided(safe: int, unsafe: int, errors: int, n: int, k: int) -> Outcome | None:
    """The outcome if the votes still pending cannot change it, else None."""
    pending = n - safe - unsafe - errors
    if pending < 0:
        raise ValueError(f"{safe + unsafe + errors} votes exceed a panel of {n}")
    final = outcome(safe, unsafe, n, k)
    if final != "INCONCLUSIVE" or pending == 0:
        return final
    if safe + pending < k and unsafe + pending <= n - k:
        return "INCONCLUSIVE"
    return None


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


_INCONCLUSIVE_TEXT: dict[InconclusivePolicy, str] = {
    "fail": "INCONCLUSIVE counts as flagged",
    "warn": "INCONCLUSIVE passes (warn)",
    "pass": "INCONCLUSIVE passes",
}


@dataclass(frozen=True)
class Gate:
    """The gate in force: K SAFE votes of a panel of N, and what an INCONCLUSIVE section does.

    The one place that decides a section's outcome and whether a section, a set of sections
    or a whole run passes; every item, report, exit status and calibration asks it.
    """

    n: int
    k: int
    on_inconclusive: InconclusivePolicy = "fail"

    def __post_init__(self) -> None:
        check_threshold(self.n, self.k)
        if self.on_inconclusive not in INCONCLUSIVE_POLICIES:
            raise ValueError(
                f"on_inconclusive must be one of {', '.join(INCONCLUSIVE_POLICIES)}, got {self.on_inconclusive!r}"
            )

    def at(self, k: int) -> Gate:
        """The same gate at threshold K."""
        return replace(self, k=k)

    def outcome(self, safe: int, unsafe: int) -> Outcome:
        return outcome(safe, unsafe, self.n, self.k)

    def judge(self, section: Section, votes: Iterable[Vote]) -> SectionResult:
        return judge(section, votes, self.n, self.k)

    @property
    def inconclusive_passes(self) -> bool:
        return self.on_inconclusive != "fail"

    def section_passes(self, outcome: Outcome) -> bool:
        """SAFE passes, UNSAFE fails, INCONCLUSIVE as the policy says."""
        return outcome == "SAFE" or (outcome == "INCONCLUSIVE" and self.inconclusive_passes)

    def warns(self, outcome: Outcome) -> bool:
        """Whether a passing section still deserves a warning (INCONCLUSIVE under `warn`)."""
        return outcome == "INCONCLUSIVE" and self.on_inconclusive == "warn"

    def sections_pass(self, outcomes: Iterable[Outcome]) -> bool:
        """Whether every one of these section outcomes passes."""
        return all(self.section_passes(o) for o in outcomes)

    def broken(self, run: RunResult) -> list[str]:
        """Why this run may not pass, one line each (the promise, core/promise.py); empty when it passes."""
        stopped = run.stopped.line() if run.stopped is not None else None
        return broken(run.results, run.not_reviewed, run.held, run.released, self.on_inconclusive, stopped=stopped)

    def run_passes(self, run: RunResult) -> bool:
        """The decision on a whole run: the promise kept - the review completed, nothing held, every
        section passes, and nothing unread but media or what the job's own configuration leaves out."""
        return not self.broken(run)

    def describe_inconclusive(self) -> str:
        return _INCONCLUSIVE_TEXT[self.on_inconclusive]

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "k": self.k, "on_inconclusive": self.on_inconclusive}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Gate:
        return cls(n=int(d["n"]), k=int(d["k"]), on_inconclusive=d.get("on_inconclusive") or "fail")
