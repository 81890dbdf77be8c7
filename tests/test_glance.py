"""Read at a glance: review-only mode, the compact report and its levels, colours, the worst
outcome as headline, and failures that explain themselves. Through pytester, the stub and the real SDK."""

from __future__ import annotations

import os

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
    result.stdout.fnmatch_lines(["swarm-calibrate::*", "116 tests collected*"])
    assert "a_dependency_that_is_not_installed" not in result.stdout.str()


def test_swarm_only_alone_is_a_usage_error(pytester) -> None:
    result = pytester.runpytest("--swarm-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*swarmgate: --swarm-only needs --swarm-review or --swarm-calibrate*"])


# --- the compact report and its levels ----------------------------------------------------------


def two_file_review(pytester: pytest.Pytester, script: Script, *args: str) -> pytest.RunResult:
    """app/orders.py UNSAFE 4/5 (v5 dissents), docs/README.md SAFE 5/5."""
    unsafe_orders(script, ("v1", "v2", "v3", "v4"))
    return review(pytester, SQL_DIFF + README_DIFF, *args)


def swarm_summary(out: str) -> str:
    """The swarm review section of the output, up to pytest's own short summary (which repeats
    failure messages in full under CI=true)."""
    return out[out.index("= swarm review =") :].split("short test summary info")[0]


def test_default_report_is_a_line_per_section_with_detail_only_where_needed(pytester, stub, script) -> None:
    result = two_file_review(pytester, script)
    out = result.stdout.str()
    summary = swarm_summary(out)
    result.stdout.fnmatch_lines(
        [
            "*= swarm review =*",
            "app/orders.py: UNSAFE 4/5 (K=4) - app/orders.py:7 SQL built by string concatenation",
            # The review for the author comes first (the stub plays the aggregator), then who voted what.
            "  Review for the author, synthesized from the votes by claude-sonnet-5-5 (the outcome is the panel's):",
            "    4 of 5 voters flag app/orders.py: SQL built by string concatenation",
            "*",
            "    HIGH CWE-89 app/orders.py:7: SQL built by string concatenation",
            "        customer flows into the query text",
            "*where the voters disagreed: 1 of 5 voters did not find it unsafe.",
            "*fix: *",
            "  votes: v1 UNSAFE 0.90, v2 UNSAFE 0.90, v3 UNSAFE 0.90, v4 UNSAFE 0.90, v5 SAFE 0.90",
            "SAFE: 1 section: docs/README.md",
            "totals: 2 sections x 5 voters, 11 calls (1 by the aggregator)*",
            "gate: UNSAFE - 1 UNSAFE, 0 INCONCLUSIVE, 1 SAFE of 2 sections (K=4 of N=5)",
            "*short test summary info*",
        ]
    )
    # The finding once in the review, not once per voter; no voter lines for the SAFE section; no summaries.
    assert summary.count("SQL built by string concatenation") == 3  # the section line, the title, the finding
    assert "conf=" not in summary and "summary:" not in summary  # one line of votes, no voter lines
    # The failed item is the section's line alone: the votes are printed once, in the summary.
    failures = out[out.index("= FAILURES =") : out.index("= swarm review =")]
    assert "votes:" not in failures and "customer flows" not in failures and "below" not in failures
    assert len(out.splitlines()) <= 40


def test_without_the_aggregator_the_panels_findings_are_merged_under_the_section(pytester, stub, script) -> None:
    result = two_file_review(pytester, script, "--swarm-aggregate=off")
    result.stdout.fnmatch_lines(
        [
            "app/orders.py: UNSAFE 4/5 (K=4) - app/orders.py:7 SQL built by string concatenation",
            "  votes: v1 UNSAFE 0.90, v2 UNSAFE 0.90, v3 UNSAFE 0.90, v4 UNSAFE 0.90, v5 SAFE 0.90",
            "  dissent (SAFE) from v5: *",
            "  HIGH CWE-89 app/orders.py:7: SQL built by string concatenation (v1, v2, v3, v4)",
            "        customer flows into the query text",
            "SAFE: 1 section: docs/README.md",
            "totals: 2 sections x 5 voters, 10 calls*",
        ]
    )
    assert swarm_summary(result.stdout.str()).count("SQL built by string concatenation") == 2


