"""CI reports are pure views of one RunResult: JSON (schema-checked), SARIF, GitHub annotations, step summary."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import official_sarif_validator, validate_report

from pytest_swarmgate.core.choices import InconclusivePolicy
from pytest_swarmgate.core.gate import Gate
from pytest_swarmgate.core.voting import judge
from pytest_swarmgate.model import (
    Finding,
    NotReviewed,
    RunResult,
    Section,
    SectionResult,
    Settings,
    Usage,
    Vote,
    Voter,
)
from pytest_swarmgate.output import alerts as reports
from pytest_swarmgate.output import escape, github, sarif
from pytest_swarmgate.output import json_report as report_json

N, K = 5, 4
PANEL = tuple(Voter(f"v{i}", "claude-test", temperature=0.2 * i, lens="security") for i in range(1, N + 1))
SQLI = Finding("app/orders.py", 7, "high", "CWE-89", "SQL injection", "customer is concatenated into the query")
RACE = Finding(
    "app/cache.py", None, "medium", "race condition", "Check-then-act on the cache", "two writers can interleave"
)
INFO = Finding("app/util.py", 3, "info", "style", "Unused import", "os is never used")


VOTE_USAGE = Usage(1000, 200, 800, 50)


def section(path: str) -> Section:
    return Section(id=path, path=path, old_path=None, change="modified", text=f"--- a/{path}\n+++ b/{path}\n", added=4)


def vote(
    path: str,
    voter: str,
    verdict: str,
    *findings: Finding,
    cached: bool = False,
    latency: float = 1.25,
    usage: Usage = VOTE_USAGE,
) -> Vote:
    return Vote(
        section_id=path,
        voter_id=voter,
        model="claude-test",
        verdict=verdict,  # type: ignore[arg-type]
        confidence=None if verdict == "ERROR" else 0.8,
        findings=findings,
        summary=f"{voter} says {verdict}",
        stop_reason=None if verdict == "ERROR" else "tool_use",
        latency_s=latency,
        usage=Usage() if verdict == "ERROR" else usage,
        error="HTTP 529 overloaded after 2 retries" if verdict == "ERROR" else None,
        settings=Settings(
            temperature=None, lens="security", api_version="2026-10-21", notes=("temperature not applied",)
        ),
        cached=cached,
    )


def judged(path: str, *votes: Vote) -> SectionResult:
    return judge(section(path), votes, N, K)


def run_of(
    *results: SectionResult,
    not_reviewed: tuple[NotReviewed, ...] = (),
    wall: float = 9.5,
    on_inconclusive: InconclusivePolicy = "fail",
) -> RunResult:
    gate = Gate(N, K, on_inconclusive)
    return RunResult("pr.patch", hashlib.sha256(b"pr").hexdigest(), PANEL, gate, results, not_reviewed, wall)


def unsafe_sqli(**kw: Any) -> SectionResult:
    """Four voters find the same injection: UNSAFE 4/5."""
    votes = [vote("app/orders.py", f"v{i}", "UNSAFE", SQLI, **kw) for i in range(1, 5)]
    return judged("app/orders.py", *votes, vote("app/orders.py", "v5", "SAFE", INFO, **kw))


def safe_with_dissent(**kw: Any) -> SectionResult:
    votes = [vote("app/cache.py", f"v{i}", "SAFE", **kw) for i in range(1, 5)]
    return judged("app/cache.py", *votes, vote("app/cache.py", "v5", "UNSAFE", RACE, **kw))


def inconclusive(**kw: Any) -> SectionResult:
    traversal = Finding("app/files.py", 12, "critical", "CWE-22", "Path traversal", "name is joined unchecked")
    return judged(
        "app/files.py",
        vote("app/files.py", "v1", "ERROR"),
        vote("app/files.py", "v2", "ERROR"),
        vote("app/files.py", "v3", "SAFE", **kw),
        vote("app/files.py", "v4", "SAFE", cached=True),
        vote("app/files.py", "v5", "UNSAFE", traversal, **kw),
    )


def mixed_run(*, wall: float = 9.5, **kw: Any) -> RunResult:
    """UNSAFE, SAFE with dissent, INCONCLUSIVE, a cached vote and a file not reviewed."""
    return run_of(
        unsafe_sqli(**kw),
        safe_with_dissent(**kw),
        inconclusive(**kw),
        not_reviewed=(NotReviewed("assets/logo.png", "binary file", kind="media"),),
        wall=wall,
    )


def make_report(run: RunResult, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(started_at="2026-11-02T10:00:00+00:00", plugin_version="0.1.0", sdk_version="2.3.0")
    return report_json.json_report(run, **{**args, **kw})


# --- JSON report ------------------------------------------------------------------------


def test_schema_is_packaged_and_is_a_valid_draft_2020_12_schema() -> None:
    path = report_json.schema_path()
    assert path.is_file()
    schema = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == report_json.SCHEMA_ID


def test_json_report_validates_against_the_shipped_schema() -> None:
    report = make_report(mixed_run(), extra={"ci": {"job": 42}})
    validate_report(report)
    validate_report(json.loads(json.dumps(report)))  # what a reader of the file sees
    assert report["schema"] == report_json.SCHEMA_ID and report["schema_version"] == 1
    assert report["generator"] == {"name": "pytest-swarmgate", "version": "0.1.0", "anthropic_sdk": "2.3.0"}
    assert report["extra"] == {"ci": {"job": 42}}


def test_empty_run_and_missing_sdk_version_validate() -> None:
    report = make_report(run_of(), sdk_version=None)
    validate_report(report)
    assert report["gate"]["outcome"] == "SAFE" and report["gate"]["passed"] is True


def test_json_report_round_trips_the_run_nothing_lost() -> None:
    run = mixed_run()
    report = json.loads(json.dumps(make_report(run)))
    assert RunResult.from_dict(report["run"]) == run


def test_a_run_recorded_before_the_gate_was_reads_back_with_the_default_policy() -> None:
    older = mixed_run().to_dict()
    del older["gate"]
    assert RunResult.from_dict(older).gate == Gate(N, K, "fail")
    assert RunResult.from_dict(older) == mixed_run()


def test_sums_are_computed_once_and_match_the_votes() -> None:
    run = mixed_run()
    assert run.usage is run.usage and run.votes is run.votes, "cached on the frozen result"
    paid = [v for v in run.votes if not v.cached]
    assert run.usage == Usage(
        *(
            sum(getattr(v.usage, f) for v in paid)
            for f in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
        )
    )
    assert (run.calls, run.cached_votes) == (len(paid), 1)
    assert dict(run.counts) == {"SAFE": 1, "UNSAFE": 1, "INCONCLUSIVE": 1}
    with_prewarm = replace(run, prewarm_calls=2, prewarm_usage=Usage(10, 0, 0, 5))
    assert (with_prewarm.calls, with_prewarm.cached_votes) == (len(paid) + 2, 1)
    assert with_prewarm.usage == run.usage + Usage(10, 0, 0, 5)


def test_json_report_keeps_every_vote_exactly() -> None:
    run = mixed_run()
    report = make_report(run)
    assert [v for r in report["run"]["results"] for v in r["votes"]] == [v.to_dict() for v in run.votes]
    assert report["run"]["not_reviewed"] == [
        {"path": "assets/logo.png", "reason": "binary file", "old_path": None, "kind": "media", "change": "modified"}
    ]


def test_json_report_gate_outcomes_totals_and_timings() -> None:
    report = make_report(mixed_run())
    assert report["gate"] == {
        "outcome": "UNSAFE",
        "passed": False,
        "on_inconclusive": "fail",
        "n": 5,
        "k": 4,
        "sections": {"SAFE": 1, "UNSAFE": 1, "INCONCLUSIVE": 1},
    }
    assert [(o["section_id"], o["outcome"], o["tally"]) for o in report["outcomes"]] == [
        ("app/orders.py", "UNSAFE", "UNSAFE 4/5 (K=4)"),
        ("app/cache.py", "SAFE", "SAFE 4/5 (K=4)"),
        ("app/files.py", "INCONCLUSIVE", "INCONCLUSIVE 2 safe/1 unsafe/2 error (K=4)"),
    ]
    assert report["outcomes"][1]["dissent"] == ["v5"]
    totals = report["totals"]
    # 15 votes, one cached: 14 calls; the two ERROR votes used no tokens, the cached one cost nothing.
    assert (totals["votes"], totals["calls"], totals["cached_votes"], totals["error_votes"]) == (15, 14, 1, 2)
    assert totals["tokens"] == {
        "input_tokens": 12000,
        "output_tokens": 2400,
        "cache_read_tokens": 9600,
        "cache_write_tokens": 600,
        "total": 24600,
    }
    assert report["timings"] == {
        "started_at": "2026-11-02T10:00:00+00:00",
        "wall_time_s": 9.5,
        "call_latency_s_sum": 14 * 1.25,
        "call_latency_s_max": 1.25,
    }


def test_inconclusive_only_passes_the_gate_when_the_policy_allows() -> None:
    assert make_report(run_of(inconclusive(), on_inconclusive="fail"))["gate"]["passed"] is False
    allowed = make_report(run_of(inconclusive(), on_inconclusive="warn"))
    assert allowed["gate"]["passed"] is True and allowed["gate"]["on_inconclusive"] == "warn"
    validate_report(allowed)
    assert RunResult.from_dict(allowed["run"]).gate == Gate(N, K, "warn"), "the policy travels with the run"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.update(surprise=1),
        lambda r: r["run"].update(surprise=1),
        lambda r: r["run"]["results"][0]["votes"][0].update(verdict="MAYBE"),
        lambda r: r["run"]["results"][0]["votes"][0]["findings"][0].update(severity="severe"),
        lambda r: r["run"]["results"][0].update(outcome="SAFE-ISH"),
        lambda r: r["run"]["results"][0]["votes"][0]["usage"].update(tokens=3),
        lambda r: r["run"]["results"][0]["votes"][0].update(confidence=1.5),
        lambda r: r.update(schema_version=2),
    ],
)
def test_schema_is_strict(mutate: Any) -> None:
    report = json.loads(json.dumps(make_report(mixed_run())))
    mutate(report)
    with pytest.raises(jsonschema.ValidationError):
        validate_report(report)


# --- SARIF ------------------------------------------------------------------------------


def sarif_results(run: RunResult) -> list[dict[str, Any]]:
    return sarif.sarif_report(run, plugin_version="0.1.0")["runs"][0]["results"]  # type: ignore[no-any-return]


def test_sarif_validates_against_the_official_schema() -> None:
    log = sarif.sarif_report(mixed_run(), plugin_version="0.1.0")
    errors = [e.message for e in official_sarif_validator().iter_errors(log)]
    assert errors == []
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json" and log["version"] == "2.1.0"
    assert len(log["runs"]) == 1
    driver = log["runs"][0]["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("pytest-swarmgate", "0.1.0")
    assert driver["informationUri"].startswith("https://")


def test_sarif_for_an_empty_run_is_valid_with_no_results() -> None:
    log = sarif.sarif_report(run_of(), plugin_version="0.1.0")
    assert list(official_sarif_validator().iter_errors(log)) == []
    assert log["runs"][0]["results"] == [] and log["runs"][0]["tool"]["driver"]["rules"] == []


def test_four_voters_with_the_same_finding_give_one_result() -> None:
    results = [r for r in sarif_results(run_of(unsafe_sqli())) if r["ruleId"] == "CWE-89"]
    assert len(results) == 1
    result = results[0]
    assert [v["id"] for v in result["properties"]["voters"]] == ["v1", "v2", "v3", "v4"]
    assert {v["verdict"] for v in result["properties"]["voters"]} == {"UNSAFE"}
    assert result["properties"]["tally"] == "UNSAFE 4/5 (K=4)"
    assert result["properties"]["outcome"] == "UNSAFE"
    assert result["properties"]["security-severity"] == "7.0"
    text = result["message"]["text"]
    assert "SQL injection" in text and "customer is concatenated" in text and "UNSAFE 4/5 (K=4)" in text
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "app/orders.py", "uriBaseId": "%SRCROOT%"}
    assert location["region"] == {"startLine": 7}


def test_safe_votes_findings_are_not_alerts() -> None:
    # v5 voted SAFE with an informational finding: it stays in the JSON report, not in SARIF.
    assert [r["ruleId"] for r in sarif_results(run_of(unsafe_sqli()))] == ["CWE-89"]


def test_rules_carry_cwe_tags_and_the_worst_security_severity() -> None:
    low = replace(SQLI, severity="low", line=30, title="Another injection")
    run = run_of(judged("app/orders.py", *(vote("app/orders.py", f"v{i}", "UNSAFE", SQLI, low) for i in range(1, 6))))
    log = sarif.sarif_report(run, plugin_version="0.1.0")
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["CWE-89"]
    rule = rules[0]
    assert rule["properties"]["tags"] == ["security", "external/cwe/cwe-89"]
    assert rule["properties"]["security-severity"] == "7.0"
    assert rule["helpUri"] == "https://cwe.mitre.org/data/definitions/89.html"
    assert (
        set(rule["help"]) == {"text", "markdown"}
        and rule["shortDescription"]["text"]
        and rule["fullDescription"]["text"]
    )
    for result in log["runs"][0]["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_free_form_categories_become_swarmgate_rules() -> None:
    assert reports.rule_id("Race Condition!") == "swarmgate/race-condition"
    assert reports.rule_id("cwe-0079: XSS") == "CWE-79"
    assert reports.rule_id("CWE89") == "CWE-89"
    assert reports.rule_id("") == "swarmgate/uncategorized"
    rules = sarif.sarif_report(run_of(safe_with_dissent()), plugin_version="0.1.0")["runs"][0]["tool"]["driver"][
        "rules"
    ]
    assert rules[0]["id"] == "swarmgate/race-condition"
    assert rules[0]["properties"]["tags"] == ["security"]


@pytest.mark.parametrize(
    ("severity", "level"),
    [("critical", "error"), ("high", "error"), ("medium", "warning"), ("low", "note"), ("info", "note")],
)
def test_level_follows_severity_on_an_unsafe_section(severity: str, level: str) -> None:
    finding = replace(SQLI, severity=severity)
    run = run_of(judged("app/orders.py", *(vote("app/orders.py", f"v{i}", "UNSAFE", finding) for i in range(1, 6))))
    [result] = sarif_results(run)
    assert result["level"] == level
    assert result["properties"]["security-severity"] == reports.SECURITY_SEVERITY[severity]


def test_dissent_is_a_note_and_inconclusive_findings_are_warnings() -> None:
    results = {r["ruleId"]: r for r in sarif_results(mixed_run())}
    assert results["swarmgate/race-condition"]["level"] == "note"
    assert results["swarmgate/race-condition"]["properties"]["outcome"] == "SAFE"
    assert results["swarmgate/race-condition"]["message"]["text"].startswith("Dissent on a SAFE section: ")
    assert results["CWE-22"]["level"] == "warning"
    assert results["CWE-22"]["properties"]["outcome"] == "INCONCLUSIVE"


def test_error_votes_are_tool_notifications_not_results() -> None:
    log = sarif.sarif_report(run_of(inconclusive()), plugin_version="0.1.0")
    notes = log["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert [n["message"]["text"] for n in notes] == [
        "v1 on app/files.py: HTTP 529 overloaded after 2 retries",
        "v2 on app/files.py: HTTP 529 overloaded after 2 retries",
    ]
    assert [r["ruleId"] for r in log["runs"][0]["results"]] == ["CWE-22"]


def test_a_safe_section_without_dissent_gives_no_result() -> None:
    run = run_of(judged("app/ok.py", *(vote("app/ok.py", f"v{i}", "SAFE", INFO) for i in range(1, 6))))
    assert sarif_results(run) == []


@pytest.mark.parametrize("line", [None, 0])
def test_no_region_without_a_line(line: int | None) -> None:
    finding = replace(SQLI, line=line)
    run = run_of(judged("app/orders.py", *(vote("app/orders.py", f"v{i}", "UNSAFE", finding) for i in range(1, 6))))
    [result] = sarif_results(run)
    assert "region" not in result["locations"][0]["physicalLocation"]
    assert list(official_sarif_validator().iter_errors(sarif.sarif_report(run, plugin_version="0"))) == []


@pytest.mark.parametrize(
    ("voter_path", "expected"),
    [
        ("app/helpers.py", "app/helpers.py"),  # another file of the repository: kept
        ("./app/helpers.py", "app/helpers.py"),
        ("/etc/passwd", "app/orders.py"),
        ("../../etc/passwd", "app/orders.py"),
        ("app/../../secret", "app/orders.py"),
        ("C:\\Windows\\win.ini", "app/orders.py"),
        ("file:///etc/passwd", "app/orders.py"),
        ("app/x.py\n::error::pwned", "app/orders.py"),
        ("", "app/orders.py"),
    ],
)
def test_finding_paths_are_sanitized(voter_path: str, expected: str) -> None:
    finding = replace(SQLI, path=voter_path)
    run = run_of(judged("app/orders.py", *(vote("app/orders.py", f"v{i}", "UNSAFE", finding) for i in range(1, 6))))
    [result] = sarif_results(run)
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == expected


def test_a_hostile_section_path_is_defanged() -> None:
    assert reports.safe_path("/abs", "../../etc/passwd") == "etc/passwd"
    assert reports.safe_path("../x", "/") == "unknown"


def test_uris_are_percent_encoded_relative_references() -> None:
    finding = replace(SQLI, path="docs/my file#1.py")
    run = run_of(judged("app/orders.py", *(vote("app/orders.py", f"v{i}", "UNSAFE", finding) for i in range(1, 6))))
    [result] = sarif_results(run)
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "docs/my%20file%231.py"


def fingerprints(run: RunResult) -> dict[str, str]:
    return {r["message"]["text"]: r["partialFingerprints"]["swarmgateFinding/v1"] for r in sarif_results(run)}


def test_fingerprints_are_stable_across_calls_and_runs() -> None:
    first = mixed_run()
    assert fingerprints(first) == fingerprints(first)
    # Same findings, different wall time, latency, usage and cache state: same fingerprints.
    second = mixed_run(wall=120.0, latency=33.0, usage=Usage(5, 6, 7, 8), cached=True)
    assert fingerprints(second) == fingerprints(first)
    assert len(set(fingerprints(first).values())) == 3


def test_fingerprints_survive_moved_code_and_reworded_titles() -> None:
    moved = replace(SQLI, line=70, title="Injection via string concatenation")
    before = sarif_results(run_of(unsafe_sqli()))[0]
    after_run = run_of(judged("app/orders.py", *(vote("app/orders.py", f"v{i}", "UNSAFE", moved) for i in range(1, 6))))
    after = sarif_results(after_run)[0]
    assert after["partialFingerprints"] == before["partialFingerprints"]


def test_fingerprints_differ_for_different_findings() -> None:
    other_rule = replace(SQLI, category="CWE-78", title="Command injection")
    other_file = replace(SQLI, path="app/other.py")
    second_same_rule = replace(SQLI, line=40, title="Second SQL injection")
    run = run_of(
        judged(
            "app/orders.py",
            *(
                vote("app/orders.py", f"v{i}", "UNSAFE", SQLI, other_rule, other_file, second_same_rule)
                for i in range(1, 6)
            ),
        )
    )
    prints = [r["partialFingerprints"]["swarmgateFinding/v1"] for r in sarif_results(run)]
    assert len(prints) == 4 and len(set(prints)) == 4
    assert all(re.fullmatch(r"[0-9a-f]{32}:\d+", p) for p in prints)


# --- GitHub annotations -----------------------------------------------------------------


def test_workflow_command_escaping_matches_the_toolkit() -> None:
    assert escape.workflow_data("100% done\r\nnext: a,b") == "100%25 done%0D%0Anext: a,b"
    assert escape.workflow_property("100% done\r\nnext: a,b") == "100%25 done%0D%0Anext%3A a%2Cb"
    assert (
        github.workflow_command("error", "m", file="a,b:c.py", line=None, title="t")
        == "::error file=a%2Cb%3Ac.py,title=t::m"
    )
    assert github.workflow_command("notice", "plain") == "::notice::plain"


def test_annotation_exact_text_with_hostile_title() -> None:
    hostile = Finding("app/orders.py", 7, "high", "CWE-89", "50% off: a,b\n::error::pwned", "line1\r\nline2 :: x")
    run = run_of(judged("app/orders.py", *(vote("app/orders.py", f"v{i}", "UNSAFE", hostile) for i in range(1, 6))))
    [line] = github.github_annotations(run, limit=10)
    assert line == (
        "::error file=app/orders.py,line=7,title=CWE-89 (high)%3A 50%25 off%3A a%2Cb %3A%3Aerror%3A%3Apwned"
        "::50%25 off: a,b%0A::error::pwned. line1%0D%0Aline2 :: x (UNSAFE 5/5 (K=4); raised by v1, v2, v3, v4, v5)"
    )
    # One physical line, so "::error::pwned" can never begin a workflow command of its own.
    assert "\n" not in line and "\r" not in line


def test_annotations_cover_unsafe_dissent_and_inconclusive_most_severe_first() -> None:
    lines = github.github_annotations(mixed_run(), limit=50)
    assert [line.split(" ", 1)[0] for line in lines] == ["::error", "::warning", "::warning", "::warning"]
    assert lines[0].startswith("::error file=app/orders.py,line=7,title=CWE-89 (high)%3A SQL injection::")
    assert lines[1] == (
        "::warning file=app/files.py,title=INCONCLUSIVE%3A app/files.py::INCONCLUSIVE 2 safe/1 unsafe/2 error (K=4): "
        "the panel reached no decision; ERROR votes: v1: HTTP 529 overloaded after 2 retries; "
        "v2: HTTP 529 overloaded after 2 retries"
    )
    assert lines[2].startswith("::warning file=app/files.py,line=12,title=CWE-22 (critical)")
    assert lines[3].startswith("::warning file=app/cache.py,title=swarmgate/race-condition (medium)")
    assert "Dissent on a SAFE section" in lines[3]


def many_findings_run(count: int, *, title: str = "Injection") -> RunResult:
    severities = ("info", "low", "medium", "high", "critical")
    findings = [
        Finding(f"app/mod{i}.py", i + 1, severities[i % 5], f"CWE-{100 + i}", f"{title} {i}", f"rationale {i} " * 5)
        for i in range(count)
    ]
    return run_of(judged("app/big.py", *(vote("app/big.py", f"v{i}", "UNSAFE", *findings) for i in range(1, 6))))


def test_annotations_limit_keeps_the_most_severe_and_ends_with_a_notice() -> None:
    lines = github.github_annotations(many_findings_run(30), limit=10)
    assert len(lines) == 10
    assert lines[-1] == (
        "::notice::21 more swarm review annotations left out (limit 10): see the step summary, SARIF or JSON report"
    )
    titles = [re.search(r"title=CWE-\d+ \((\w+)\)", line).group(1) for line in lines[:-1]]  # type: ignore[union-attr]
    assert titles == ["critical"] * 6 + ["high"] * 3


def test_annotation_limit_edges() -> None:
    run = many_findings_run(3)
    assert len(github.github_annotations(run, limit=3)) == 3
    assert github.github_annotations(run, limit=0) == []
    assert github.github_annotations(run, limit=1) == [
        "::notice::3 more swarm review annotations left out (limit 1): see the step summary, SARIF or JSON report"
    ]


# --- step summary -----------------------------------------------------------------------


def table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


def assert_rows_intact(markdown: str) -> None:
    """Every table row has as many unescaped `|` as its table's delimiter row: no cell broke out."""
    columns = None
    for line in markdown.splitlines():
        if line.startswith("|---"):
            columns = line.count("|")
        elif line.startswith("| ") and columns is not None:
            assert len(re.findall(r"(?<!\\)\|", line)) == columns, line
        elif not line.startswith("|"):
            columns = None


