"""Changes the gate holds for a human: its own configuration, and code no voter could read."""

from __future__ import annotations

import json

import pytest
from conftest import CLEAN_DIFF, validate_report, write_diff

from pytest_swarmgate.core.diff import diff_sha256, parse_sections
from pytest_swarmgate.core.held import held_changes


def file_diff(path: str, *changed: str, new: bool = False, context: str = "[pytest]") -> str:
    """A one-hunk diff of `path` adding `changed` lines (after one context line unless new)."""
    head = f"diff --git a/{path} b/{path}\n"
    head += "new file mode 100644\n--- /dev/null\n" if new else f"--- a/{path}\n"
    body = "".join(f"+{line}\n" for line in changed)
    start, shown = ("0,0", "") if new else ("1,1", f" {context}\n")
    return head + f"+++ b/{path}\n@@ -{start} +1,{len(changed) + (0 if new else 1)} @@\n{shown}{body}"


def held(text: str) -> list[str]:
    return held_changes(*parse_sections(text))


def test_dedicated_config_files_are_held_whatever_the_change() -> None:
    assert held(file_diff("tests/conftest.py", "import os", new=True)) == [
        "tests/conftest.py: pytest runs this code in the gate's process"
    ]
    for path in (".gitattributes", "pytest.ini", "pytest.toml", ".gitlab-ci.yml", ".github/workflows/ci.yml"):
        assert held(file_diff(path, "x = 1", new=True)), path
    # An empty new pytest.ini silently replaces the pyproject settings: held too.
    empty = "diff --git a/pytest.ini b/pytest.ini\nnew file mode 100644\nindex 0000000..e69de29\n"
    assert held(empty) == ["pytest.ini: pytest configuration"]


def test_renames_and_binary_entries_are_held_by_either_path() -> None:
    rename = "diff --git a/conftest.py b/helpers.py\nsimilarity index 100%\nrename from conftest.py\nrename to helpers.py\n"
    assert held(rename) == ["helpers.py: pytest runs this code in the gate's process"]
    binary = "diff --git a/pytest.ini b/pytest.ini\nindex 1111111..2222222 100644\nBinary files a/pytest.ini and b/pytest.ini differ\n"
    assert held(binary) == ["pytest.ini: pytest configuration"]
    script = binary.replace("pytest.ini", "deploy.sh")
    assert held(script) == ["deploy.sh: a binary file that is not media: no voter could read it, and it may run"]
    assert held(binary.replace("pytest.ini", "_speedups.so"))
    assert held(binary.replace("pytest.ini", "logo.png")) == []
    assert held(rename.replace("conftest.py", "Conftest.py")), "case-insensitive file systems load it too"


def test_shared_ini_files_are_held_only_for_pytest_settings() -> None:
    assert held(file_diff("setup.cfg", "addopts = -p no:swarmgate", context="[metadata]"))
    # A line inside the pytest section counts even without a telling key (a list item).
    assert held(file_diff("pyproject.toml", '    "app/*",', context="[tool.pytest.ini_options]")) == [
        'pyproject.toml: changes pytest or gate settings ("app/*",)'
    ]
    # A dependency bump that names pytest is not a pytest setting.
    assert held(file_diff("pyproject.toml", '    "pytest>=9",', context="[project.optional-dependencies]")) == []
    # tox's test environment decides how CI runs pytest: held.
    assert held(file_diff("tox.ini", "setenv = PYTEST_ADDOPTS=--co", context="[testenv]"))
    # A hunk inside a multi-line addopts that shows neither the key nor the section.
    assert held(file_diff("pyproject.toml", "  --swarm-exclude=**", context='  "-ra",'))
    assert held(file_diff("setup.cfg", "version = 2", context="[metadata]")) == []
    assert held(CLEAN_DIFF) == []


def run(pytester: pytest.Pytester, diff: str, *args: str) -> pytest.RunResult:
    path = write_diff(pytester.path, diff)
    return pytester.runpytest("--swarm-review", f"--swarm-diff={path}", "-p", "no:cacheprovider", *args)


