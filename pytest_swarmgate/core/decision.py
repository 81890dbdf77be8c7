"""What passes, decided in one place. Pure.

The gate's promise: exit 0 only when every changed path of the diff was judged SAFE by the
panel, or is a file that may stay unreviewed (a media file, or one the gate's own
configuration leaves out), or was released by a human for this exact diff. Every item,
report, exit status and the calibration ask here whether a section, a fixture or a run
passes, and how a run ranks (`status`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from .choices import InconclusivePolicy, NotReviewedKind, Outcome, RunStatus
from .gate import Gate
from .model import Held, NotReviewed, RunResult, SectionResult, Stopped

# Media by the gate's own list, or left out by the configuration; every other kind must be judged or released.
MAY_STAY_UNREVIEWED: tuple[NotReviewedKind, ...] = ("media", "excluded", "configured")


def _outcome_passes(outcome: Outcome, on_inconclusive: InconclusivePolicy) -> bool:
    return outcome == "SAFE" or (outcome == "INCONCLUSIVE" and on_inconclusive != "fail")


def section_passes(gate: Gate, outcome: Outcome) -> bool:
    """SAFE passes, UNSAFE fails, INCONCLUSIVE as the policy says."""
    return _outcome_passes(outcome, gate.on_inconclusive)


def warns(gate: Gate, outcome: Outcome) -> bool:
    """Whether a passing section still deserves a warning (INCONCLUSIVE under `warn`)."""
    return outcome == "INCONCLUSIVE" and gate.on_inconclusive == "warn"


def sections_pass(gate: Gate, outcomes: Iterable[Outcome]) -> bool:
    """Whether every one of these section outcomes passes: a fixture is blocked when they do not."""
    return all(section_passes(gate, o) for o in outcomes)


def may_stay_unreviewed(entry: NotReviewed, released: Iterable[Held] = ()) -> bool:
    """Media, a deleted binary, the configuration's choice, or released by a human for this diff."""
    if entry.kind in MAY_STAY_UNREVIEWED:
        return True
    if entry.kind == "binary" and entry.change == "deleted":
        return True
    return any(held.path == entry.path for held in released)


def broken(
    results: Iterable[SectionResult],
    not_reviewed: Iterable[NotReviewed],
    held: Iterable[Held],
    released: Iterable[Held] = (),
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
    why += [f"held for a human: {h.line()}" for h in held]
    for result in results:
        if result.outcome not in ("SAFE", "UNSAFE", "INCONCLUSIVE"):
            why.append(f"{result.section.id}: no outcome ({result.outcome})")
        elif not _outcome_passes(result.outcome, on_inconclusive):
            why.append(f"{result.section.id}: {result.outcome}")
    why += [
        f"{entry.path}: not reviewed ({entry.reason}), and only media may stay unreviewed"
        for entry in not_reviewed
        if not may_stay_unreviewed(entry, released)
    ]
    return why


def run_broken(run: RunResult) -> list[str]:
    """Why this run may not pass, one line each; empty when it passes."""
    stopped = run.stopped.line() if run.stopped is not None else None
    return broken(run.results, run.not_reviewed, run.held, run.released, run.gate.on_inconclusive, stopped=stopped)


def run_passes(run: RunResult) -> bool:
    """The decision on a whole run: the promise kept - the review completed, nothing held, every
    section passes, and nothing unread but media or what the job's own configuration leaves out."""
    return not run_broken(run)


def status(run: RunResult) -> RunStatus:
    """The run as the gate sees it, the worst first: NOT_REVIEWED when it stopped; UNSAFE outranks
    HELD (a change waiting for a human), which outranks the other outcomes, so nobody is asked to
    release a diff that fails anyway."""
    if run.stopped is not None:
        return "NOT_REVIEWED"
    return "HELD" if run.held and run.outcome != "UNSAFE" else run.outcome


def release_helps(run: RunResult) -> bool:
    """Whether releasing the held changes would let the run pass: else asking a human is pointless."""
    return bool(run.held) and sections_pass(run.gate, (r.outcome for r in run.results))


def nothing_valid(results: Iterable[SectionResult]) -> Stopped | None:
    """A run in which not one vote is valid was not reviewed: one line names what the errors share.

    Without it, an endpoint that cannot give verdicts (no tool call in any reply, every call timed
    out) would read as sections of INCONCLUSIVE code, and its exit code as a verdict on the code.
    """
    votes = [v for r in results for v in r.votes]
    if not votes or any(v.verdict != "ERROR" for v in votes):
        return None
    # The error's words up to its first detail in parentheses: display text only, never decided on.
    shared = Counter((v.error or "no reply").partition(" (")[0] for v in votes)
    common, count = shared.most_common(1)[0]
    also = f" ({count} of them)" if count < len(votes) else ""
    return Stopped(
        "fault",
        f"0 of {len(votes)} votes valid: {common}{also} - the endpoint or its model gave no verdict",
        len(votes),
        len(votes),
    )
