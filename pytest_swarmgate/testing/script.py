"""Scripts: which `Reply` each call gets, built in Python or read from JSON.

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
    {"review": {"title": "...", ...}}       the aggregator's submit_review call (title, explanation,
                                            findings, disagreement, fix, patch; what is left out is
                                            made from the votes the call carries)

The aggregator's calls (tool `submit_review`) follow the rules of a top-level `"synthesis"` list
instead (`{"section": "app/*.py", "reply": {"review": {...}}}`, or any fault above); without one
they get a review made from the votes they carry.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Mapping
from typing import Any

from .replies import REVIEW_TOOL, CallContext, Reply


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
        # The aggregator's calls (tool submit_review) have rules of their own: a voter's rule never answers them.
        self._synthesis_rules: tuple[Rule, ...] = ()

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

    def on_synthesis(self, section: str = "*", *, reply: Reply) -> Script:
        """Answer the aggregator's call on a section whose id or path matches the `section` glob with `reply`
        (`Reply.review(...)`, or a fault); without a rule it gets `Reply.review()`. Returns self."""

        def rule(ctx: CallContext) -> Reply | None:
            where = (ctx.section or "", ctx.path or "")
            return reply if any(fnmatch.fnmatchcase(w, section) for w in where if w or section == "*") else None

        self._synthesis_rules = (*self._synthesis_rules, rule)
        return self

    def reply_for(self, ctx: CallContext) -> Reply:
        synthesis = ctx.tool_name == REVIEW_TOOL
        for rule in self._synthesis_rules if synthesis else self._rules:
            reply = rule(ctx)
            if reply is not None:
                return reply
        return Reply.review() if synthesis else self.default

    @classmethod
    def from_json(cls, data: Any) -> Script:
        """Build a script from the JSON format in this module's docstring (ScriptError if bad)."""
        if not isinstance(data, Mapping):
            raise ScriptError("a script must be a JSON object with 'default' and 'rules'")
        _no_extra_keys(data, {"default", "rules", "synthesis"}, "script")
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
        synthesis = data.get("synthesis", [])
        if not isinstance(synthesis, list):
            raise ScriptError("synthesis: must be a list")
        for i, rule in enumerate(synthesis):
            where = f"synthesis[{i}]"
            if not isinstance(rule, Mapping) or "reply" not in rule:
                raise ScriptError(f"{where}: must be an object with a 'reply'")
            _no_extra_keys(rule, {"section", "reply"}, where)
            if not isinstance(rule.get("section", "*"), str):
                raise ScriptError(f"{where}: 'section' must be a string")
            script.on_synthesis(rule.get("section", "*"), reply=reply_from_json(rule["reply"], f"{where}.reply"))
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
    if "review" in spec:
        _no_extra_keys(spec, {"review"}, where)
        fields = spec["review"]
        allowed = {"title", "explanation", "findings", "disagreement", "fix", "patch"}
        if not isinstance(fields, Mapping):
            raise ScriptError(f"{where}.review: must be an object")
        _no_extra_keys(fields, allowed, f"{where}.review")
        return Reply.review(**{k: fields[k] for k in allowed if k in fields})
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
    raise ScriptError(f"{where}: expected one of verdict, review, status, slow, text, tool_input, sequence")