def test_step_summary_has_every_part() -> None:
    text = github.step_summary(mixed_run())
    assert text.startswith("## Swarm review: ❌ UNSAFE\n")
    assert "gate: UNSAFE - 1 UNSAFE, 1 INCONCLUSIVE, 1 SAFE of 3 sections (K=4 of N=5)" in text
    assert "| app/orders.py | UNSAFE | UNSAFE 4/5 (K=4) | v5 |" in text
    assert (
        "| app/files.py | v4 | claude-test | t=default lens=security (temperature not applied) | SAFE (cached) | "
        "0.80 | - |" in text
    )
    assert (
        "| app/files.py | v1 | claude-test | t=default lens=security (temperature not applied) | ERROR | - | error: "
        "HTTP 529 overloaded after 2 retries |" in text
    )
    assert "- **high** CWE-89 app/orders.py:7: SQL injection. " in text
    assert "- assets/logo.png: binary file" in text
    assert "| 14 | 1 | 12000 | 2400 | 9600 | 600 | 9.50s |" in text
    assert "Cut to fit" not in text
    # The verdict, then what to fix (UNSAFE before INCONCLUSIVE, each with its findings and votes),
    # the SAFE count, everything else collapsed, cost last.
    order = [
        "## Swarm review",
        "### ❌ app/orders.py: UNSAFE 4/5 (K=4)",
        "- **high** CWE-89 app/orders.py:7",
        "- votes: v1 UNSAFE",
        "### ⚠ app/files.py: INCONCLUSIVE",
        "1 section SAFE, each listed under *Every outcome and vote*.",
        "<details><summary>Every outcome and vote</summary>",
        "### Votes",
        "</details>",
        "### Cost",
    ]
    at = [text.index(part) for part in order]
    assert at == sorted(at), order


