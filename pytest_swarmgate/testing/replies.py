"""What the stub answers: the `CallContext` a script sees, how a call is routed to its
section and voter, and the `Reply` kinds with what each renders to."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_TOOL = "submit_verdict"
# The aggregator's tool (core/synthesis.py); testing/ uses the standard library only, so a test checks the two agree.
REVIEW_TOOL = "submit_review"

_SECTION_RE = re.compile(r"^section: (.+)$", re.MULTILINE)
_PATH_RE = re.compile(r"^path: (.+)$", re.MULTILINE)
_VOTER_RE = re.compile(r"^voter: (\S+)$", re.MULTILINE)
_HUNK_RE = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@", re.MULTILINE)

_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def new_id(prefix: str) -> str:
    """A fresh id in the API's style: `prefix_` and 24 hex digits."""
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def first_added_line(text: str) -> int:
    """The new-file line number of the first added line of the first unified-diff hunk
    in `text` that adds one; the first hunk's start if none adds; 1 without hunks."""
    fallback: int | None = None
    for match in _HUNK_RE.finditer(text):
        line = int(match.group(1))
        fallback = line if fallback is None else fallback
        for raw in text[match.end() :].splitlines()[1:]:
            if raw.startswith("+"):
                return line
            if raw.startswith(" ") or raw == "":
                line += 1
            elif not raw.startswith(("-", "\\")):
                break
    return fallback if fallback is not None else 1


# --------------------------------------------------------------------------- context


@dataclass(frozen=True)
class CallContext:
    """What a `Script` sees of one call: who is asking about what, and for the how-many-th time."""

    section: str | None
    path: str | None
    voter: str | None
    body: Mapping[str, Any]
    attempt: int
    model: str = ""
    text: str = ""
    tool_name: str = DEFAULT_TOOL
    api_version: str | None = None
    custom_id: str | None = None

    @property
    def first_added_line(self) -> int:
        return first_added_line(self.text)

    @property
    def where(self) -> str:
        """The file this call is about (path, else section id, else "unknown")."""
        return self.path or self.section or "unknown"


def _user_text_blocks(body: Mapping[str, Any]) -> list[list[str]]:
    """The text of every user message, one list of text blocks per message."""
    out: list[list[str]] = []
    for message in body.get("messages") or ():
        if not isinstance(message, Mapping) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            out.append([content])
        elif isinstance(content, list):
            out.append(
                [
                    b["text"]
                    for b in content
                    if isinstance(b, Mapping) and b.get("type") == "text" and isinstance(b.get("text"), str)
                ]
            )
    return out


def _first_match(pattern: re.Pattern[str], blocks: Sequence[str]) -> str | None:
    for block in blocks:
        match = pattern.search(block)
        if match:
            return match.group(1).strip()
    return None


def tool_name(body: Mapping[str, Any]) -> str:
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and isinstance(choice.get("name"), str):
        return str(choice["name"])
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], Mapping) and tools[0].get("name"):
        return str(tools[0]["name"])
    return DEFAULT_TOOL


@dataclass(frozen=True)
class Routing:
    section: str | None
    path: str | None
    voter: str | None
    text: str


def route(body: Mapping[str, Any]) -> Routing:
    messages = _user_text_blocks(body)
    blocks = [b for m in messages for b in m]
    last_message = messages[-1] if messages else []
    voter = _first_match(_VOTER_RE, last_message[-1:]) if last_message else None
    return Routing(
        section=_first_match(_SECTION_RE, blocks),
        path=_first_match(_PATH_RE, blocks),
        voter=voter,
        text="\n".join(blocks),
    )


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Rendered:
    """A reply made concrete for one call, before the server adds ids and usage."""

    kind: Literal["message", "error", "raw", "drop"]
    content: tuple[Mapping[str, Any], ...] = ()
    stop_reason: str | None = None
    stop_details: Mapping[str, Any] | None = None
    output_tokens: int | None = None
    status: int = 200
    error_type: str = ""
    error_message: str = ""
    retry_after: float | None = None
    raw: bytes = b""
    delay: float = 0.0


