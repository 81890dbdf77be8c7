"""Turn a model reply into a verdict, or say exactly why it cannot be trusted. Pure.

A verdict is only ever read from the forced tool call's structured input, validated field
by field. Text is never searched for a word: "SAFE" is inside "UNSAFE".

Findings are judged by the verdict they come with. A SAFE vote must be valid throughout:
one malformed finding, or too many, makes it an ERROR. An UNSAFE vote stays UNSAFE: its
malformed findings and those over MAX_FINDINGS are dropped and the summary says how many.
Otherwise a pull request could turn UNSAFE votes into ERROR votes (and an UNSAFE section into
an INCONCLUSIVE one) just by provoking many findings, one per line it plants.

The tool input must match the schema the gate sends (`prompt.VERDICT_TOOL`) exactly: every
required field, no other field, and the reply must have stopped for the tool call
(`stop_reason` tool_use). A SAFE verdict that carries a high or critical finding contradicts
itself and is an ERROR vote. A finding whose path names no file of its section (`tools.py` for
`app/tools.py`, or free text) is anchored to the section's path, the model's path kept in the
rationale, so every report points at a file of the diff.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from .choices import SEVERITIES
from .model import Finding, Section
from .prompt import TOOL_NAME, VERDICT_TOOL
from .text import one_line

_SCHEMA = VERDICT_TOOL["input_schema"]
VERDICT_FIELDS = frozenset(_SCHEMA["properties"])
FINDING_FIELDS = frozenset(_SCHEMA["properties"]["findings"]["items"]["properties"])
# A SAFE vote may carry informational findings, not one that says the code is exploitable.
CONTRADICTING_SEVERITIES = ("critical", "high")

MAX_FINDINGS = 50
MAX_TEXT = 4000


class VerdictError(ValueError):
    """The reply is not a usable verdict; the message says why (it becomes an ERROR vote)."""


class NoToolCall(VerdictError):
    """The reply held no tool call at all: an endpoint or model that cannot give verdicts, if every reply is so."""


@dataclass(frozen=True)
class ParsedVerdict:
    verdict: Literal["SAFE", "UNSAFE"]
    confidence: float
    summary: str
    findings: tuple[Finding, ...]


def parse_reply(
    stop_reason: str | None, content: Sequence[Mapping[str, Any]], section: Section | None = None
) -> ParsedVerdict:
    """Validate a Messages API reply (stop reason and content blocks as dicts) for `section`."""
    return parse_tool_input(tool_call_input(stop_reason, content, TOOL_NAME), section)


def tool_call_input(stop_reason: str | None, content: Sequence[Mapping[str, Any]], name: str) -> Any:
    """The input of the reply's one call of tool `name`, which it stopped for; VerdictError if there is none."""
    if stop_reason == "refusal":
        raise VerdictError("the model refused to answer (stop_reason refusal)")
    if stop_reason in ("max_tokens", "model_context_window_exceeded"):
        raise VerdictError(f"the reply was truncated (stop_reason {stop_reason})")
    calls = [b for b in content if b.get("type") == "tool_use"]
    if not calls:
        raise NoToolCall(f"no {name} tool call in the reply (stop_reason {stop_reason})")
    if len(calls) > 1:
        raise VerdictError(f"{len(calls)} tool calls in the reply, expected exactly one")
    call = calls[0]
    if call.get("name") != name:
        raise VerdictError(f"the reply called tool {_short(call.get('name'))}, expected {name}")
    if stop_reason != "tool_use":
        raise VerdictError(f"stop_reason {_short(stop_reason)}, expected tool_use")
    return call.get("input")


