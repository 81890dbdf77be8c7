"""Reply validation is pure: every malformed answer is an error with a reason, never a verdict."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_swarmgate.core.verdict import (
    MAX_FINDINGS,
    VerdictError,
    parse_reply,
    parse_tool_input,
)
from pytest_swarmgate.model import Finding

GOOD: dict[str, Any] = {
    "verdict": "UNSAFE",
    "confidence": 0.9,
    "summary": "query built by concatenation",
    "findings": [
        {
            "path": "app/db.py",
            "line": 12,
            "severity": "high",
            "category": "CWE-89",
            "title": "SQL injection",
            "rationale": "r",
        }
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


SAFE = {**GOOD, "verdict": "SAFE", "summary": "parameterized query", "findings": []}
FINDING = GOOD["findings"][0]
MALFORMED_FINDINGS = [
    pytest.param({**FINDING, "line": "7"}, "line", id="line-string"),
    pytest.param({**FINDING, "line": -1}, "line", id="line-negative"),
    pytest.param({**FINDING, "severity": "urgent"}, "severity", id="severity-unknown"),
    pytest.param(
        {"path": "a", "line": 7}, "lacks required field category, rationale, severity, title", id="fields-missing"
    ),
    pytest.param("SQL injection", "not an object", id="not-an-object"),
]


@pytest.mark.parametrize("base", [GOOD, SAFE], ids=["UNSAFE", "SAFE"])
@pytest.mark.parametrize(
    "patch, reason",
    [
        ({"verdict": "safe"}, "verdict must be"),
        ({"verdict": "NOT UNSAFE"}, "verdict must be"),
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": True}, "confidence"),
        ({"confidence": float("nan")}, "confidence"),
        ({"findings": "none"}, "findings must be a list"),
        ({"summary": 3}, "summary"),
    ],
)
def test_invalid_fields_are_errors_whatever_the_verdict(base, patch, reason) -> None:
    with pytest.raises(VerdictError, match=reason):
        parse_tool_input({**base, **patch})


@pytest.mark.parametrize("finding, reason", MALFORMED_FINDINGS)
def test_a_safe_vote_with_a_malformed_finding_is_an_error(finding, reason) -> None:
    """A SAFE vote must be valid throughout: a garbled answer is no approval."""
    with pytest.raises(VerdictError, match=reason):
        parse_tool_input({**SAFE, "findings": [{**FINDING, "severity": "info"}, finding]})


def test_a_safe_vote_with_too_many_findings_is_an_error() -> None:
    info = {**FINDING, "severity": "info"}
    assert len(parse_tool_input({**SAFE, "findings": [info] * MAX_FINDINGS}).findings) == MAX_FINDINGS
    with pytest.raises(VerdictError, match=f"{MAX_FINDINGS + 1} findings, at most {MAX_FINDINGS}"):
        parse_tool_input({**SAFE, "findings": [info] * (MAX_FINDINGS + 1)})


@pytest.mark.parametrize("finding, reason", MALFORMED_FINDINGS)
def test_an_unsafe_vote_keeps_its_verdict_and_drops_a_malformed_finding(finding, reason) -> None:
    parsed = parse_tool_input({**GOOD, "findings": [finding, FINDING]})
    assert parsed.verdict == "UNSAFE" and parsed.confidence == 0.9
    assert parsed.findings == (Finding("app/db.py", 12, "high", "CWE-89", "SQL injection", "r"),)
    assert parsed.summary == "query built by concatenation [swarmgate: 1 malformed finding dropped]"


def test_an_unsafe_vote_with_too_many_findings_stays_unsafe_and_says_what_was_dropped() -> None:
    """A PR that plants one finding per line must not turn UNSAFE votes into ERROR votes."""
    findings = [{**FINDING, "line": i} for i in range(1, MAX_FINDINGS + 13)] + [
        {"line": 1},
        7,
        {**FINDING, "line": "x"},
    ]
    parsed = parse_tool_input({**GOOD, "findings": findings})
    assert parsed.verdict == "UNSAFE"
    assert [f.line for f in parsed.findings] == list(range(1, MAX_FINDINGS + 1)), (
        "the first findings are kept, in order"
    )
    assert parsed.summary == (
        "query built by concatenation [swarmgate: 3 malformed findings dropped, "
        f"12 findings over the limit of {MAX_FINDINGS} dropped]"
    )


def test_an_unsafe_vote_within_the_limits_keeps_its_summary_unchanged() -> None:
    parsed = parse_tool_input({**GOOD, "findings": [FINDING] * MAX_FINDINGS})
    assert len(parsed.findings) == MAX_FINDINGS and parsed.summary == GOOD["summary"]
    assert (
        parse_tool_input({**GOOD, "summary": "", "findings": [7]}).summary == "[swarmgate: 1 malformed finding dropped]"
    )


def test_null_line_is_allowed() -> None:
    data = {**GOOD, "findings": [{**GOOD["findings"][0], "line": None}]}
    assert parse_tool_input(data).findings[0].line is None
