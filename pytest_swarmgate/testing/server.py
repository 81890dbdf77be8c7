"""An Anthropic-compatible stub server on 127.0.0.1, scripted per section and voter.

The real `anthropic` SDK talks to it over real HTTP (set ANTHROPIC_BASE_URL to `.url`),
so retries, error mapping and response parsing are the SDK's own. Standard library
only: it ships in the package and starts in milliseconds.

Endpoints
    POST /v1/messages                        one Message (or a scripted fault)
    POST /v1/messages/batches                create a Message Batch (every request scripted)
    GET  /v1/messages/batches                list batches
    GET  /v1/messages/batches/{id}           status: in_progress for the first
                                             `batch_polls_before_done` polls, then ended
    GET  /v1/messages/batches/{id}/results   JSONL, one line per request
    GET  /v1/models/{model}                  the model, or 404 when `models` is given and lacks it

Faults of the whole endpoint, beside the script's per-call ones: `require_key` (401 unless
that key comes), `revoke_key_after=N` (the key is rejected with 401 after N message calls),
`models` (a message call for another model is a 404 not_found_error), and `rate_limit`
(`RateLimit`: token buckets for requests and input tokens; a request that finds a bucket
short is answered 429 with an honest `retry-after` - the seconds until the bucket holds
it - and every response carries the `anthropic-ratelimit-*` headers). The request log keeps
the last `log_limit` requests (default 10,000).

Routing: the section is the first `^section: (.+)$` line and its file the first
`^path: (.+)$` line of the user content; the voter is the first `^voter: (\\S+)$` line of
the LAST text block of the user content. A `Script` maps (section, path, voter, body,
attempt) to a `Reply`; the attempt counts calls per (section, voter) pair from 1.

Every batched request goes through the same script when the batch is created (its
attempt counts like a direct call); a fault reply becomes an `errored` result (a status
keeps its error type, drop/malformed become api_error) and `slow` delays are not applied.

Usage simulates the prompt cache: the prompt prefix up to and including the last block
with `cache_control` (in the order tools, system blocks, message content blocks) is
hashed with the model; the first call writes it (`cache_creation_input_tokens`), calls that
arrive after that first call has answered read it (`cache_read_input_tokens`), and calls
that arrive while it is still in flight write it again. Every breakpoint counts, as with the
real API: a call reads the longest prefix that ends at one of its breakpoints and is already
cached, and writes the rest up to its last breakpoint (so a system block that is the same bytes
in two runs is read by the second even when the section after it changed). Tokens are
characters / 4.

`answer_model` makes every reply name that model instead of the one requested (a gateway that
swaps models); `strict="reject"` answers 400 to a tool sent with `strict: true`, as an endpoint
that does not offer strict tool use does; `plain_text=True` answers every call in plain text
with no tool call (a server whose model cannot call tools).

JSON script format (the CLI's `--script`, or `Script.from_json`)::

    {
      "default": "SAFE",
      "rules": [
        {"section": "app/*.py", "voter": "v2", "reply": "UNSAFE"},
        {"section": "db.py", "reply": {"status": 429, "retry_after": 1}},
        {"section": "slow/*", "reply": {"slow": 2.0}}
      ]
    }

`section` is a glob matched against the section id and its file path (default "*");
`voter` is a glob on the voter id (absent = any voter); the first matching rule wins,
otherwise `default` (itself a reply, default "SAFE") applies. A reply is one of

    "SAFE" | "UNSAFE"                       a verdict (UNSAFE carries a finding at the
                                            first added line of the section)
    "drop"                                  close the connection without a response
    "malformed" | "malformed_json"          200 with a non-JSON body / JSON that is not
                                            a Message
    "refusal" | "truncated"                 stop_reason refusal / max_tokens
    {"verdict": "UNSAFE", "confidence": 0.7, "summary": "...", "findings": [{...}]}
    {"status": 429, "type": "rate_limit_error", "message": "...", "retry_after": 1}
    {"slow": 2.0, "then": <reply>}          sleep, then reply (`then` defaults to default)
    {"text": "plain text"}                  end_turn with no tool call
    {"tool_input": {...}}                   a submit_verdict call with this input
    {"sequence": [<reply>, <reply>, ...]}   by attempt; the last one repeats
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import hashlib
import json
import math
import re
import socket
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

CURRENT_API_VERSION = "2026-10-21"
"""The API version the SDK (2.x) sends; `sampling="legacy"` accepts sampling only below it."""

SAMPLING_PARAMS: tuple[str, ...] = ("temperature", "top_p", "top_k")
DEFAULT_TOOL = "submit_verdict"
REDACTED = "<redacted>"

Sampling = Literal["accept", "reject", "legacy"]
SAMPLING_MODES: tuple[str, ...] = ("accept", "reject", "legacy")
Strict = Literal["accept", "reject"]
STRICT_MODES: tuple[str, ...] = ("accept", "reject")
PLAIN_TEXT_ANSWER = "I think this change looks fine, but I cannot call tools."

_SECTION_RE = re.compile(r"^section: (.+)$", re.MULTILINE)
_PATH_RE = re.compile(r"^path: (.+)$", re.MULTILINE)
_VOTER_RE = re.compile(r"^voter: (\S+)$", re.MULTILINE)
_HUNK_RE = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@", re.MULTILINE)
_BATCH_RE = re.compile(r"^/v1/messages/batches/([A-Za-z0-9_-]+)(/results)?$")
_MODEL_RE = re.compile(r"^/v1/models/([^/]+)$")
DEFAULT_LOG_LIMIT = 10_000

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
_REDACTED_HEADERS = frozenset({"authorization", "x-api-key"})


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def _tokens(chars: int) -> int:
    """The stub's token estimate: about four characters per token."""
    return math.ceil(chars / 4)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


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


