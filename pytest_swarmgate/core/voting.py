"""Consensus: pure functions from votes to outcomes. No I/O."""

from __future__ import annotations

from typing import Iterable, Literal

from .model import Outcome, RunResult, Section, SectionResult, Vote

InconclusivePolicy = Literal["fail", "warn", "pass"]


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


def gate_passes(outcomes: Iterable[Outcome], on_inconclusive: InconclusivePolicy = "fail") -> bool:
    """Whether the gate lets the change through: no UNSAFE, and INCONCLUSIVE only when allowed."""
    for o in outcomes:
        if o == "UNSAFE":
            return False
        if o == "INCONCLUSIVE" and on_inconclusive == "fail":
            return False
    return True


def run_passes(run: RunResult, on_inconclusive: InconclusivePolicy = "fail") -> bool:
    """The gate's decision on a whole run: completed, nothing held for a human, and every section passes."""
    return run.stopped is None and not run.held and gate_passes((r.outcome for r in run.results), on_inconclusive)