def test_excluding_everything_from_the_ini_does_not_pass_the_gate(pytester, stub) -> None:
    """The attack: the PR's own ini excludes every file, so nothing is reviewed."""
    pytester.makeini("[pytest]\nswarm_exclude = *\n")
    diff = CLEAN_DIFF + file_diff("tox.ini", "swarm_exclude = *")
    result = run(pytester, diff, "--swarm-json=r.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*held for a human: tox.ini: changes pytest or gate settings (swarm_exclude = *)*",
            f"*--swarm-allow-held={diff_sha256(diff)[:12]}*",
            "*gate: HELD*",
        ]
    )
    report = json.loads((pytester.path / "r.json").read_text())
    validate_report(report)
    assert (report["gate"]["outcome"], report["gate"]["passed"]) == ("HELD", False)


def test_a_human_releases_held_changes_for_one_exact_diff_typed_by_hand(pytester, stub) -> None:
    diff = CLEAN_DIFF + file_diff("tests/conftest.py", "import os", new=True)
    sha = diff_sha256(diff)
    released = run(pytester, diff, f"--swarm-allow-held={sha[:12]}", "--swarm-json=r.json")
    assert released.ret == 0
    released.stdout.fnmatch_lines(["swarmgate: released by hand: tests/conftest.py*"])
    assert json.loads((pytester.path / "r.json").read_text())["run"]["released"] == [
        "tests/conftest.py: pytest runs this code in the gate's process"
    ]
    wrong = run(pytester, diff, "--swarm-allow-held=0123456789ab")
    assert wrong.ret == pytest.ExitCode.USAGE_ERROR
    pytester.makeini(f"[pytest]\naddopts = --swarm-allow-held={sha[:12]}\n")
    assert run(pytester, diff).ret == pytest.ExitCode.TESTS_FAILED, "addopts is the PR's and cannot release"


def test_workers_hold_the_same_changes(pytester, stub) -> None:
    pytest.importorskip("xdist")
    diff = CLEAN_DIFF + file_diff(".github/workflows/ci.yml", "run: pytest", new=True)
    result = run(pytester, diff, "-n", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*held for a human: .github/workflows/ci.yml*"])


def test_held_changes_reach_every_ci_output(pytester, stub, monkeypatch) -> None:
    from conftest import official_sarif_validator

    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    diff = CLEAN_DIFF + file_diff("tests/conftest.py", "import os", new=True)
    result = run(pytester, diff, "--swarm-sarif=r.sarif")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["::error file=tests/conftest.py,title=swarm review%3A held for a human::*--swarm-allow-held=*"])
    sarif = json.loads((pytester.path / "r.sarif").read_text())
    official_sarif_validator().validate(sarif)
    [held] = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "swarmgate/held"]
    assert held["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "tests/conftest.py"
    text = summary.read_text()
    assert "HELD for a human" in text and "### Held for a human" in text


def test_a_review_that_never_ran_is_never_a_pass(pytester, stub, script) -> None:
    from conftest import unsafe_finding

    from pytest_swarmgate.testing import Reply

    script.on(section="*", reply=Reply.verdict("UNSAFE", findings=[unsafe_finding()]))
    pytester.makeconftest("import pytest\n\ndef pytest_collection_finish(session):\n    pytest.exit('bye', returncode=0)\n")
    result = run(pytester, CLEAN_DIFF)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*the review did not run in this session, so the gate fails*"])


def test_info_modes_from_addopts_are_refused(pytester, stub) -> None:
    pytester.makeini("[pytest]\naddopts = --co\n")
    result = run(pytester, CLEAN_DIFF)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: swarmgate: --collect-only came from addopts, not the command line*"])


def test_the_jobs_pytest_addopts_counts_as_typed(pytester, stub, monkeypatch) -> None:
    path = write_diff(pytester.path, CLEAN_DIFF)
    monkeypatch.setenv("GITHUB_BASE_REF", "main")
    monkeypatch.setenv("PYTEST_ADDOPTS", f"--swarm-review --swarm-diff={path}")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"*diff: {path}, 1 section*"])


def test_allow_empty_cannot_come_from_the_ini_file(pytester, stub) -> None:
    pytester.makeini("[pytest]\naddopts = --swarm-allow-empty\n")
    assert run(pytester, "").ret == pytest.ExitCode.USAGE_ERROR
