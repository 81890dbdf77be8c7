"""A diff that reconfigures the gate judging it fails the gate until a human allows it."""

from __future__ import annotations

import pytest

from conftest import CLEAN_DIFF, write_diff
from pytest_swarmgate.diff import parse_sections
from pytest_swarmgate.selfcheck import config_changes


def file_diff(path: str, *changed: str, new: bool = False) -> str:
    head = f"diff --git a/{path} b/{path}\n"
    head += "new file mode 100644\n--- /dev/null\n" if new else f"--- a/{path}\n"
    body = "".join(f"+{line}\n" for line in changed)
    start = "0,0" if new else "1,1"
    context = "" if new else " [pytest]\n"
    return head + f"+++ b/{path}\n@@ -{start} +1,{len(changed) + (0 if new else 1)} @@\n{context}{body}"


def changes(text: str) -> list[str]:
    return config_changes(parse_sections(text)[0])


def test_conftest_and_gitattributes_count_whatever_the_change() -> None:
    assert changes(file_diff("tests/conftest.py", "import os", new=True)) == [
        "tests/conftest.py: pytest runs this code in the gate's process"
    ]
    assert changes(file_diff(".gitattributes", "app/*.py -diff", new=True))[0].startswith(".gitattributes:")


def test_ini_files_count_only_for_pytest_or_gate_settings() -> None:
    assert changes(file_diff("pytest.ini", "swarm_exclude = *")) == [
        "pytest.ini: changes pytest or gate settings (swarm_exclude = *)"
    ]
    assert changes(file_diff("setup.cfg", "addopts = -p no:swarmgate"))
    assert changes(file_diff("pyproject.toml", 'requests = ">=2"')) == []
    assert changes(CLEAN_DIFF) == []


def run(pytester: pytest.Pytester, diff: str, *args: str) -> pytest.RunResult:
    path = write_diff(pytester.path, diff)
    return pytester.runpytest("--swarm-review", f"--swarm-diff={path}", "-p", "no:cacheprovider", *args)


def test_excluding_everything_from_the_ini_does_not_pass_the_gate(pytester, stub) -> None:
    """The attack: the PR's own ini excludes every file, so nothing is reviewed."""
    pytester.makeini("[pytest]\nswarm_exclude = *\n")
    diff = CLEAN_DIFF + file_diff("tox.ini", "swarm_exclude = *")
    result = run(pytester, diff)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*config change: tox.ini: changes pytest or gate settings (swarm_exclude = *)*", "*--swarm-allow-config-change*"]
    )


def test_a_human_can_allow_it_on_the_command_line_but_not_through_addopts(pytester, stub) -> None:
    diff = CLEAN_DIFF + file_diff("tests/conftest.py", "import os", new=True)
    allowed = run(pytester, diff, "--swarm-allow-config-change")
    assert allowed.ret == 0
    allowed.stdout.fnmatch_lines(["swarmgate: allowed change to the gate's configuration: tests/conftest.py*"])
    pytester.makeini("[pytest]\naddopts = --swarm-allow-config-change\n")
    assert run(pytester, diff).ret == pytest.ExitCode.TESTS_FAILED
