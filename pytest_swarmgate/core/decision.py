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

from .choices import ErrorKind, InconclusivePolicy, NotReviewedKind, Outcome, RunStatus
from .gate import Gate
from .model import Held, NotReviewed, RunResult, SectionResult, Stopped, Vote
from .prompt import TOOL_NAME
from .text import one_line

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


# Each kind of ERROR vote (core/choices.py) as the run's summary says it.
ERROR_SAID: dict[ErrorKind, str] = {
    "no_tool_call": f"no {TOOL_NAME} tool call",
    "unusable": "unusable reply",
    "timeout": "timed out",
    "request": "request failed",
    "not_sent": "not sent",
    "deadline": "cut by the deadline",
    "voter": "the voter failed",
}
# Kinds no retry fixes: an endpoint that ignores the forced tool choice on every call cannot vote at
# all. An unusable reply, a timeout or a failed request may well pass on the next run.
_NO_RETRY: frozenset[ErrorKind] = frozenset({"no_tool_call"})


def _kind(vote: Vote) -> ErrorKind:
    return vote.error_kind or "request"


def nothing_valid(results: Iterable[SectionResult]) -> Stopped | None:
    """A run in which not one vote is valid was not reviewed: one line names what the errors share.

    Without it, an endpoint that cannot give verdicts (no tool call in any reply, every call timed
    out) would read as sections of INCONCLUSIVE code, and its exit code as a verdict on the code.
    Decided on the votes' error kinds, never their words: when no retry can fix any of them the
    cause is "config" (exit 78), else "fault" (75, try again later).
    """
    votes = [v for r in results for v in r.votes]
    if not votes or any(v.verdict != "ERROR" for v in votes):
        return None
    kinds = Counter(_kind(v) for v in votes)
    kind, count = kinds.most_common(1)[0]
    also = f" ({count} of them)" if count < len(votes) else ""
    if kind == "no_tool_call":
        what = f"no reply contained a {TOOL_NAME} tool call{also}"
    else:
        example = next(v.error for v in votes if _kind(v) == kind) or ERROR_SAID[kind]
        what = f"{ERROR_SAID[kind]}{also}, e.g. {one_line(example, 160)}"
    n = len(votes)
    if all(k in _NO_RETRY for k in kinds):
        return Stopped("config", f"0 of {n} votes valid: {what} - the endpoint or model cannot give verdicts", n, n)
    return Stopped("fault", f"0 of {n} votes valid: {what} - the endpoint gave no verdict", n, n)


def error_summary(results: Iterable[SectionResult]) -> str | None:
    """One line on what a run's ERROR votes have in common, when some are valid and some not."""
    votes = [v for r in results for v in r.votes]
    errors = Counter(_kind(v) for v in votes if v.verdict == "ERROR")
    if not errors or sum(errors.values()) == len(votes):
        return None
    kinds = ", ".join(f"{count} {ERROR_SAID[kind]}" for kind, count in errors.most_common())
    return f"ERROR votes: {sum(errors.values())} of {len(votes)} ({kinds})"