class Reply:
    """What the stub answers to one call. Build replies with the static constructors."""

    def render(self, ctx: CallContext) -> Rendered:
        raise NotImplementedError

    @property
    def kind(self) -> str:
        """A short name for the request log (`verdict`, `status`, `drop`...)."""
        return type(self).__name__.removesuffix("Reply").lower()

    @staticmethod
    def verdict(
        verdict: Literal["SAFE", "UNSAFE"],
        confidence: float = 0.9,
        findings: Sequence[Mapping[str, Any]] | None = None,
        summary: str = "",
    ) -> Reply:
        """A well-formed `submit_verdict` call. UNSAFE without `findings` carries one
        plausible finding at the section's first added line; given findings are completed
        with the same defaults (path, line...). An empty summary is filled in."""
        if verdict not in ("SAFE", "UNSAFE"):
            raise ValueError(f"verdict must be SAFE or UNSAFE, not {verdict!r}")
        return VerdictReply(verdict, confidence, None if findings is None else tuple(findings), summary)

    @staticmethod
    def status(
        code: int,
        error_type: str | None = None,
        message: str | None = None,
        retry_after: float | None = None,
    ) -> Reply:
        """An error in Anthropic's shape (`retry-after` header when `retry_after` is set).
        The error type defaults from the code: 429 rate_limit_error, 529 overloaded_error..."""
        if not 400 <= code <= 599:
            raise ValueError(f"status code must be 4xx or 5xx, not {code}")
        etype = error_type or _ERROR_TYPES.get(code, "api_error" if code >= 500 else "invalid_request_error")
        return StatusReply(code, etype, message or f"stub: scripted {code} {etype}", retry_after)

    @staticmethod
    def slow(seconds: float, then: Reply | None = None) -> Reply:
        """Sleep `seconds` (on top of the server-wide latency), then answer `then` (SAFE)."""
        return SlowReply(float(seconds), then if then is not None else Reply.verdict("SAFE"))

    @staticmethod
    def drop() -> Reply:
        """Close the connection without sending a response."""
        return DropReply()

    @staticmethod
    def malformed(variant: Literal["not_json", "not_message"] = "not_json") -> Reply:
        """200 with a body that is not JSON, or (`not_message`) JSON that is not a Message."""
        if variant not in ("not_json", "not_message"):
            raise ValueError(f"unknown malformed variant {variant!r}")
        return MalformedReply(variant)

    @staticmethod
    def refusal(explanation: str = "The request was declined by a safety classifier.") -> Reply:
        """stop_reason "refusal" with a text block and no tool call."""
        return RefusalReply(explanation)

    @staticmethod
    def truncated() -> Reply:
        """stop_reason "max_tokens": a tool call whose input stops part-way (fields missing)."""
        return TruncatedReply()

    @staticmethod
    def text(text: str) -> Reply:
        """A plain text answer, stop_reason "end_turn", no tool call."""
        return TextReply(text)

    @staticmethod
    def bad_tool_input(tool_input: Mapping[str, Any], stop_reason: str = "tool_use") -> Reply:
        """A `submit_verdict` call with exactly this input (and stop reason), to exercise validation."""
        return ToolInputReply(dict(tool_input), stop_reason)

    @staticmethod
    def review(
        title: str | None = None,
        explanation: str | None = None,
        findings: Sequence[Mapping[str, Any]] | None = None,
        disagreement: str | None = None,
        fix: str | None = None,
        patch: str = "",
    ) -> Reply:
        """A well-formed `submit_review` call, the aggregator's answer. A field left None is made from the votes
        the call carries: their UNSAFE findings merged, a title naming the section, the split of the panel."""
        return ReviewReply(title, explanation, None if findings is None else tuple(findings), disagreement, fix, patch)

    @staticmethod
    def sequence(*replies: Reply) -> Reply:
        """Attempt 1 gets the first reply, attempt 2 the second...; the last one repeats."""
        if not replies:
            raise ValueError("Reply.sequence needs at least one reply")
        return SequenceReply(tuple(replies))


def _message(
    content: Sequence[Mapping[str, Any]],
    stop_reason: str,
    *,
    stop_details: Mapping[str, Any] | None = None,
    output_tokens: int | None = None,
) -> Rendered:
    return Rendered("message", tuple(content), stop_reason, stop_details, output_tokens)