def _tool_name(body: Mapping[str, Any]) -> str:
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and isinstance(choice.get("name"), str):
        return str(choice["name"])
    tools = body.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], Mapping) and tools[0].get("name"):
        return str(tools[0]["name"])
    return DEFAULT_TOOL


@dataclass(frozen=True)
class _Routing:
    section: str | None
    path: str | None
    voter: str | None
    text: str


def _route(body: Mapping[str, Any]) -> _Routing:
    messages = _user_text_blocks(body)
    blocks = [b for m in messages for b in m]
    last_message = messages[-1] if messages else []
    voter = _first_match(_VOTER_RE, last_message[-1:]) if last_message else None
    return _Routing(
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
    return {"type": "tool_use", "id": _new_id("toolu"), "name": ctx.tool_name, "input": dict(tool_input)}


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


def _reply_kind(reply: Reply, ctx: CallContext) -> str:
    while isinstance(reply, SequenceReply):
        reply = reply.pick(ctx.attempt)
    return reply.kind


# --------------------------------------------------------------------------- scripts


def _prompt_texts(ctx: CallContext) -> list[str]:
    """Every text the call sends the model: the system blocks, then the user text."""
    system = ctx.body.get("system")
    blocks = [system] if isinstance(system, str) else system if isinstance(system, list) else []
    texts = [b for b in blocks if isinstance(b, str)]
    texts += [b["text"] for b in blocks if isinstance(b, Mapping) and isinstance(b.get("text"), str)]
    return [*texts, ctx.text]


class ScriptError(ValueError):
    """A JSON script that cannot be understood; the message is one line."""


Rule = Callable[[CallContext], "Reply | None"]


class Script:
    """Decides each reply: rules in the order they were added, first match wins, else `default`.

    >>> Script().on("app/*.py", reply=Reply.verdict("UNSAFE")).on("db.py", voter="v2",
    ...     reply=Reply.sequence(Reply.status(429, retry_after=0.1), Reply.verdict("SAFE")))
    """

    def __init__(self, default: Reply | None = None) -> None:
        self.default: Reply = default if default is not None else Reply.verdict("SAFE")
        self._rules: tuple[Rule, ...] = ()

    def on(self, section: str = "*", voter: str | None = None, *, reply: Reply) -> Script:
        """Answer `reply` when the section id or its path matches the `section` glob and the
        voter id matches `voter` (a glob; None = any voter). Returns self, to chain."""

        def rule(ctx: CallContext) -> Reply | None:
            where = (ctx.section or "", ctx.path or "")
            if not any(fnmatch.fnmatchcase(w, section) for w in where if w or section == "*"):
                return None
            if voter is not None and not fnmatch.fnmatchcase(ctx.voter or "", voter):
                return None
            return reply

        return self.on_call(rule)

    def on_prompt(self, text: str, voter: str | None = None, *, reply: Reply) -> Script:
        """Answer `reply` when `text` reaches the voter's prompt (its system or user text) and the voter
        id matches `voter` (a glob; None = any voter): tests prove what each voter saw. Returns self."""

        def rule(ctx: CallContext) -> Reply | None:
            if voter is not None and not fnmatch.fnmatchcase(ctx.voter or "", voter):
                return None
            return reply if any(text in said for said in _prompt_texts(ctx)) else None

        return self.on_call(rule)

    def on_call(self, fn: Rule) -> Script:
        """Add an arbitrary rule `fn(ctx) -> Reply | None`; None passes to the next rule."""
        self._rules = (*self._rules, fn)
        return self

    def reply_for(self, ctx: CallContext) -> Reply:
        for rule in self._rules:
            reply = rule(ctx)
            if reply is not None:
                return reply
        return self.default

    @classmethod
    def from_json(cls, data: Any) -> Script:
        """Build a script from the JSON format in this module's docstring (ScriptError if bad)."""
        if not isinstance(data, Mapping):
            raise ScriptError("a script must be a JSON object with 'default' and 'rules'")
        _no_extra_keys(data, {"default", "rules"}, "script")
        default = reply_from_json(data.get("default", "SAFE"), "default")
        script = cls(default)
        rules = data.get("rules", [])
        if not isinstance(rules, list):
            raise ScriptError("rules: must be a list")
        for i, rule in enumerate(rules):
            where = f"rules[{i}]"
            if not isinstance(rule, Mapping):
                raise ScriptError(f"{where}: must be an object")
            _no_extra_keys(rule, {"section", "voter", "reply"}, where)
            section, voter = rule.get("section", "*"), rule.get("voter")
            if not isinstance(section, str) or not (voter is None or isinstance(voter, str)):
                raise ScriptError(f"{where}: 'section' and 'voter' must be strings")
            if "reply" not in rule:
                raise ScriptError(f"{where}: 'reply' is required")
            script.on(section, voter, reply=reply_from_json(rule["reply"], f"{where}.reply", default))
        return script

    @classmethod
    def load(cls, path: str) -> Script:
        """Read a JSON script file (ScriptError with a one-line reason if it is not valid)."""
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except OSError as exc:
            raise ScriptError(f"{path}: {exc.strerror or exc}") from exc
        except json.JSONDecodeError as exc:
            raise ScriptError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
        try:
            return cls.from_json(data)
        except ScriptError as exc:
            raise ScriptError(f"{path}: {exc}") from exc


def _no_extra_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise ScriptError(f"{where}: unknown key(s) {', '.join(map(repr, extra))}")


_NAMED_REPLIES: dict[str, Callable[[], Reply]] = {
    "SAFE": lambda: Reply.verdict("SAFE"),
    "UNSAFE": lambda: Reply.verdict("UNSAFE"),
    "drop": Reply.drop,
    "malformed": Reply.malformed,
    "malformed_json": lambda: Reply.malformed("not_message"),
    "refusal": Reply.refusal,
    "truncated": Reply.truncated,
}


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScriptError(f"{where}: must be a number, not {value!r}")
    return float(value)


def reply_from_json(spec: Any, where: str = "reply", default: Reply | None = None) -> Reply:
    """One reply in the JSON script format (see the module docstring)."""
    if isinstance(spec, str):
        if spec not in _NAMED_REPLIES:
            raise ScriptError(f"{where}: unknown reply {spec!r} (expected one of {', '.join(_NAMED_REPLIES)})")
        return _NAMED_REPLIES[spec]()
    if not isinstance(spec, Mapping):
        raise ScriptError(f"{where}: a reply is a string or an object, not {spec!r}")
    try:
        return _reply_from_object(spec, where, default)
    except ValueError as exc:
        if isinstance(exc, ScriptError):
            raise
        raise ScriptError(f"{where}: {exc}") from exc


def _reply_from_object(spec: Mapping[str, Any], where: str, default: Reply | None) -> Reply:
    if "verdict" in spec:
        _no_extra_keys(spec, {"verdict", "confidence", "summary", "findings"}, where)
        findings = spec.get("findings")
        if findings is not None and not (isinstance(findings, list) and all(isinstance(f, Mapping) for f in findings)):
            raise ScriptError(f"{where}.findings: must be a list of objects")
        return Reply.verdict(
            spec["verdict"],
            _number(spec.get("confidence", 0.9), f"{where}.confidence"),
            findings,
            str(spec.get("summary", "")),
        )
    if "status" in spec:
        _no_extra_keys(spec, {"status", "type", "message", "retry_after"}, where)
        code = spec["status"]
        if isinstance(code, bool) or not isinstance(code, int):
            raise ScriptError(f"{where}.status: must be an integer, not {code!r}")
        retry = spec.get("retry_after")
        return Reply.status(
            code,
            spec.get("type"),
            spec.get("message"),
            None if retry is None else _number(retry, f"{where}.retry_after"),
        )
    if "slow" in spec:
        _no_extra_keys(spec, {"slow", "then"}, where)
        then = reply_from_json(spec["then"], f"{where}.then", default) if "then" in spec else default
        return Reply.slow(_number(spec["slow"], f"{where}.slow"), then)
    if "text" in spec:
        _no_extra_keys(spec, {"text"}, where)
        return Reply.text(str(spec["text"]))
    if "tool_input" in spec:
        _no_extra_keys(spec, {"tool_input"}, where)
        if not isinstance(spec["tool_input"], Mapping):
            raise ScriptError(f"{where}.tool_input: must be an object")
        return Reply.bad_tool_input(spec["tool_input"])
    if "sequence" in spec:
        _no_extra_keys(spec, {"sequence"}, where)
        items = spec["sequence"]
        if not isinstance(items, list) or not items:
            raise ScriptError(f"{where}.sequence: must be a non-empty list")
        return Reply.sequence(*(reply_from_json(s, f"{where}.sequence[{i}]", default) for i, s in enumerate(items)))
    raise ScriptError(f"{where}: expected one of verdict, status, slow, text, tool_input, sequence")


# --------------------------------------------------------------------------- request log


@dataclass(frozen=True)
class LoggedRequest:
    """One request the stub received (a batch also logs one entry per batched request,
    with `custom_id` set). Secrets in `headers` are redacted."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    time: float
    status: int | None
    reply: str = ""
    section: str | None = None
    section_path: str | None = None
    voter: str | None = None
    attempt: int | None = None
    custom_id: str | None = None
    api_version: str | None = None
    temperature_received: bool = False
    temperature: Any = None

    @property
    def is_call(self) -> bool:
        """True for a message call the script answered (directly or inside a batch)."""
        return self.attempt is not None


# --------------------------------------------------------------------------- rate limit


@dataclass(frozen=True)
class RateLimit:
    """The stub's rate limit: token buckets refilled continuously, as the Anthropic API's are.

    `requests_per_s` requests and `input_tokens_per_s` input tokens (None: no token limit)
    per second; each bucket holds `burst_s` seconds of its rate (at least one request, and
    at least the largest request for tokens). Input tokens are the prompt's characters / 4.
    """

    requests_per_s: float
    input_tokens_per_s: float | None = None
    burst_s: float = 1.0

    def __post_init__(self) -> None:
        if self.requests_per_s <= 0 or (self.input_tokens_per_s is not None and self.input_tokens_per_s <= 0):
            raise ValueError("rate limits must be above 0")
        if self.burst_s <= 0:
            raise ValueError("burst_s must be above 0")


class _Bucket:
    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity, self.level, self.at = rate, capacity, capacity, time.monotonic()

    def refill(self, now: float) -> None:
        self.level, self.at = min(self.capacity, self.level + self.rate * (now - self.at)), now

    def wait_for(self, amount: float) -> float:
        return max(0.0, (min(amount, self.capacity) - self.level) / self.rate)

    def headers(self, stem: str, now_wall: float) -> dict[str, str]:
        reset = now_wall + (self.capacity - self.level) / self.rate
        return {
            f"anthropic-ratelimit-{stem}-limit": f"{self.capacity:.0f}",
            f"anthropic-ratelimit-{stem}-remaining": str(max(0, math.floor(self.level))),  # whole ones
            f"anthropic-ratelimit-{stem}-reset": _rfc3339(datetime.fromtimestamp(reset, timezone.utc)),
        }


class _Limiter:
    """Admits a request when every bucket holds its share, else says how long until it would."""

    def __init__(self, limit: RateLimit) -> None:
        self.requests = _Bucket(limit.requests_per_s, max(1.0, limit.requests_per_s * limit.burst_s))
        self.tokens = (
            _Bucket(limit.input_tokens_per_s, limit.input_tokens_per_s * limit.burst_s)
            if limit.input_tokens_per_s is not None
            else None
        )

    def admit(self, tokens: int) -> tuple[float, dict[str, str]]:
        """(0, headers) and the buckets charged, or (seconds to wait, headers) and nothing charged."""
        now = time.monotonic()
        buckets = [(self.requests, 1.0, "requests")]
        if self.tokens is not None:
            buckets.append((self.tokens, float(tokens), "input-tokens"))
        for bucket, _, _ in buckets:
            bucket.refill(now)
        wait = max(bucket.wait_for(amount) for bucket, amount, _ in buckets)
        if wait <= 0:
            for bucket, amount, _ in buckets:
                bucket.level -= amount
        headers: dict[str, str] = {}
        for bucket, _, stem in buckets:
            headers.update(bucket.headers(stem, time.time()))
        return wait, headers


# --------------------------------------------------------------------------- batches


@dataclass
class _Batch:
    id: str
    created_at: datetime
    lines: list[dict[str, Any]]
    polls: int = 0
    ended_at: datetime | None = None

    def counts(self, ended: bool) -> dict[str, int]:
        if not ended:
            return {"processing": len(self.lines), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        kinds = [line["result"]["type"] for line in self.lines]
        return {
            "processing": 0,
            "succeeded": kinds.count("succeeded"),
            "errored": kinds.count("errored"),
            "canceled": 0,
            "expired": 0,
        }


# --------------------------------------------------------------------------- HTTP plumbing


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


def _json_response(status: int, payload: Any, **headers: str) -> _Response:
    return _Response(status, json.dumps(payload).encode(), headers=dict(headers))


def _error_payload(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], stub: StubServer) -> None:
        self.stub = stub
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-reply is normal here (timeouts, dropped tests)."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    server_version = "swarmgate-stub"

    def setup(self) -> None:
        super().setup()
        self.server.stub._track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.stub._track(self.connection, open_=False)
        super().finish()

    def do_GET(self) -> None:
        self.server.stub._serve(self, "GET")

    def do_POST(self) -> None:
        self.server.stub._serve(self, "POST")

    def do_PUT(self) -> None:
        self.server.stub._serve(self, "PUT")

    def do_DELETE(self) -> None:
        self.server.stub._serve(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        """Keep stderr quiet: the request log is `StubServer.requests`."""


# --------------------------------------------------------------------------- the server


class StubServer:
    """An Anthropic-compatible server on 127.0.0.1 in a daemon thread; a context manager.

    `url` is "http://127.0.0.1:PORT"; `requests` is a snapshot of the request log.
    `sampling`: "accept" takes temperature/top_p/top_k under any API version, "reject"
    answers 400 to them, "legacy" accepts them only under an anthropic-version older than
    CURRENT_API_VERSION. `require_key`: answer 401 unless that key comes as a Bearer token
    or x-api-key. `script` may be replaced at any time.
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        port: int = 0,
        latency: float = 0.0,
        sampling: Sampling = "accept",
        require_key: str | None = None,
        batch_polls_before_done: int = 1,
        answer_model: str | None = None,
        strict: Strict = "accept",
        plain_text: bool = False,
        models: Sequence[str] | None = None,
        revoke_key_after: int | None = None,
        rate_limit: RateLimit | None = None,
        log_limit: int = DEFAULT_LOG_LIMIT,
    ) -> None:
        if sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLING_MODES)}, not {sampling!r}")
        self.script = script if script is not None else Script()
        self.port = port
        self.latency = latency
        self.sampling: Sampling = sampling
        self.require_key = require_key
        self.batch_polls_before_done = batch_polls_before_done
        if strict not in STRICT_MODES:
            raise ValueError(f"strict must be one of {', '.join(STRICT_MODES)}, not {strict!r}")
        self.answer_model = answer_model
        self.strict: Strict = strict
        self.plain_text = plain_text
        self._lock = threading.Lock()
        self.models = frozenset(models) if models is not None else None
        self.revoke_key_after = revoke_key_after
        self.rate_limit = rate_limit
        self._limiter = _Limiter(rate_limit) if rate_limit is not None else None
        self._message_calls = 0
        # Bounded: a long load test must not grow the stub without limit.
        self._log: deque[LoggedRequest] = deque(maxlen=log_limit)
        self._attempts: dict[tuple[str | None, str | None], int] = {}
        self._cache: dict[str, float] = {}  # prefix key -> when the entry becomes readable
        self._batches: dict[str, _Batch] = {}
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> StubServer:
        if self._httpd is not None:
            raise RuntimeError("StubServer is already running")
        self._stopping.clear()
        self._httpd = _HTTPServer(("127.0.0.1", self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"swarmgate-stub:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping replies and close every open connection."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by the client: nothing to do
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("StubServer is not running: call start() or use it as a context manager")
        return f"http://127.0.0.1:{self.port}"

    # ---- the request log

    @property
    def requests(self) -> list[LoggedRequest]:
        """A snapshot of every request so far, oldest first."""
        with self._lock:
            return list(self._log)

    def calls(self, section: str | None = None, voter: str | None = None) -> list[LoggedRequest]:
        """Message calls the script answered, optionally for one section id and/or voter id."""
        return [
            r
            for r in self.requests
            if r.is_call and (section is None or r.section == section) and (voter is None or r.voter == voter)
        ]

    def clear_log(self) -> None:
        """Forget the request log and the attempt counters (the prompt cache is kept)."""
        with self._lock:
            self._log.clear()
            self._attempts.clear()

    def _record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def _track(self, conn: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # ---- HTTP entry point

    def _serve(self, handler: _Handler, method: str) -> None:
        received = time.time()
        headers = {k.lower(): v for k, v in handler.headers.items()}
        raw = self._read_body(handler, headers)
        path = urlsplit(handler.path).path.rstrip("/") or "/"
        body: Any = None
        entry: dict[str, Any] = {}
        if raw is None:
            response = self._error(400, "invalid_request_error", "invalid Content-Length header")
        else:
            # Work first, then wait out the rest of the latency: latency is receipt to reply,
            # as with a real API, and replies are not all computed in one burst at the end.
            started = time.monotonic()
            body, response, entry = self._dispatch(method, path, headers, raw)
            self._stopping.wait(max(0.0, started + self.latency - time.monotonic()))
        if response.delay > 0:
            self._stopping.wait(response.delay)
        if self._stopping.is_set():
            response = _Response(0, drop=True)
        redacted = {k: (REDACTED if k in _REDACTED_HEADERS else v) for k, v in headers.items()}
        self._record(
            LoggedRequest(method, path, redacted, body, received, None if response.drop else response.status, **entry)
        )
        self._write(handler, response)

    @staticmethod
    def _read_body(handler: _Handler, headers: Mapping[str, str]) -> bytes | None:
        try:
            length = int(headers.get("content-length") or 0)
        except ValueError:
            return None
        return handler.rfile.read(length) if length > 0 else b""

    @staticmethod
    def _write(handler: _Handler, response: _Response) -> None:
        if response.drop:
            handler.close_connection = True
            with contextlib.suppress(OSError):  # the peer may already be gone: dropping is the point
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        handler.send_response(response.status)
        handler.send_header("Content-Type", response.content_type)
        handler.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(response.body)
        handler.wfile.flush()

    def _error(self, status: int, error_type: str, message: str, retry_after: float | None = None) -> _Response:
        request_id = _new_id("req")
        headers = {"request-id": request_id}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        return _json_response(status, _error_payload(error_type, message, request_id), **headers)

    def _dispatch(
        self, method: str, path: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[Any, _Response, dict[str, Any]]:
        """Authenticate, parse and route one request: (parsed body, response, log extras)."""
        body: Any = None
        if method == "POST":
            try:
                body = json.loads(raw) if raw else None
            except (UnicodeDecodeError, json.JSONDecodeError):
                return (
                    raw.decode("utf-8", "replace"),
                    self._error(400, "invalid_request_error", "request body is not valid JSON"),
                    {},
                )
        if not self._authorized(headers) or self._revoked(method, path):
            return body, self._error(401, "authentication_error", "invalid x-api-key"), {}
        if method == "POST" and not isinstance(body, dict):
            return body, self._error(400, "invalid_request_error", "request body must be a JSON object"), {}
        api_version = headers.get("anthropic-version")
        if method == "GET" and (model := _MODEL_RE.match(path)):
            return body, self._model(model.group(1)), {}
        if method == "POST" and path == "/v1/messages":
            if self.models is not None and body.get("model") not in self.models:
                return body, self._error(404, "not_found_error", f"model: {body.get('model')}"), {}
            limited, limit_headers = self._rate_limited(body)
            if limited is not None:
                return body, limited, {"reply": "rate_limited"}
            response, entry = self._messages(body, api_version)
            response.headers.update(limit_headers)
            return body, response, entry
        if method == "POST" and path == "/v1/messages/batches":
            return body, self._create_batch(body, api_version), {}
        if method == "GET" and path == "/v1/messages/batches":
            return body, self._list_batches(), {}
        match = _BATCH_RE.match(path)
        if method == "GET" and match:
            batch_id, results = match.group(1), bool(match.group(2))
            return body, (self._batch_results(batch_id) if results else self._retrieve_batch(batch_id)), {}
        return body, self._error(404, "not_found_error", f"{method} {path}: not found"), {}

    def _revoked(self, method: str, path: str) -> bool:
        """After `revoke_key_after` message calls the key is rejected (a key revoked mid-run)."""
        if self.revoke_key_after is None or not (method == "POST" and path == "/v1/messages"):
            return False
        with self._lock:
            self._message_calls += 1
            return self._message_calls > self.revoke_key_after

    def _model(self, model: str) -> _Response:
        if self.models is not None and model not in self.models:
            return self._error(404, "not_found_error", f"model: {model}")
        info = {"type": "model", "id": model, "display_name": model, "created_at": "2026-01-01T00:00:00Z"}
        return _json_response(200, info, **{"request-id": _new_id("req")})

    def _rate_limited(self, body: Mapping[str, Any]) -> tuple[_Response | None, dict[str, str]]:
        """(None, rate-limit headers) when the request is admitted, else (a 429, headers)."""
        if self._limiter is None:
            return None, {}
        tokens = sum(_block_tokens(b) for b in _prompt_blocks(body))
        with self._lock:
            wait, headers = self._limiter.admit(tokens)
        if wait <= 0:
            return None, headers
        # Honest: the seconds until the bucket holds this request, rounded up to the millisecond.
        response = self._error(429, "rate_limit_error", "stub: rate limit exceeded", math.ceil(wait * 1000) / 1000)
        response.headers.update(headers)
        return response, headers

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        if self.require_key is None:
            return True
        bearer = headers.get("authorization", "")
        token = bearer[7:].strip() if bearer[:7].lower() == "bearer " else None
        return self.require_key in (token, headers.get("x-api-key"))

    # ---- messages

    def _messages(self, body: Mapping[str, Any], api_version: str | None) -> tuple[_Response, dict[str, Any]]:
        outcome = self._call(body, api_version)
        if outcome.message is not None:
            response = _json_response(200, outcome.message, **{"request-id": _new_id("req")})
        elif outcome.rendered.kind == "drop":
            response = _Response(0, drop=True)
        elif outcome.rendered.kind == "raw":
            response = _Response(200, outcome.rendered.raw, headers={"request-id": _new_id("req")})
        else:
            r = outcome.rendered
            response = self._error(r.status, r.error_type, r.error_message, r.retry_after)
        response.delay = outcome.rendered.delay
        return response, outcome.entry

    def _call(self, body: Mapping[str, Any], api_version: str | None, custom_id: str | None = None) -> _CallOutcome:
        """Validate one message request, ask the script, and render its reply."""
        routing = _route(body)
        entry: dict[str, Any] = {
            "section": routing.section,
            "section_path": routing.path,
            "voter": routing.voter,
            "custom_id": custom_id,
            "api_version": api_version,
            "temperature_received": "temperature" in body,
            "temperature": body.get("temperature"),
        }
        problem = _validate(body) or self._sampling_problem(body, api_version) or self._strict_problem(body)
        if problem:
            entry["reply"] = "rejected"
            return _CallOutcome(
                Rendered("error", status=400, error_type="invalid_request_error", error_message=problem), None, entry
            )
        with self._lock:
            key = (routing.section, routing.voter)
            attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
        ctx = CallContext(
            section=routing.section,
            path=routing.path,
            voter=routing.voter,
            body=body,
            attempt=attempt,
            model=str(body.get("model", "")),
            text=routing.text,
            tool_name=_tool_name(body),
            api_version=api_version,
            custom_id=custom_id,
        )
        reply = Reply.text(PLAIN_TEXT_ANSWER) if self.plain_text else self.script.reply_for(ctx)
        rendered = reply.render(ctx)
        entry.update(attempt=attempt, reply=_reply_kind(reply, ctx))
        message = self._message_json(body, rendered) if rendered.kind == "message" else None
        if message is not None and body.get("max_tokens") == 0:
            # max_tokens 0 only populates the prompt cache: no content, nothing generated.
            message.update(content=[], stop_reason="max_tokens")
            message["usage"]["output_tokens"] = 0
            entry["reply"] = "prewarm"
        return _CallOutcome(rendered, message, entry)

    def _strict_problem(self, body: Mapping[str, Any]) -> str | None:
        """With strict="reject", a tool sent with `strict: true` is refused, naming the field."""
        tools = body.get("tools")
        if self.strict == "reject" and isinstance(tools, list):
            for i, tool in enumerate(tools):
                if isinstance(tool, Mapping) and "strict" in tool:
                    return f"tools.{i}.custom.strict: Extra inputs are not permitted"
        return None

    def _sampling_problem(self, body: Mapping[str, Any], api_version: str | None) -> str | None:
        sent = [p for p in SAMPLING_PARAMS if p in body]
        if not sent:
            return None
        legacy_ok = api_version is not None and api_version < CURRENT_API_VERSION
        if self.sampling == "reject" or (self.sampling == "legacy" and not legacy_ok):
            return f"{sent[0]}: sampling parameters are not supported for this model"
        temperature = body.get("temperature")
        if "temperature" in body and (
            isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0.0 <= temperature <= 1.0
        ):
            return "temperature: Input should be a number between 0 and 1"
        return None

    def _message_json(self, body: Mapping[str, Any], rendered: Rendered) -> dict[str, Any]:
        content = [dict(block) for block in rendered.content]
        usage = self._usage(body)
        usage["output_tokens"] = (
            rendered.output_tokens if rendered.output_tokens is not None else max(1, _tokens(len(json.dumps(content))))
        )
        message: dict[str, Any] = {
            "id": _new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": self.answer_model or body.get("model", ""),
            "content": content,
            "stop_reason": rendered.stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        if rendered.stop_details is not None:
            message["stop_details"] = dict(rendered.stop_details)
        return message

    def _usage(self, body: Mapping[str, Any]) -> dict[str, int]:
        """Input usage with the prompt cache simulated (see the module docstring)."""
        blocks = _prompt_blocks(body)
        breakpoints = [i for i, b in enumerate(blocks) if isinstance(b, Mapping) and "cache_control" in b]
        cut = breakpoints[-1] if breakpoints else -1
        tokens = [_block_tokens(b) for b in blocks]
        read_upto = -1  # the last block of the longest prefix already readable
        if breakpoints:
            keys = {i: self._prefix_key(body, blocks[: i + 1]) for i in breakpoints}
            now = time.monotonic()
            with self._lock:
                # A cache entry serves later calls only once the call that wrote it has
                # answered: calls sent together all write, as with the real API.
                for i in breakpoints:
                    ready = self._cache.get(keys[i])
                    if ready is not None and ready <= now:
                        read_upto = i
                for i in breakpoints:
                    self._cache.setdefault(keys[i], now + self.latency)
        return {
            "input_tokens": sum(tokens[cut + 1 :]),
            "cache_creation_input_tokens": sum(tokens[read_upto + 1 : cut + 1]),
            "cache_read_input_tokens": sum(tokens[: read_upto + 1]),
        }

    @staticmethod
    def _prefix_key(body: Mapping[str, Any], prefix: Sequence[Any]) -> str:
        """The cache key of a prompt prefix: the model and the prefix's blocks, byte for byte."""
        material = json.dumps([body.get("model"), list(prefix)], sort_keys=True, default=str)
        return hashlib.sha256(material.encode()).hexdigest()

    # ---- batches

    def _create_batch(self, body: Mapping[str, Any], api_version: str | None) -> _Response:
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return self._error(400, "invalid_request_error", "requests: must be a non-empty list")
        ids = [r.get("custom_id") if isinstance(r, Mapping) else None for r in requests]
        if not all(isinstance(i, str) and i for i in ids) or len(set(ids)) != len(ids):
            return self._error(
                400, "invalid_request_error", "requests: every custom_id must be a unique non-empty string"
            )
        if not all(isinstance(r.get("params"), Mapping) for r in requests):
            return self._error(400, "invalid_request_error", "requests: every request needs a params object")
        lines = [self._batch_line(r["custom_id"], r["params"], api_version) for r in requests]
        batch = _Batch(_new_id("msgbatch"), datetime.now(timezone.utc), lines)
        with self._lock:
            self._batches[batch.id] = batch
        return _json_response(200, self._batch_json(batch, ended=False))

    def _batch_line(self, custom_id: str, params: Mapping[str, Any], api_version: str | None) -> dict[str, Any]:
        """Run one batched request through the script; faults become `errored` results."""
        outcome = self._call(params, api_version, custom_id)
        status = 200 if outcome.message is not None else outcome.rendered.status
        self._record(
            LoggedRequest("POST", "/v1/messages/batches", {}, dict(params), time.time(), status, **outcome.entry)
        )
        if outcome.message is not None:
            return {"custom_id": custom_id, "result": {"type": "succeeded", "message": outcome.message}}
        r = outcome.rendered
        if r.kind == "error":
            error_type, message = r.error_type, r.error_message
        else:
            error_type, message = "api_error", f"stub: a {r.kind} reply has no batch equivalent"
        return {
            "custom_id": custom_id,
            "result": {"type": "errored", "error": _error_payload(error_type, message, _new_id("req"))},
        }

    def _batch_json(self, batch: _Batch, *, ended: bool) -> dict[str, Any]:
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": batch.counts(ended),
            "created_at": _rfc3339(batch.created_at),
            "expires_at": _rfc3339(batch.created_at + timedelta(hours=24)),
            "ended_at": _rfc3339(batch.ended_at) if ended and batch.ended_at else None,
            "cancel_initiated_at": None,
            "archived_at": None,
            "results_url": f"{self.url}/v1/messages/batches/{batch.id}/results" if ended else None,
        }

    def _retrieve_batch(self, batch_id: str) -> _Response:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is not None:
                batch.polls += 1
                if batch.polls > self.batch_polls_before_done and batch.ended_at is None:
                    batch.ended_at = datetime.now(timezone.utc)
        if batch is None:
            return self._error(404, "not_found_error", f"message batch {batch_id} not found")
        return _json_response(200, self._batch_json(batch, ended=batch.ended_at is not None))

    def _list_batches(self) -> _Response:
        with self._lock:
            batches = list(self._batches.values())
        data = [self._batch_json(b, ended=b.ended_at is not None) for b in reversed(batches)]
        return _json_response(
            200,
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
        )

    def _batch_results(self, batch_id: str) -> _Response:
        with self._lock:
            batch = self._batches.get(batch_id)
        if batch is None:
            return self._error(404, "not_found_error", f"message batch {batch_id} not found")
        if batch.ended_at is None:
            return self._error(400, "invalid_request_error", f"message batch {batch_id} is still in_progress")
        jsonl = "".join(json.dumps(line) + "\n" for line in batch.lines).encode()
        return _Response(200, jsonl, content_type="application/x-jsonl", headers={"request-id": _new_id("req")})


@dataclass(frozen=True)
class _CallOutcome:
    rendered: Rendered
    message: dict[str, Any] | None
    entry: dict[str, Any]


def _validate(body: Mapping[str, Any]) -> str | None:
    """The first problem the real API would reject the request for, or None."""
    if not isinstance(body.get("model"), str) or not body.get("model"):
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        return "max_tokens: Field required (a non-negative integer)"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required (a non-empty list)"
    return None


def _prompt_blocks(body: Mapping[str, Any]) -> list[Any]:
    """The prompt in cache order: tools, system blocks, then every message's content blocks."""
    blocks: list[Any] = list(body.get("tools") or [])
    system = body.get("system")
    if isinstance(system, str):
        blocks.append({"type": "text", "text": system})
    elif isinstance(system, list):
        blocks.extend(system)
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            blocks.append({"type": "text", "text": content})
        elif isinstance(content, list):
            blocks.extend(content)
    return blocks


def _block_tokens(block: Any) -> int:
    if isinstance(block, Mapping) and block.get("type") == "text" and isinstance(block.get("text"), str):
        return _tokens(len(block["text"]))
    return _tokens(len(json.dumps(block, default=str)))