def test_quiet_report_keeps_what_fails_and_the_gate_line(pytester, stub, script) -> None:
    result = two_file_review(pytester, script, "-q")
    out = result.stdout.str()
    summary = swarm_summary(out)
    result.stdout.fnmatch_lines(
        [
            "*= swarm review =*",
            "app/orders.py: UNSAFE 4/5 (K=4) - app/orders.py:7 SQL built by string concatenation",
            "gate: UNSAFE*",
        ]
    )
    assert "docs/README.md" not in summary and "totals:" not in summary and "conf=" not in summary
    assert "swarmgate: reviewing" not in out  # no progress lines either


def test_verbose_report_shows_every_vote(pytester, stub, script) -> None:
    result = two_file_review(pytester, script, "-v")
    result.stdout.fnmatch_lines(
        [
            "*= swarm review =*",
            "app/orders.py: UNSAFE 4/5 (K=4) - *",
            "  v1 *UNSAFE conf=0.90 app/orders.py:7 SQL built by string concatenation [[]*",
            "  HIGH CWE-89 app/orders.py:7: * (v1, v2, v3, v4)",
            "  [[]v1] summary: *",
            "docs/README.md: SAFE 5/5 (K=4)",
            "  v1 *SAFE   conf=0.90 [[]*",
            "  v5 *SAFE   conf=0.90 [[]*",
            "gate: UNSAFE*",
        ]
    )


def test_a_safe_section_with_dissent_shows_its_detail(pytester, stub, script) -> None:
    dissent = Reply.verdict("UNSAFE", summary="maybe", findings=[unsafe_finding()])
    script.on(section="app/orders.py", voter="v2", reply=dissent)
    result = review(pytester, SQL_DIFF + README_DIFF)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "app/orders.py: SAFE 4/5 (K=4), 1 dissenting vote",
            "  votes: v1 SAFE 0.90, v2 UNSAFE 0.90, *",
            "  dissent from v2: maybe",
            "  HIGH CWE-89 app/orders.py:7: SQL built by string concatenation (v2)",
            "SAFE without dissent: 1 section: docs/README.md",
            "totals:*",
            "gate: SAFE*",
        ]
    )


def test_colours_follow_the_outcome_with_color_yes(pytester, stub, script) -> None:
    two = two_file_review(pytester, script, "--color=yes")
    out = two.stdout.str()
    red, green = "\x1b[31m", "\x1b[32m"
    assert f"{red}app/orders.py: UNSAFE 4/5 (K=4)" in out
    assert f"{green}SAFE: 1 section: docs/README.md" in out
    assert any(line.startswith("\x1b[") and "gate: UNSAFE" in line and red in line for line in out.splitlines())
    plain = review(pytester, SQL_DIFF + README_DIFF, "--color=no").stdout.str()
    assert "\x1b[" not in plain


def test_held_and_inconclusive_are_yellow(pytester, stub, script) -> None:
    out = review(pytester, CLEAN_DIFF + CONFTEST_DIFF, "--color=yes").stdout.str()
    yellow = "\x1b[33m"
    assert any(yellow in line and "gate: HELD" in line for line in out.splitlines())
    assert f"{yellow}held for a human: conftest.py" in out


# --- the worst outcome is the headline -------------------------------------------------------


def test_unsafe_outranks_held_and_no_release_is_asked_for(pytester, stub, script) -> None:
    unsafe_orders(script)
    result = review(pytester, SQL_DIFF + CONFTEST_DIFF)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "held for a human: conftest.py*",
            "held changes: releasing it would not pass the gate: other sections fail on their own",
            "gate: UNSAFE - 1 UNSAFE, 0 INCONCLUSIVE, 1 SAFE of 2 sections (K=4 of N=5); 1 change held for a human",
        ]
    )
    assert "--swarm-allow-held" not in out


