"""The swarm_review fixture, the swarm_panel marker and the pytest_swarmgate_* hooks."""

from __future__ import annotations

import pytest
from conftest import (
    CLEAN_DIFF,
    SQL_DIFF,
    custom_voter_conftest,
    unsafe_finding,
    write_diff,
)

from pytest_swarmgate.testing import Reply


def test_fixture_reviews_text_and_paths_with_the_marker_panel(pytester, stub, script) -> None:
    script.on(section="app/orders.py", reply=Reply.verdict("UNSAFE", findings=[unsafe_finding()]))
    write_diff(pytester.path, SQL_DIFF, "bad.patch")
    pytester.makepyfile(
        test_user_gate=f"""
        import pytest

        CLEAN = {CLEAN_DIFF!r}

        @pytest.mark.swarm_panel(voters=3, threshold=2)
        def test_bad_patch_is_caught(swarm_review):
            result = swarm_review("bad.patch")
            assert result.outcome == "UNSAFE"
            assert len(result.results) == 1 and len(result.votes) == 3
            assert result.sections[0].outcome == "UNSAFE"
            assert result.findings[0].where() == "app/orders.py:7"
            assert result.sections[0].synthesis.title  # the fixture's runs get the review for the author too

        def test_overrides_beat_the_marker(swarm_review):
            result = swarm_review(CLEAN.replace("?", "' + customer + '"), voters=1, threshold=1)
            assert result.outcome == "UNSAFE" and len(result.votes) == 1
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert len(stub.calls()) == 4 and len(stub.syntheses()) == 2  # one per blocked section


def test_custom_voter_hook_replaces_the_llm(pytester) -> None:
    """No server and no key: a conftest voter decides, and the real engine counts."""
    pytester.makeconftest(
        custom_voter_conftest(
            """
            if voter.id == "v2":
                raise RuntimeError("linter crashed")
            verdict = "UNSAFE" if "+ customer +" in section.text else "SAFE"
            return Vote(section_id=section.id, voter_id=voter.id, model="grep", verdict=verdict)
            """,
            extra="""
            seen = []

            @pytest.hookimpl(optionalhook=True)
            def pytest_swarmgate_modify_panel(config, panel):
                del panel[3:]

            @pytest.hookimpl(optionalhook=True)
            def pytest_swarmgate_filter_sections(config, sections, not_reviewed):
                from pytest_swarmgate.model import NotReviewed
                for s in [s for s in sections if s.path.endswith(".md")]:
                    sections.remove(s)
                    not_reviewed.append(NotReviewed(s.path, "docs are not reviewed here"))

            @pytest.hookimpl(optionalhook=True)
            def pytest_swarmgate_section_result(config, result):
                seen.append(result.section.id)

            @pytest.hookimpl(optionalhook=True)
            def pytest_swarmgate_session_result(config, result):
                print("SESSION", seen, result.outcome, [v.verdict for v in result.votes])
            """,
        )
    )
    readme = "diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1,2 @@\n x\n+y\n"
    path = write_diff(pytester.path, SQL_DIFF + readme)
    result = pytester.runpytest("--swarm-review", f"--swarm-diff={path}", "--swarm-threshold=2", "-s", "-rs")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "*panel of 3*",
            "*SESSION *app/orders.py* UNSAFE *UNSAFE*ERROR*UNSAFE*",
            "*votes: *v2 ERROR (RuntimeError: linter crashed)*",
            "*README.md: not reviewed (docs are not reviewed here)*",
        ]
    )


def test_fixture_overrides_pass_the_same_checks_as_options(pytester) -> None:
    pytester.makepyfile(
        test_user_overrides="""
        import pytest

        @pytest.mark.parametrize("bad, message", [
            ({"concurrency": 0}, "expected a whole number of at least 1"),
            ({"timeout": "abc"}, "swarm_panel setting timeout: expected a finite number above 0, got .abc."),
            ({"timeout": float("inf")}, "finite number above 0"),
            ({"section_budget": 0}, "at least 1"),
            ({"on_inconclusive": "maybe"}, "expected one of fail, warn, pass"),
            ({"colour": "red"}, "unknown swarm panel setting"),
        ])
        def test_bad(swarm_review, bad, message):
            with pytest.raises(pytest.UsageError, match=message):
                swarm_review("diff --git a/x b/x\\n", **bad)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)


def test_a_panel_hook_that_repeats_a_voter_id_is_a_usage_error(pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(optionalhook=True)
        def pytest_swarmgate_modify_panel(config, panel):
            panel.append(panel[0])
        """
    )
    path = write_diff(pytester.path, SQL_DIFF)
    result = pytester.runpytest("--swarm-review", f"--swarm-diff={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: swarmgate: voter ids repeat in the panel: v1, v2, v3, v4, v5, v1"])