def test_step_summary_notes_an_allowed_inconclusive() -> None:
    text = github.step_summary(run_of(inconclusive(), on_inconclusive="warn"))
    assert text.startswith("## Swarm review: ⚠️ INCONCLUSIVE")
    assert "INCONCLUSIVE is allowed here (on-inconclusive=warn)" in text


def test_step_summary_cells_are_escaped() -> None:
    nasty = Finding("app/x.py", 1, "high", "CWE-79", "a|b\nc <script>alert(1)</script> & [x](javascript:y) `code`", "r")
    run = run_of(judged("app/x.py", *(vote("app/x.py", f"v{i}", "UNSAFE", nasty) for i in range(1, 6))))
    text = github.step_summary(run)
    assert "<script>" not in text and "</script>" not in text
    assert "a\\|b c &lt;script&gt;alert(1)&lt;/script&gt; &amp; \\[x\\](javascript:y) \\`code\\`" in text
    assert_rows_intact(text)


def test_step_summary_fits_max_bytes_by_dropping_detail() -> None:
    run = many_findings_run(5000, title="注入 🐍 injection " * 12)
    full = github.step_summary(run, max_bytes=10**9)
    assert len(full.encode()) > 1_000_000 and "Cut to fit" not in full
    text = github.step_summary(run)
    assert len(text.encode("utf-8")) <= 1_000_000
    assert text.splitlines()[-1] == (
        "> Cut to fit the 1000000-byte step summary limit: 4900 of 5000 findings not listed. "
        "The JSON and SARIF reports have everything."
    )
    assert_rows_intact(text)
    assert "### Outcomes" in text and "### Cost" in text