def test_held_alone_is_the_headline_and_asks_for_a_release(pytester, stub) -> None:
    result = review(pytester, CLEAN_DIFF + CONFTEST_DIFF)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "held for a human: conftest.py*",
            "held changes: review by hand, then rerun with --swarm-allow-held=*",
            "gate: HELD - 0 UNSAFE, 0 INCONCLUSIVE, 2 SAFE of 2 sections (K=4 of N=5); 1 change held for a human",
        ]
    )


# --- failures that explain themselves --------------------------------------------------------------


def test_a_failed_outcome_assertion_shows_the_tally_votes_and_findings(pytester, stub, script) -> None:
    unsafe_orders(script)
    pytester.makepyfile(
        test_user=f"""
        import pytest

        DIFF = {SQL_DIFF!r}

        @pytest.mark.swarm_panel(voters=3, threshold=3)
        def test_outcome(swarm_review):
            result = swarm_review(DIFF)
            assert result.outcome == "SAFE"

        @pytest.mark.swarm_panel(voters=3, threshold=3)
        def test_section(swarm_review):
            assert swarm_review(DIFF).results[0] == "anything"

        def test_unrelated_strings_are_left_alone():
            assert "UNSAFE" == "SAFE"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-vv")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "*def test_outcome*",
            "E       AssertionError: assert 'UNSAFE' == 'SAFE'",
            "E         gate: UNSAFE - 1 UNSAFE, 0 INCONCLUSIVE, 0 SAFE of 1 section (K=3 of N=3)",
            "E         app/orders.py: UNSAFE 3/3 (K=3) - app/orders.py:7 SQL built by string concatenation",
            "E           votes: v1 UNSAFE 0.90, v2 UNSAFE 0.90, v3 UNSAFE 0.90",
            "E           HIGH CWE-89 app/orders.py:7: SQL built by string concatenation (v1, v2, v3)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*def test_section*",
            "E       AssertionError: assert <SectionResult> == 'anything'",
            "E         app/orders.py: UNSAFE 3/3 (K=3) - *",
            "E           votes: v1 UNSAFE 0.90, v2 UNSAFE 0.90, v3 UNSAFE 0.90",
        ]
    )
    # A test that made no review: pytest's own text.
    unrelated = result.stdout.str().split("def test_unrelated_strings_are_left_alone")[1].split("short test summary")[0]
    assert "gate:" not in unrelated and "votes:" not in unrelated


def test_a_failed_held_status_assertion_is_explained_too(pytester, stub) -> None:
    """`status(result) == "UNSAFE"` on a held run (its sections SAFE) leads back to the run by its status."""
    held = (
        "diff --git a/conftest.py b/conftest.py\nnew file mode 100644\nindex 0000000..1111111\n"
        "--- /dev/null\n+++ b/conftest.py\n@@ -0,0 +1 @@\n+import os\n"
    )
    pytester.makepyfile(
        test_user=f"""
        from pytest_swarmgate.model import status

        def test_status(swarm_review):
            assert status(swarm_review({held!r})) == "UNSAFE"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-vv")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E       AssertionError: assert 'HELD' == 'UNSAFE'", "E         gate: HELD - *"])


def test_a_missing_diff_file_is_one_message_from_the_tests_own_line(pytester, stub) -> None:
    sub = pytester.mkdir("sub")
    write_diff(sub, CLEAN_DIFF, "ok.patch")
    (sub / "test_paths.py").write_text(
        "def test_relative_to_this_file(swarm_review):\n"
        "    assert swarm_review('ok.patch').outcome == 'SAFE'\n\n"
        "def test_missing(swarm_review):\n"
        "    swarm_review('missing.patch')\n"
    )
    # Run from another directory: the path is taken from the test file's directory.
    result = pytester.runpytest(str(sub), "-p", "no:cacheprovider", "--rootdir", str(pytester.path))
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["*swarmgate: *missing.patch*"])
    assert "plugin.py" not in out


