"""The gate's promise, enforced in one place. Pure.

Exit 0 only when every changed path of the diff was judged SAFE by the panel, or is a file
that may stay unreviewed (a media file, or one the gate's own configuration leaves out), or
was released by a human for this exact diff. Every report, item and exit status asks here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from .model import MAY_STAY_UNREVIEWED, NotReviewed, SectionResult

InconclusivePolicy = Literal["fail", "warn", "pass"]


def may_stay_unreviewed(entry: NotReviewed, released: Iterable[str] = ()) -> bool:
    """Media, a deleted binary, the configuration's choice, or released by a human for this diff."""
    if entry.kind in MAY_STAY_UNREVIEWED:
        return True
    if entry.kind == "binary" and entry.change == "deleted":
        return True
    return any(line.startswith(f"{entry.path}: ") for line in released)


def broken(
    results: Iterable[SectionResult],
    not_reviewed: Iterable[NotReviewed],
    held: Iterable[str],
    released: Iterable[str] = (),
    on_inconclusive: InconclusivePolicy = "fail",
    *,
    stopped: str | None = None,
) -> list[str]:
    """Why this run may not exit 0, one line each; empty when the promise is kept.

    `stopped`: the stop's own line (`Stopped.line()`, which already names the cause): a run-wide
    fault, the deadline, a ceiling.
    """
    released = tuple(released)
    why = [stopped] if stopped is not None else []
    why += [f"held for a human: {line}" for line in held]
    for result in results:
        if result.outcome == "UNSAFE" or (result.outcome == "INCONCLUSIVE" and on_inconclusive == "fail"):
            why.append(f"{result.section.id}: {result.outcome}")
        elif result.outcome not in ("SAFE", "INCONCLUSIVE"):
            why.append(f"{result.section.id}: no outcome ({result.outcome})")
    why += [
        f"{entry.path}: not reviewed ({entry.reason}), and only media may stay unreviewed"
        for entry in not_reviewed
        if not may_stay_unreviewed(entry, released)
    ]
    return why