@pytest.mark.parametrize("max_bytes", [200_000, 20_000, 3_000, 700])
def test_step_summary_never_cuts_a_row_or_a_character(max_bytes: int) -> None:
    sections = [
        judged(
            f"src/模块_{i}.py",
            *(vote(f"src/模块_{i}.py", f"v{j}", "UNSAFE", replace(SQLI, path=f"src/模块_{i}.py")) for j in range(1, 6)),
        )
        for i in range(400)
    ]
    text = github.step_summary(run_of(*sections), max_bytes=max_bytes)
    data = text.encode("utf-8")
    assert len(data) <= max_bytes
    assert data.decode("utf-8") == text
    assert "Cut to fit" in text.splitlines()[-1]
    assert all(row.endswith("|") for row in table_rows(text))
    assert_rows_intact(text)
    # Every table that is left has its header and delimiter rows.
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---"):
            assert lines[i - 1].startswith("| ")


def test_step_summary_keeps_the_sections_that_matter_when_safe_rows_must_go() -> None:
    safe = [judged(f"ok/f{i}.py", *(vote(f"ok/f{i}.py", f"v{j}", "SAFE") for j in range(1, 6))) for i in range(2000)]
    text = github.step_summary(run_of(*safe, unsafe_sqli()), max_bytes=20_000)
    assert len(text.encode()) <= 20_000
    assert "| app/orders.py | UNSAFE | UNSAFE 4/5 (K=4) | v5 |" in text
    assert "- **high** CWE-89 app/orders.py:7: SQL injection. " in text
    assert "2000 sections SAFE, their rows left out to fit (see the note)." in text
    assert "| ok/f0.py |" not in text
    assert "the outcome rows of 2000 SAFE sections left out" in text.splitlines()[-1]
    assert "### Cost" in text


def test_write_helpers_are_atomic_and_append_the_step_summary(tmp_path: Path) -> None:
    run = mixed_run()
    out = tmp_path / "reports" / "swarm.json"
    report_json.write_json(out, make_report(run))
    assert RunResult.from_dict(json.loads(out.read_text(encoding="utf-8"))["run"]) == run
    sarif_path = tmp_path / "swarm.sarif"
    sarif.write_sarif(sarif_path, sarif.sarif_report(run, plugin_version="0.1.0"))
    assert json.loads(sarif_path.read_text(encoding="utf-8"))["version"] == "2.1.0"
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n", encoding="utf-8")
    github.write_step_summary(summary, "## ours\n")
    assert summary.read_text(encoding="utf-8") == "# earlier step\n## ours\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["reports", "summary.md", "swarm.json", "swarm.sarif"]
