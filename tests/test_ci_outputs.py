"""One run writes every CI output from the same votes: JSON, SARIF, JUnit XML, GitHub annotations and summary."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from conftest import (
    README_DIFF,
    SQL_DIFF,
    official_sarif_validator,
    unsafe_finding,
    validate_report,
    write_diff,
)

from pytest_swarmgate.testing import Reply

BINARY = (
    "diff --git a/logo.png b/logo.png\nindex 1111111..2222222 100644\nBinary files a/logo.png and b/logo.png differ\n"
)


@pytest.fixture
def github_env(pytester, monkeypatch):
    summary = pytester.path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    return summary


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_one_run_writes_all_four_outputs_naming_the_flawed_line(pytester, stub, script, github_env, workers) -> None:
    for voter in ("v1", "v2", "v3", "v4"):
        script.on(
            section="app/orders.py", voter=voter, reply=Reply.verdict("UNSAFE", findings=[unsafe_finding(line=7)])
        )
    path = write_diff(pytester.path, README_DIFF + SQL_DIFF + BINARY)
    result = pytester.runpytest(
        "--swarm-review",
        f"--swarm-diff={path}",
        "--swarm-json=out/report.json",
        "--swarm-sarif=out/report.sarif",
        "--junitxml=out/junit.xml",
        "-p",
        "no:cacheprovider",
        *workers,
    )
    assert result.ret == 1

    report = json.loads((pytester.path / "out" / "report.json").read_text())
    validate_report(report)
    assert [o["outcome"] for o in report["outcomes"]] == ["UNSAFE", "SAFE"]
    assert report["run"]["not_reviewed"] == [
        {
            "path": "logo.png",
            "reason": "media file: binary content is not reviewed",
            "old_path": None,
            "kind": "media",
            "change": "modified",
        }
    ]
    assert len(report["run"]["results"][0]["votes"]) == 5
    assert report["run"]["results"][0]["votes"][0]["findings"][0]["line"] == 7

    sarif = json.loads((pytester.path / "out" / "report.sarif").read_text())
    official_sarif_validator().validate(sarif)
    [alert] = sarif["runs"][0]["results"]  # four voters, one finding: one alert
    location = alert["locations"][0]["physicalLocation"]
    assert (location["artifactLocation"]["uri"], location["region"]["startLine"]) == ("app/orders.py", 7)

    suite = ET.parse(pytester.path / "out" / "junit.xml").getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases["app/orders.py"].iter("property")}
    assert props["swarm_outcome"] == "UNSAFE" and props["swarm_tally"] == "UNSAFE 4/5 (K=4)"
    votes = json.loads(str(props["swarm_votes"]))
    assert [v["verdict"] for v in votes] == ["UNSAFE"] * 4 + ["SAFE"]
    assert votes[0]["top_finding"].startswith("app/orders.py:7 ")

    result.stdout.fnmatch_lines(["::error file=app/orders.py,line=7,title=*SQL built by string concatenation*"])
    summary = github_env.read_text()
    assert summary.startswith("earlier step\n"), "the step summary is appended to, not replaced"
    assert "app/orders.py" in summary and "UNSAFE 4/5 (K=4)" in summary


def test_reports_cover_inconclusive_and_dissent(pytester, stub, script, github_env) -> None:
    script.on(section="app/orders.py", voter="v1", reply=Reply.status(500, "api_error", "down"))
    script.on(
        section="docs/README.md",
        voter="v2",
        reply=Reply.verdict("UNSAFE", findings=[unsafe_finding("docs/README.md", 3)]),
    )
    path = write_diff(pytester.path, README_DIFF + SQL_DIFF)
    result = pytester.runpytest(
        "--swarm-review",
        f"--swarm-diff={path}",
        "--swarm-json=r.json",
        "--swarm-sarif=r.sarif",
        "--swarm-voters=3",
        "--swarm-threshold=3",
        "--swarm-max-retries=0",
        "-p",
        "no:cacheprovider",
    )
    assert result.ret == 1
    report = json.loads((pytester.path / "r.json").read_text())
    validate_report(report)
    assert {o["section_id"]: o["outcome"] for o in report["outcomes"]} == {
        "app/orders.py": "INCONCLUSIVE",
        "docs/README.md": "UNSAFE",
    }
    errors = [v for r in report["run"]["results"] for v in r["votes"] if v["verdict"] == "ERROR"]
    assert [e["error"] for e in errors] == ["HTTP 500 api_error: down"]
    official_sarif_validator().validate(json.loads((pytester.path / "r.sarif").read_text()))
    result.stdout.fnmatch_lines(["::warning *app/orders.py*"])


def test_sarif_fingerprints_are_equal_across_two_runs(pytester, stub, script) -> None:
    script.on(section="app/orders.py", reply=Reply.verdict("UNSAFE", findings=[unsafe_finding()]))
    path = write_diff(pytester.path, SQL_DIFF)
    prints = []
    for name in ("a.sarif", "b.sarif"):
        pytester.runpytest("--swarm-review", f"--swarm-diff={path}", f"--swarm-sarif={name}", "--swarm-no-cache")
        sarif = json.loads((pytester.path / name).read_text())
        prints.append([r["partialFingerprints"] for r in sarif["runs"][0]["results"]])
    assert prints[0] == prints[1] and prints[0]
    assert len(stub.calls()) == 10, "both runs called the panel"


def test_annotations_are_capped(pytester, stub, script, monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    findings = [unsafe_finding(line=line) | {"title": f"issue {line}"} for line in range(5, 9)]
    script.on(section="*", reply=Reply.verdict("UNSAFE", findings=findings))
    path = write_diff(pytester.path, SQL_DIFF)
    result = pytester.runpytest("--swarm-review", f"--swarm-diff={path}", "--swarm-annotations-max=2")
    lines = [line for line in result.stdout.lines if line.startswith("::")]
    assert len(lines) == 2 and lines[0].startswith("::error ") and lines[1].startswith("::notice::3 more")


def test_an_output_that_cannot_be_written_is_one_line_and_the_others_still_are(pytester, stub) -> None:
    path = write_diff(pytester.path, SQL_DIFF)
    result = pytester.runpytest(
        "--swarm-review", f"--swarm-diff={path}", "--swarm-sarif=/proc/no-such-dir/r.sarif", "--swarm-json=r.json"
    )
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(["swarmgate: could not write SARIF to /proc/no-such-dir/r.sarif: *"])
    assert "Traceback" not in result.stdout.str()
    validate_report(json.loads((pytester.path / "r.json").read_text()))


def test_a_directory_as_an_output_path_is_a_usage_error(pytester) -> None:
    (pytester.path / "out").mkdir()
    path = write_diff(pytester.path, SQL_DIFF)
    result = pytester.runpytest("--swarm-review", f"--swarm-diff={path}", "--swarm-json=out")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: swarmgate: --swarm-json=out is a directory; give a file path"])