def parse_tool_input(data: Any, section: Section | None = None) -> ParsedVerdict:
    """Validate the tool input against the verdict schema, strictly; anchor findings to `section`."""
    if not isinstance(data, Mapping):
        raise VerdictError("tool input is not an object")
    exact_fields(data, VERDICT_FIELDS, "tool input")
    verdict = data.get("verdict")
    if verdict not in ("SAFE", "UNSAFE"):
        raise VerdictError(f"verdict must be SAFE or UNSAFE, got {_short(verdict)}")
    confidence = data.get("confidence")
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, (int, float))
        or not (math.isfinite(confidence) and 0.0 <= confidence <= 1.0)
    ):
        raise VerdictError(f"confidence must be a number from 0 to 1, got {_short(confidence)}")
    summary = data["summary"]
    if not isinstance(summary, str):
        raise VerdictError("summary must be a string")
    raw_findings = data.get("findings")
    if not isinstance(raw_findings, list):
        raise VerdictError("findings must be a list")
    summary = summary[:MAX_TEXT]
    if verdict == "SAFE":
        if len(raw_findings) > MAX_FINDINGS:
            raise VerdictError(f"{len(raw_findings)} findings, at most {MAX_FINDINGS} accepted")
        findings = tuple(_finding(i, f) for i, f in enumerate(raw_findings, 1))
        severe = [f.severity for f in findings if f.severity in CONTRADICTING_SEVERITIES]
        if severe:
            raise VerdictError(f"contradictory verdict: SAFE with a {severe[0]} finding")
    else:
        findings, summary = kept_findings(raw_findings, summary)
    if section is not None:
        findings = tuple(anchor(f, section) for f in findings)
    return ParsedVerdict(cast(Literal["SAFE", "UNSAFE"], verdict), float(confidence), summary, findings)


def kept_findings(raw_findings: list[Any], summary: str) -> tuple[tuple[Finding, ...], str]:
    """The valid findings (of an UNSAFE vote, a synthesis), at most MAX_FINDINGS, and `summary` noting what was
    dropped."""
    valid: list[Finding] = []
    malformed = 0
    for i, data in enumerate(raw_findings, 1):
        try:
            valid.append(_finding(i, data))
        except VerdictError:
            malformed += 1
    over = max(0, len(valid) - MAX_FINDINGS)
    dropped = []
    if malformed:
        dropped.append(f"{_count(malformed, 'malformed finding')} dropped")
    if over:
        dropped.append(f"{_count(over, 'finding')} over the limit of {MAX_FINDINGS} dropped")
    if dropped:
        summary = f"{summary} [swarmgate: {', '.join(dropped)}]".lstrip()
    return tuple(valid[:MAX_FINDINGS]), summary


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def anchor(finding: Finding, section: Section) -> Finding:
    """The finding on a file of its section: a path that names none is replaced by the section's."""
    if finding.path in (section.path, section.old_path):
        return finding
    # The model's path is kept where a reader sees it, not lost.
    note = f"[reported at {one_line(finding.path, 200) or 'no path'}]"
    rationale = f"{finding.rationale[: MAX_TEXT - len(note) - 1]} {note}".lstrip()
    return Finding(section.path, finding.line, finding.severity, finding.category, finding.title, rationale)


def exact_fields(data: Mapping[str, Any], fields: frozenset[str], where: str) -> None:
    """Every field of `fields` in `data` and no other (VerdictError naming what differs)."""
    missing = sorted(fields - set(data))
    if missing:
        raise VerdictError(f"{where} lacks required field {', '.join(missing)}")
    extra = sorted(str(k) for k in set(data) - fields)
    if extra:
        raise VerdictError(f"{where} has fields outside the schema: {one_line(', '.join(extra), 60)}")


def _finding(index: int, data: Any) -> Finding:
    if not isinstance(data, Mapping):
        raise VerdictError(f"finding {index} is not an object")
    exact_fields(data, FINDING_FIELDS, f"finding {index}")
    strings = {}
    for key in ("path", "severity", "category", "title", "rationale"):
        value = data.get(key)
        if not isinstance(value, str):
            raise VerdictError(f"finding {index}: {key} must be a string, got {_short(value)}")
        strings[key] = value[:MAX_TEXT]
    if strings["severity"] not in SEVERITIES:
        raise VerdictError(f"finding {index}: severity must be one of {', '.join(SEVERITIES)}")
    line = data.get("line")
    if line is not None and (isinstance(line, bool) or not isinstance(line, int) or line < 0):
        raise VerdictError(f"finding {index}: line must be a non-negative integer or null, got {_short(line)}")
    return Finding(line=line, **strings)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
