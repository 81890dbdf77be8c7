"""Read at a glance: review-only mode, the compact report and its levels, colours, the worst
outcome as headline, and failures that explain themselves. Through pytester, the stub and the real SDK."""

from __future__ import annotations

import pytest
from conftest import CLEAN_DIFF, README_DIFF, SQL_DIFF, unsafe_finding, write_diff

from pytest_swarmgate.testing import Reply, Script

CONFTEST_DIFF = (
    "diff --git a/conftest.py b/conftest.py\n"
    "new file mode 100644\n"
    "index 0000000..1111111\n"
    "--- /dev/null\n"
    "+++ b/conftest.py\n"
    "@@ -0,0 +1,1 @@\n"
    "+import os\n"
)


def review(pytester: pytest.Pytester, diff: str, *args: str) -> pytest.RunResult:
    path = write_diff(pytester.path, diff)
    return pytester.runpytest("--swarm-review", f"--swarm-diff={path}", "-p", "no:cacheprovider", *args)


def unsafe_orders(script: Script, voters: tuple[str, ...] = ("v1", "v2", "v3", "v4", "v5")) -> None:
    for voter in voters:
        script.on(section="app/orders.py", voter=voter, reply=Reply.verdict("UNSAFE", findings=[unsafe_finding()]))


# --- review only ---------------------------------------------------------------------------


@pytest.fixture
def unimportable_project(pytester: pytest.Pytester) -> None:
    """Test modules that cannot be imported here, and one that would leave a marker if it were."""
    pytester.makepyfile(
        test_needs_deps="import a_dependency_that_is_not_installed\n\ndef test_x():\n    pass\n",
        test_marks=(
            "import pathlib\n"
            "pathlib.Path(__file__).with_name('imported.marker').write_text('x')\n\n"
            "def test_y():\n    pass\n"
        ),
    )


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_swarm_only_collects_none_of_the_projects_tests(pytester, stub, script, unimportable_project, xdist) -> None:
    unsafe_orders(script)
    result = review(pytester, SQL_DIFF + README_DIFF, "--swarm-only", *xdist)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the review's verdict, not a collection error
    result.assert_outcomes(failed=2, passed=1)
    assert "a_dependency_that_is_not_installed" not in result.stdout.str()
    assert not (pytester.path / "imported.marker").exists()
    result.stdout.fnmatch_lines(["gate: UNSAFE*"])


def test_without_swarm_only_the_same_project_does_not_collect(pytester, stub, unimportable_project) -> None:
    """The control: the modules above really fail to import, so the test above shows something."""
    result = review(pytester, CLEAN_DIFF)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ModuleNotFoundError*a_dependency_that_is_not_installed*"])
    assert (pytester.path / "imported.marker").exists()


def test_swarm_only_from_the_ini_file(pytester, stub, unimportable_project) -> None:
    pytester.makeini("[pytest]\nswarm_only = true\n")
    result = review(pytester, CLEAN_DIFF)
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)


def test_swarm_only_with_calibration(pytester, stub, unimportable_project) -> None:
    result = pytester.runpytest("--swarm-calibrate", "--swarm-only", "-p", "no:cacheprovider", "--co", "-q")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["swarm-calibrate::*", "92 tests collected*"])
    assert "a_dependency_that_is_not_installed" not in result.stdout.str()


def test_swarm_only_alone_is_a_usage_error(pytester) -> None:
    result = pytester.runpytest("--swarm-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*swarmgate: --swarm-only needs --swarm-review or --swarm-calibrate*"])
