"""Reply validation is pure: every malformed answer is an error with a reason, never a verdict."""

from __future__ import annotations

import pytest

from pytest_swarmgate.model import Finding
from pytest_swarmgate.verdict import VerdictError, parse_reply, parse_tool_input

GOOD = {
    "verdict": "UNSAFE",
    "confidence": 0.9,
    "summary": "query built by concatenation",
    "findings": [
        {"path": "app/db.py", "line": 12, "severity": "high", "category": "CWE-89", "title": "SQL injection", "rationale": "r"}
    ],
}


def tool_use(data, name="submit_verdict"):
    return {"type": "tool_use", "id": "t1", "name": name, "input": data}


def test_a_valid_tool_call_is_a_verdict() -> None:
    parsed = parse_reply("tool_use", [tool_use(GOOD)])
    assert parsed.verdict == "UNSAFE" and parsed.confidence == 0.9
    assert parsed.findings == (Finding("app/db.py", 12, "high", "CWE-89", "SQL injection", "r"),)


@pytest.mark.parametrize(
    "stop, content, reason",
    [
        ("refusal", [{"type": "text", "text": "I can't help"}], "refused"),
        ("max_tokens", [tool_use({"verdict": "SAFE"})], "truncated"),
        ("end_turn", [{"type": "text", "text": "VERDICT: SAFE"}], "no submit_verdict"),
        ("tool_use", [tool_use(GOOD), tool_use(GOOD)], "exactly one"),
        ("tool_use", [tool_use(GOOD, name="other")], "expected submit_verdict"),
    ],
)
def test_replies_that_are_not_one_forced_tool_call_are_errors(stop, content, reason) -> None:
    with pytest.raises(VerdictError, match=reason):
        parse_reply(stop, content)


@pytest.mark.parametrize(
    "patch, reason",
    [
        ({"verdict": "safe"}, "verdict must be"),
        ({"verdict": "NOT UNSAFE"}, "verdict must be"),
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": True}, "confidence"),
        ({"confidence": float("nan")}, "confidence"),
        ({"findings": "none"}, "findings must be a list"),
        ({"findings": [{"path": "a", "line": "7", "severity": "high", "category": "c", "title": "t", "rationale": "r"}]}, "line"),
        ({"findings": [{"path": "a", "line": 7, "severity": "urgent", "category": "c", "title": "t", "rationale": "r"}]}, "severity"),
        ({"findings": [{"path": "a", "line": 7}]}, "severity must be a string"),
        ({"summary": 3}, "summary"),
    ],
)
def test_invalid_fields_are_errors(patch, reason) -> None:
    with pytest.raises(VerdictError, match=reason):
        parse_tool_input({**GOOD, **patch})


def test_null_line_is_allowed() -> None:
    data = {**GOOD, "findings": [{**GOOD["findings"][0], "line": None}]}
    assert parse_tool_input(data).findings[0].line is None
