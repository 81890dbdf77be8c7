"""Issue 8 end to end: every change the diff makes reaches the panel or fails with one line.

Real pytest runs (pytester), the real anthropic SDK over HTTP to the stub, diffs made by git.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CLEAN_DIFF, git, unsafe_finding, validate_report, write_diff

from pytest_swarmgate.testing import Reply

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def run_gate(pytester: pytest.Pytester, diff: str, *args: str) -> pytest.RunResult:
    path = write_diff(pytester.path, diff)
    return pytester.runpytest("--swarm-review", f"--swarm-diff={path}", "-p", "no:cacheprovider", *args)


@pytest.fixture
def rename_diff(tmp_path: Path) -> str:
    """`git diff` of a pure rename of a security check into a backup file nobody imports."""
    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "app" / "authz_check.py").write_text("def allowed(user):\n    return user.is_admin\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    (repo / "docs").mkdir()
    git(repo, "mv", "app/authz_check.py", "docs/authz_check.py.bak")
    git(repo, "commit", "-qm", "move the check away")
    text = git(repo, "diff", "-M", "HEAD~1", "HEAD")
    assert "@@" not in text and "rename to docs/authz_check.py.bak" in text
    return text


@needs_git
def test_a_pure_rename_is_a_section_the_panel_judges(pytester, stub, script, rename_diff) -> None:
    """It used to be 'not reviewed': SAFE with 0 of 0 sections, exit 0."""
    finding = unsafe_finding("docs/authz_check.py.bak", 1)
    script.on(section="docs/authz_check.py.bak", reply=Reply.verdict("UNSAFE", findings=[finding]))
    result = run_gate(pytester, rename_diff, "--swarm-json=r.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*diff: *pr.patch, 1 section*", "*docs/authz_check.py.bak: UNSAFE 5/5 (K=4)*", "*gate: UNSAFE*"]
    )
    calls = stub.calls(section="docs/authz_check.py.bak")
    assert len(calls) == 5
    sent = json.dumps(calls[0].body)
    assert "renames app/authz_check.py to docs/authz_check.py.bak (similarity 100%)" in sent
    assert "old path: app/authz_check.py" in sent
    report = json.loads((pytester.path / "r.json").read_text())
    validate_report(report)
    [section] = report["run"]["results"]
    assert (section["section"]["path"], section["section"]["change"], len(section["votes"])) == (
        "docs/authz_check.py.bak",
        "renamed",
        5,
    )
    assert report["run"]["not_reviewed"] == []


@needs_git
def test_a_pure_rename_judged_safe_passes_with_its_votes(pytester, stub, rename_diff) -> None:
    result = run_gate(pytester, rename_diff)
    assert result.ret == 0
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["SAFE: 1 section: docs/authz_check.py.bak", "*gate: SAFE*"])
    assert len(stub.calls()) == 5


@needs_git
def test_a_merge_commits_combined_diff_is_a_usage_error_in_one_line(pytester, stub, tmp_path) -> None:
    repo = tmp_path / "merge"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "run.sh").write_text("echo base\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "side")
    (repo / "run.sh").write_text("echo side\n")
    git(repo, "commit", "-qam", "side")
    git(repo, "checkout", "-q", "main")
    (repo / "run.sh").write_text("echo main\n")
    git(repo, "commit", "-qam", "main")
    git(repo, "merge", "-q", "side", check=False)  # a conflict, resolved by hand below
    (repo / "run.sh").write_text("echo resolved\n")
    git(repo, "commit", "-qam", "merge")
    shown = git(repo, "show", "HEAD")
    assert "diff --cc run.sh" in shown
    result = run_gate(pytester, shown)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, errors
    result.stderr.fnmatch_lines(
        ["ERROR: swarmgate: *pr.patch: input is a combined diff ('diff --cc', as git show prints for a merge commit)*"
         "give a two-sided diff, such as git diff BASE...HEAD*"]
    )  # fmt: skip
    assert stub.requests == []


@pytest.mark.skipif(shutil.which("diff") is None, reason="GNU diff is not installed")
def test_a_diff_ruN_tree_does_not_escape_the_workflow_hold(pytester, stub, tmp_path) -> None:
    old, new = tmp_path / "flask-3.1.3", tmp_path / "flask-3.1.3.new"
    for root in (old, new):
        (root / ".github" / "workflows").mkdir(parents=True)
    (old / ".github" / "workflows" / "tests.yaml").write_text("on: push\n")
    (new / ".github" / "workflows" / "tests.yaml").write_text("on: pull_request_target\n")
    (new / "tool.py").write_text("import os\n")
    proc = subprocess.run(["diff", "-ruN", old.name, new.name], cwd=tmp_path, capture_output=True, check=False)
    result = run_gate(pytester, proc.stdout.decode(), "-v")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*swarm-review::.github/workflows/tests.yaml PASSED*", "*swarm-review::tool.py PASSED*",
         "*held for a human: .github/workflows/tests.yaml: CI configuration that may run the gate*", "*gate: HELD*"]
    )  # fmt: skip
    sent = {r.section_path: json.dumps(r.body) for r in stub.requests}
    assert "change: added" in sent["tool.py"]
    # pasted after git's entries, its plain entries are what a commit message could carry: refused
    pasted = run_gate(pytester, CLEAN_DIFF + proc.stdout.decode())
    assert pasted.ret == pytest.ExitCode.USAGE_ERROR
    pasted.stderr.fnmatch_lines(["ERROR: swarmgate: *has no 'diff --git' line though other entries do*"])


@needs_git
def test_a_path_with_space_b_slash_is_reviewed_from_git(pytester, stub) -> None:
    """Issue 9: `Plan b/notes.md` blocked every PR that touched it (unidiff's greedy header match)."""
    repo = pytester.path
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("x\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "feature")
    (repo / "Plan b").mkdir()
    (repo / "Plan b" / "notes.md").write_text("notes\n")
    (repo / "Plan b" / 'say "b" b.py').write_text("print('b')\n")  # quoted by git
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "plan b")
    result = pytester.runpytest("--swarm-review", "--swarm-base=main", "-p", "no:cacheprovider", "-v")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["*swarm-review::Plan b/notes.md PASSED*", '*swarm-review::Plan b/say "b" b.py PASSED*', "*gate: SAFE*"]
    )
    assert {r.section_path for r in stub.calls()} == {"Plan b/notes.md", 'Plan b/say "b" b.py'}
