"""Every closed set of words the gate knows, once: the data model, the option table and the
settings all use these. Standard library only: the option table imports it on every pytest start."""

from __future__ import annotations

from typing import Literal, get_args

# A voter's answer; anything but SAFE or UNSAFE (a refusal, a timeout, a bad reply) is an ERROR.
Verdict = Literal["SAFE", "UNSAFE", "ERROR"]
# A section's outcome under K of N.
Outcome = Literal["SAFE", "UNSAFE", "INCONCLUSIVE"]
# A run as the gate sees it, the worst first (see core/decision.py for the ranking).
RunStatus = Literal["NOT_REVIEWED", "UNSAFE", "HELD", "INCONCLUSIVE", "SAFE"]
Severity = Literal["critical", "high", "medium", "low", "info"]
# What a change does to its file, as the parser read it.
ChangeKind = Literal["added", "modified", "deleted", "renamed"]
# Why a changed file is not sent to the panel. The promise and the held check decide on this,
# never on a reason's words: "media" (image, audio, video, font), "binary" (not media, so no
# voter could read it), "oversized" (over --swarm-max-section-chars), "excluded" (the
# include/exclude globs), "configured" (a filter hook's choice; the default, since the
# configuration that makes it is itself held whenever a pull request changes it).
NotReviewedKind = Literal["media", "binary", "oversized", "excluded", "configured"]
# Why calibration left a fixture unscored at one K: votes were errors or missing ("errors", the
# fixture's item fails), every file was excluded by the run's globs ("excluded"), or no
# section was reviewed for another reason ("nothing_reviewed"); the last two are skipped.
NotScoredKind = Literal["errors", "excluded", "nothing_reviewed"]
# Why a change is held for a human: it steers the gate's run (CI, CODEOWNERS, start-up files),
# it reconfigures pytest or the gate, no voter could read it, or it is over the section ceiling.
HeldKind = Literal["steering", "config", "unreadable", "oversized", "hidden"]
# Why a review could not be completed: a check before collection failed, a run-wide fault
# stopped the calls and may pass later, a fault only a person can fix ("config"), --swarm-deadline came first,
# the diff is over a ceiling (sections, input tokens, bytes).
StopCause = Literal["preflight", "fault", "config", "deadline", "ceiling"]
# Why a vote is an ERROR, decided where the vote is made (the run's summary and the NOT_REVIEWED
# line decide on it, never on the error's words): the reply held no verdict tool call
# ("no_tool_call"), the tool call or reply was unusable ("unusable": invalid fields, truncated,
# not JSON), the call timed out ("timeout"), the request failed ("request": HTTP, connection), the run
# stopped before it was sent ("not_sent"), --swarm-deadline cut it ("deadline"), a custom voter
# raised or returned something that is not a vote ("voter").
ErrorKind = Literal["no_tool_call", "unusable", "timeout", "request", "not_sent", "deadline", "voter"]
InconclusivePolicy = Literal["fail", "warn", "pass"]
Effort = Literal["low", "medium", "high", "xhigh", "max"]
PrewarmMode = Literal["auto", "on", "off"]
# auto: check before the review; off: skip it (an endpoint that answers no check); only: check and stop.
PreflightMode = Literal["auto", "off", "only"]
CacheTtl = Literal["5m", "1h"]
# How much of the repository a voter sees beside the section's diff (see core/context/): none,
# the enclosing definitions of each hunk, the whole file when it fits, and the definitions the
# changed lines use and the callers in the PR's other files. The map of the PR comes with all but off.
ContextMode = Literal["off", "scope", "file", "repo"]
# What one part of a section's context is: a hunk's enclosing definitions, a whole file (or the
# content of a renamed one), a definition the changed lines use, a place that calls a changed
# definition, the map of the whole pull request.
ContextKind = Literal["scope", "file", "definition", "caller", "map"]
# Which side of the diff a text is from.
Side = Literal["old", "new"]
# Which sections get one synthesized review for the author (core/synthesis.py): none, those that
# fail the gate, or also every section with a dissenting vote.
AggregateMode = Literal["off", "blocked", "all"]

VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
CHANGE_KINDS: tuple[ChangeKind, ...] = get_args(ChangeKind)
ERROR_KINDS: tuple[ErrorKind, ...] = get_args(ErrorKind)
INCONCLUSIVE_POLICIES: tuple[InconclusivePolicy, ...] = get_args(InconclusivePolicy)
EFFORTS: tuple[Effort, ...] = get_args(Effort)
PREWARM_MODES: tuple[PrewarmMode, ...] = get_args(PrewarmMode)
PREFLIGHT_MODES: tuple[PreflightMode, ...] = get_args(PreflightMode)
CACHE_TTLS: tuple[CacheTtl, ...] = get_args(CacheTtl)
CONTEXT_MODES: tuple[ContextMode, ...] = get_args(ContextMode)
CONTEXT_KINDS: tuple[ContextKind, ...] = get_args(ContextKind)
AGGREGATE_MODES: tuple[AggregateMode, ...] = get_args(AggregateMode)


def severity_rank(severity: str) -> int:
    """0 for critical; an unknown severity ranks last."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)
