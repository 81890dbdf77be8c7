"""SARIF 2.1.0 for GitHub code scanning: one result per merged finding. Pure.

What becomes a result (see `alerts.alerts`): findings of the UNSAFE votes on a section,
merged over voters. On an UNSAFE section the level follows the severity (critical/high:
error, medium: warning, low/info: note); on an INCONCLUSIVE section every such finding is a
warning; dissent on a SAFE section is a note. ERROR votes are not findings about the code:
they go to `invocations[0].toolExecutionNotifications`, where code scanning reports tool
problems, and never become alerts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any
from urllib.parse import quote

from ..core.choices import severity_rank
from ..core.model import Finding, RunResult, Vote
from ..core.write import write_text_atomic
from . import alerts, escape
from .alerts import Alert

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://pypi.org/project/pytest-swarmgate/"


def sarif_report(run: RunResult, *, plugin_version: str) -> dict[str, Any]:
    """The run as a SARIF 2.1.0 log with one run, ready for github/codeql-action/upload-sarif."""
    found = alerts.alerts(run)
    rule_ids = sorted({a.rule_id for a in found})
    index = {r: i for i, r in enumerate(rule_ids)}
    rules = [_rule(r, [a for a in found if a.rule_id == r]) for r in rule_ids]
    held = alerts.held_entries(run)
    if held:
        rules.append(HELD_RULE)
    driver = {
        "name": "pytest-swarmgate",
        "version": plugin_version,
        "informationUri": INFORMATION_URI,
        "rules": rules,
    }
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": driver},
                "invocations": [_invocation(run)],
                "results": [_result(a, index[a.rule_id]) for a in found]
                + [_held_result(path, reason, len(rule_ids), run) for path, reason in held],
            }
        ],
    }


def _rule(rule_id: str, found: list[Alert]) -> dict[str, Any]:
    """A reportingDescriptor per category; its security-severity is the worst of its findings."""
    label = escape.collapsed(found[0].category, 200) or rule_id
    worst = min((a.severity for a in found), key=severity_rank)
    cwe = alerts.cwe_number(rule_id)
    tags = ["security"] + ([f"external/cwe/cwe-{cwe}"] if cwe is not None else [])
    full = (
        f"Findings in category {label} raised by the UNSAFE votes of a K-of-N panel of LLM reviewers "
        "(pytest-swarmgate). Each result names the voters that raised it and the section's tally."
    )
    link = f"https://cwe.mitre.org/data/definitions/{cwe}.html" if cwe is not None else None
    rule: dict[str, Any] = {
        "id": rule_id,
        "name": re.sub(r"[^A-Za-z0-9]+", "", rule_id.title()) or "Finding",
        "shortDescription": {"text": f"Swarm review finding: {label}"},
        "fullDescription": {"text": full},
        "help": {
            "text": full + (f" See {link}" if link else ""),
            "markdown": escape.markdown(full) + (f" See [{rule_id}]({link})." if link else ""),
        },
        "properties": {"tags": tags, "security-severity": alerts.security_severity(worst)},
    }
    if link:
        rule["helpUri"] = link
    return rule


def _result(alert: Alert, rule_index: int) -> dict[str, Any]:
    location: dict[str, Any] = {"artifactLocation": {"uri": quote(alert.path, safe="/"), "uriBaseId": "%SRCROOT%"}}
    if alert.line:  # GitHub rejects startLine < 1: a finding without a line is a file-level result
        location["region"] = {"startLine": alert.line}
    message = {"text": escape.sarif_text(alert.message())}
    synthesis = alert.result.synthesis
    related = []
    if synthesis is not None and synthesis.error is None:
        # The author's review as the message code scanning renders, its findings as the related locations.
        message["markdown"] = "\n".join([*alerts.synthesis_markdown(synthesis), escape.markdown(alert.message())])
        related = [_related(i, f) for i, f in enumerate(synthesis.findings)]
    result: dict[str, Any] = {
        "ruleId": alert.rule_id,
        "ruleIndex": rule_index,
        "level": alert.level,
        "message": message,
        "locations": [{"physicalLocation": location}],
        "partialFingerprints": {alerts.FINGERPRINT_KEY: alert.fingerprint},
        "properties": {
            "outcome": alert.result.outcome,
            "tally": alert.result.tally(),
            "section": alert.result.section.id,
            "severity": alert.severity,
            "security-severity": alerts.security_severity(alert.severity),
            "voters": [{"id": v.voter_id, "verdict": v.verdict, "severity": f.severity} for v, f in alert.raised_by],
        },
    }
    if related:
        result["relatedLocations"] = related
    return result


def _related(index: int, finding: Finding) -> dict[str, Any]:
    """A finding of the review for the author, as a related location of each of its section's results."""
    path = alerts.safe_path(finding.path, finding.path)
    location: dict[str, Any] = {"artifactLocation": {"uri": quote(path, safe="/"), "uriBaseId": "%SRCROOT%"}}
    if finding.line:
        location["region"] = {"startLine": finding.line}
    text = f"{finding.severity} {finding.category}: {finding.title}"
    return {"id": index, "physicalLocation": location, "message": {"text": escape.sarif_text(text)}}


HELD_RULE: dict[str, Any] = {
    "id": "swarmgate/held",
    "name": "HeldForAHuman",
    "shortDescription": {"text": "Change held for a human"},
    "fullDescription": {
        "text": "The change reconfigures the review gate or its CI job, or is a binary file no voter could read; "
        "the gate fails until a human releases it for this diff."
    },
    "help": {"text": "Review the change by hand, then rerun the gate with --swarm-allow-held=<the diff's sha256>."},
    "properties": {"tags": ["security"], "security-severity": "7.0"},
}


def _held_result(path: str, reason: str, rule_index: int, run: RunResult) -> dict[str, Any]:
    """A held change as an error at its file: the gate fails on it, so code scanning shows it."""
    return {
        "ruleId": HELD_RULE["id"],
        "ruleIndex": rule_index,
        "level": "error",
        "message": {"text": escape.sarif_text(f"{reason}. Held for a human: {alerts.release_hint(run)}.")},
        "locations": [
            {"physicalLocation": {"artifactLocation": {"uri": quote(path, safe="/"), "uriBaseId": "%SRCROOT%"}}}
        ],
        "partialFingerprints": {alerts.FINGERPRINT_KEY: hashlib.sha256(f"held\0{path}".encode()).hexdigest()[:32]},
    }


def _invocation(run: RunResult) -> dict[str, Any]:
    """The review ran; each ERROR vote is a tool notification, since a failed call says nothing about the code."""
    invocation: dict[str, Any] = {"executionSuccessful": run.stopped is None}
    notes = [_notification(v) for v in run.votes if v.verdict == "ERROR"]
    if run.stopped is not None:
        # The review could not be completed: say why first.
        notes.insert(0, {"level": "error", "message": {"text": escape.sarif_text(run.stopped.line())}})
    if notes:
        invocation["toolExecutionNotifications"] = notes
    return invocation


def _notification(vote: Vote) -> dict[str, Any]:
    text = f"{vote.voter_id} on {vote.section_id}: {vote.error or 'no verdict'}"
    return {"level": "error", "message": {"text": escape.sarif_text(text)}}


def write_sarif(path: str | os.PathLike[str], sarif: dict[str, Any]) -> None:
    """Write a log made by `sarif_report` to `path`, atomically."""
    write_text_atomic(path, json.dumps(sarif, indent=2, ensure_ascii=False) + "\n")