def _tool_use(ctx: CallContext, tool_input: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": new_id("toolu"), "name": ctx.tool_name, "input": dict(tool_input)}


@dataclass(frozen=True)
class VerdictReply(Reply):
    verdict_value: Literal["SAFE", "UNSAFE"]
    confidence: float = 0.9
    findings: tuple[Mapping[str, Any], ...] | None = None
    summary: str = ""

    def _default_finding(self, ctx: CallContext) -> dict[str, Any]:
        return {
            "path": ctx.where,
            "line": ctx.first_added_line,
            "severity": "high",
            "category": "CWE-89",
            "title": "Untrusted input reaches a SQL query unescaped",
            "rationale": (
                f"Scripted UNSAFE verdict from the swarmgate stub server "
                f"(section {ctx.section or '?'}, voter {ctx.voter or '?'})."
            ),
        }

    def tool_input(self, ctx: CallContext) -> dict[str, Any]:
        if self.findings is None:
            findings = [self._default_finding(ctx)] if self.verdict_value == "UNSAFE" else []
        else:
            findings = [{**self._default_finding(ctx), **f} for f in self.findings]
        summary = self.summary or (
            f"{len(findings)} finding{'' if len(findings) == 1 else 's'} in {ctx.where}."
            if self.verdict_value == "UNSAFE"
            else f"No security-relevant problems found in {ctx.where}."
        )
        return {"verdict": self.verdict_value, "confidence": self.confidence, "summary": summary, "findings": findings}

    def render(self, ctx: CallContext) -> Rendered:
        return _message([_tool_use(ctx, self.tool_input(ctx))], "tool_use")

    @property
    def kind(self) -> str:
        return f"verdict:{self.verdict_value}"


def votes_in(text: str) -> list[dict[str, Any]]:
    """The votes an aggregator call carries: its lines that are JSON objects with a verdict."""
    votes = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and "verdict" in data:
                votes.append(data)
    return votes


@dataclass(frozen=True)
class ReviewReply(Reply):
    title: str | None = None
    explanation: str | None = None
    findings: tuple[Mapping[str, Any], ...] | None = None
    disagreement: str | None = None
    fix: str | None = None
    patch: str = ""

    def tool_input(self, ctx: CallContext) -> dict[str, Any]:
        votes = votes_in(ctx.text)
        unsafe = [v for v in votes if v.get("verdict") == "UNSAFE"]
        merged: dict[tuple[Any, ...], Mapping[str, Any]] = {}
        for vote in unsafe:
            for f in vote.get("findings") or ():
                merged.setdefault((f.get("path"), f.get("line"), f.get("title")), f)
        findings = list(self.findings) if self.findings is not None else list(merged.values())
        top = f": {findings[0].get('title')}" if findings else ""
        others = len(votes) - len(unsafe)
        return {
            "title": self.title
            if self.title is not None
            else f"{len(unsafe)} of {len(votes)} voters flag {ctx.where}{top}",
            "explanation": self.explanation
            if self.explanation is not None
            else f"Scripted synthesis from the swarmgate stub server (section {ctx.section or '?'}).",
            "findings": findings,
            "disagreement": self.disagreement
            if self.disagreement is not None
            else (f"{others} of {len(votes)} voters did not find it unsafe." if others and unsafe else ""),
            "fix": self.fix if self.fix is not None else "Scripted fix: validate the input before it is used.",
            "patch": self.patch,
        }

    def render(self, ctx: CallContext) -> Rendered:
        return _message([_tool_use(ctx, self.tool_input(ctx))], "tool_use")


@dataclass(frozen=True)
class StatusReply(Reply):
    code: int
    error_type: str
    message: str
    retry_after: float | None = None

    def render(self, ctx: CallContext) -> Rendered:
        return Rendered(
            "error",
            status=self.code,
            error_type=self.error_type,
            error_message=self.message,
            retry_after=self.retry_after,
        )

    @property
    def kind(self) -> str:
        return f"status:{self.code}"


@dataclass(frozen=True)
class SlowReply(Reply):
    seconds: float
    then: Reply

    def render(self, ctx: CallContext) -> Rendered:
        inner = self.then.render(ctx)
        return dataclasses.replace(inner, delay=inner.delay + self.seconds)

    @property
    def kind(self) -> str:
        return f"slow:{self.seconds:g}:{self.then.kind}"


@dataclass(frozen=True)
class DropReply(Reply):
    def render(self, ctx: CallContext) -> Rendered:
        return Rendered("drop")


@dataclass(frozen=True)
class MalformedReply(Reply):
    variant: Literal["not_json", "not_message"] = "not_json"

    def render(self, ctx: CallContext) -> Rendered:
        if self.variant == "not_message":
            return Rendered("raw", raw=json.dumps({"ok": True, "note": "stub: JSON that is not a Message"}).encode())
        return Rendered("raw", raw=b'{"type": "message", "content": [{"type": "tool_use", "input": {"verd')

    @property
    def kind(self) -> str:
        return f"malformed:{self.variant}"


@dataclass(frozen=True)
class RefusalReply(Reply):
    explanation: str = ""

    def render(self, ctx: CallContext) -> Rendered:
        details = {"type": "refusal", "category": None, "explanation": self.explanation or None}
        text = {"type": "text", "text": "I can't help with reviewing this change."}
        return _message([text], "refusal", stop_details=details)


@dataclass(frozen=True)
class TruncatedReply(Reply):
    def render(self, ctx: CallContext) -> Rendered:
        partial = {"verdict": "SAFE", "summary": "The change lo"}
        max_tokens = ctx.body.get("max_tokens")
        return _message(
            [_tool_use(ctx, partial)],
            "max_tokens",
            output_tokens=max_tokens if isinstance(max_tokens, int) else None,
        )


@dataclass(frozen=True)
class TextReply(Reply):
    text_value: str = ""

    def render(self, ctx: CallContext) -> Rendered:
        return _message([{"type": "text", "text": self.text_value}], "end_turn")


@dataclass(frozen=True)
class ToolInputReply(Reply):
    tool_input: Mapping[str, Any] = field(default_factory=dict)
    stop_reason: str = "tool_use"

    def render(self, ctx: CallContext) -> Rendered:
        return _message([_tool_use(ctx, self.tool_input)], self.stop_reason)

    @property
    def kind(self) -> str:
        return "bad_tool_input"


@dataclass(frozen=True)
class SequenceReply(Reply):
    replies: tuple[Reply, ...]

    def pick(self, attempt: int) -> Reply:
        return self.replies[min(max(attempt, 1), len(self.replies)) - 1]

    def render(self, ctx: CallContext) -> Rendered:
        return self.pick(ctx.attempt).render(ctx)

    @property
    def kind(self) -> str:
        return "sequence"


def reply_kind(reply: Reply, ctx: CallContext) -> str:
    while isinstance(reply, SequenceReply):
        reply = reply.pick(ctx.attempt)
    return reply.kind