# --- clear words ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, ini, message",
    [
        (
            ["--swarm-threshold=abc"],
            "",
            "swarmgate: --swarm-threshold: expected a whole number of at least 1, got 'abc'",
        ),
        (["--swarm-voters=0"], "", "swarmgate: --swarm-voters: expected a whole number of at least 1, got '0'"),
        (["--swarm-timeout=soon"], "", "swarmgate: --swarm-timeout: expected a finite number above 0, got 'soon'"),
        (
            ["--swarm-max-retries=-1"],
            "",
            "swarmgate: --swarm-max-retries: expected a whole number of at least 0, got '-1'",
        ),
        (
            ["--swarm-on-inconclusive=maybe"],
            "",
            "swarmgate: --swarm-on-inconclusive: expected one of fail, warn, pass, got 'maybe'",
        ),
        (
            [],
            "swarm_section_budget = lots\n",
            "swarmgate: ini swarm_section_budget: expected a whole number, as --swarm-section-budget takes",
        ),
    ],
    ids=["threshold", "voters", "timeout", "retries", "policy", "ini"],
)
def test_option_value_errors_name_the_option_and_what_it_expects(pytester, args, ini, message) -> None:
    if ini:
        pytester.makeini("[pytest]\n" + ini)
    path = write_diff(pytester.path, CLEAN_DIFF)
    result = pytester.runpytest("--swarm-review", f"--swarm-diff={path}", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0], result.stderr.str()
    assert "invalid literal" not in errors[0] and "could not convert" not in errors[0]


def test_progress_follows_the_session_header_under_xdist(pytester, stub, script) -> None:
    unsafe_orders(script)
    result = review(pytester, SQL_DIFF + README_DIFF, "-n", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    lines = result.stdout.lines
    header = next(i for i, line in enumerate(lines) if "test session starts" in line)
    progress = [i for i, line in enumerate(lines) if line.startswith("swarmgate: ")]
    shown = [lines[i] for i in progress]
    assert shown[:2] == [
        "swarmgate: panel of 5 (claude-sonnet-5-5), K=4, diff: " + str(pytester.path / "pr.patch") + ", 2 sections",
        "swarmgate: reviewing 2 sections x 5 voters ...",
    ]
    # Only the section that is not SAFE has a line, numbered as it finished (in any order).
    assert len(shown) == 3 and shown[2].split(" - ")[0] in (
        f"swarmgate: [{i}/2] app/orders.py: UNSAFE 5/5 (K=4)" for i in (1, 2)
    ), shown
    assert progress[0] > header


def test_the_stub_cli_on_a_free_port_writes_an_env_file_and_says_how_to_stop_it(tmp_path) -> None:
    import subprocess

    from conftest import StubProcess

    env_file = tmp_path / "stub.env"
    with StubProcess("--env-file", str(env_file)) as stub:
        assert f"kill {stub.proc.pid}" in stub.line, stub.line
        # The file exists once the server listens: `. stub.env` then points the SDK at it.
        assert env_file.read_text() == f"export ANTHROPIC_BASE_URL={stub.url} ANTHROPIC_API_KEY=stub-not-a-secret\n"
        assert os.listdir(tmp_path) == ["stub.env"]  # the temporary file it was written through is gone
        done = subprocess.run(
            ["bash", "-c", f'. {env_file} && printf %s "$ANTHROPIC_BASE_URL"'],
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout == stub.url
    assert stub.proc.returncode == 0
    assert not env_file.exists(), "a stopped stub leaves no file pointing at its dead port"


def test_calibration_progress_follows_the_session_header_under_xdist(pytester, stub) -> None:
    from test_calibrate import small_corpus

    corpus = small_corpus(pytester.path / "corpus")
    result = pytester.runpytest(
        f"--swarm-calibrate={corpus}",
        "--swarm-only",
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
        "--swarm-voters=1",
        "--swarm-threshold=1",
    )
    lines = result.stdout.lines
    header = next(i for i, line in enumerate(lines) if "test session starts" in line)
    ours = [i for i, line in enumerate(lines) if line.startswith("swarmgate")]
    assert lines[ours[0]].startswith("swarmgate calibration: panel of 1")
    assert lines[ours[1]] == "swarmgate: calibrating on 4 of 4 fixtures: 4 sections x 1 voter ..."
    assert ours[0] > header
