"""Bad input is one clear line and exit 4; without --swarm-review the plugin costs nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import CLEAN_DIFF, README_DIFF, SQL_DIFF, git, unsafe_finding, write_diff

from pytest_swarmgate.testing import Reply


def assert_usage_error(result: pytest.RunResult, message: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.str()
    assert message in errors[0], errors[0]
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


@pytest.mark.parametrize(
    "args, message",
    [
        (("--swarm-voters=3", "--swarm-threshold=4"), "threshold K must be between 1 and N=3, got K=4"),
        (("--swarm-threshold=0",), "--swarm-threshold: expected a whole number of at least 1"),
        (("--swarm-temperatures=0.5,1.2",), "temperature 1.2 is outside 0.0-1.0"),
        (("--swarm-effort=huge",), "effort 'huge' is not one of"),
        (("--swarm-lenses=vibes",), "lens 'vibes' is not one of"),
        (("--swarm-on-inconclusive=maybe",), "expected one of fail, warn, pass"),
        (("--swarm-concurrency=0",), "--swarm-concurrency: expected a whole number of at least 1"),
    ],
)
def test_bad_options(pytester, args, message) -> None:
    path = write_diff(pytester.path, CLEAN_DIFF)
    assert_usage_error(pytester.runpytest("--swarm-review", f"--swarm-diff={path}", *args), message)


def test_no_diff_source(pytester) -> None:
    assert_usage_error(pytester.runpytest("--swarm-review"), "no diff to review: give --swarm-diff=PATH")


def test_missing_diff_file(pytester) -> None:
    assert_usage_error(pytester.runpytest("--swarm-review", "--swarm-diff=nope.patch"), "nope.patch")


def test_input_that_is_not_a_diff(pytester) -> None:
    pytester.path.joinpath("notes.txt").write_text("just some notes\nnothing else\n")
    assert_usage_error(pytester.runpytest("--swarm-review", "--swarm-diff=notes.txt"), "not a unified diff")


def test_missing_api_key_when_a_call_is_needed(pytester) -> None:
    path = write_diff(pytester.path, CLEAN_DIFF)
    assert_usage_error(pytester.runpytest("--swarm-review", f"--swarm-diff={path}"), "no Anthropic credentials")


def test_missing_credentials_are_reported_before_the_sdk_is_imported(pytester) -> None:
    """Issue 17: with no key the one-line error took 6 to 9.5 s, the SDK imported before the check."""
    pytester.makeconftest(
        "import pathlib, sys\n"
        "def pytest_unconfigure(config):\n"
        "    pathlib.Path('imported.txt').write_text(str('anthropic' in sys.modules))\n"
    )
    path = write_diff(pytester.path, CLEAN_DIFF)
    assert_usage_error(
        pytester.runpytest_subprocess("--swarm-review", f"--swarm-diff={path}"), "no Anthropic credentials"
    )
    assert (pytester.path / "imported.txt").read_text() == "False"


def test_anything_the_sdk_might_read_credentials_from_counts(tmp_path) -> None:
    from pytest_swarmgate.core.voters import credential_sources

    home = {"HOME": str(tmp_path)}
    assert credential_sources(home) == []
    assert credential_sources({**home, "ANTHROPIC_AUTH_TOKEN": "t", "ANTHROPIC_PROFILE": "dev"}) == [
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_PROFILE",
    ]
    profiles = tmp_path / ".config" / "anthropic"
    profiles.mkdir(parents=True)
    assert credential_sources(home) == [], "an empty profile directory holds no credential"
    (profiles / "active_config").write_text("dev")  # a profile on disk: the SDK decides
    assert credential_sources(home) == [str(profiles)]
    assert credential_sources({"ANTHROPIC_CONFIG_DIR": str(tmp_path / "elsewhere"), **home}) == []


def test_a_spaced_diff_path_outside_the_project_is_caught(pytester, tmp_path) -> None:
    pytester.makeini("[pytest]\nswarm_voters = 1\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    path = write_diff(outside, CLEAN_DIFF)
    result = pytester.runpytest("--swarm-review", "--swarm-diff", str(path))
    assert_usage_error(result, f"write --swarm-diff={path} instead")
    assert_usage_error(result, "(no ini file)")
    assert "None" not in result.stderr.str()


@pytest.fixture
def repo(pytester):
    git(pytester.path, "init", "-q", "-b", "main")
    git(pytester.path, "config", "user.email", "t@example.invalid")
    git(pytester.path, "config", "user.name", "t")
    (pytester.path / "app").mkdir()
    (pytester.path / "app" / "orders.py").write_text("import sqlite3\n")
    git(pytester.path, "add", "-A")
    git(pytester.path, "commit", "-qm", "base")
    git(pytester.path, "checkout", "-qb", "feature")
    (pytester.path / "app" / "orders.py").write_text(
        'import sqlite3\n\ndef find(db, c):\n    return db.execute("SELECT * FROM o WHERE c = \'" + c + "\'")\n'
    )
    git(pytester.path, "commit", "-qam", "feature")
    return pytester.path


def test_swarm_base_reviews_a_real_git_branch(pytester, repo, stub, script) -> None:
    script.on(section="app/orders.py", reply=Reply.verdict("UNSAFE", findings=[unsafe_finding(line=4)]))
    result = pytester.runpytest("--swarm-review", "--swarm-base=main", "-p", "no:cacheprovider")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*diff: git diff main...HEAD, 1 section*", "*app/orders.py: UNSAFE 5/5 (K=4)*"])


def test_github_base_ref_is_the_default_base(pytester, repo, stub, monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_BASE_REF", "main")
    result = pytester.runpytest("--swarm-review")
    assert_usage_error(result, "unknown git ref 'origin/main'")


def test_an_unknown_git_ref(pytester, repo) -> None:
    assert_usage_error(
        pytester.runpytest("--swarm-review", "--swarm-base=no-such-branch"), "unknown git ref 'no-such-branch'"
    )


def test_without_the_flag_there_is_no_output_and_no_anthropic_import(pytester) -> None:
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    code = textwrap.dedent(
        """
        import sys, pytest
        ret = pytest.main(["-q", "-p", "no:cacheprovider"])
        heavy = sorted(m for m in ("anthropic", "unidiff", "httpx", "httpx2", "tree_sitter") if m in sys.modules)
        print("HEAVY", heavy)
        sys.exit(ret)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=pytester.path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "HEAVY []" in proc.stdout
    assert "swarm" not in proc.stdout.lower().replace("heavy", "")


def test_disabling_the_plugin_keeps_a_conftest_with_our_hooks_working(pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(optionalhook=True)
        def pytest_swarmgate_section_result(config, result):
            pass
        """
    )
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    result = pytester.runpytest("-p", "no:swarmgate")
    result.assert_outcomes(passed=1)


def test_strict_markers_stay_clean(pytester, stub) -> None:
    pytester.makepyfile(
        test_a="""
        import pytest

        @pytest.mark.swarm_panel(voters=1, threshold=1)
        def test_a():
            pass
        """
    )
    path = write_diff(pytester.path, CLEAN_DIFF)
    result = pytester.runpytest(
        "--strict-markers", "--swarm-review", f"--swarm-diff={path}", "-m", "swarm_review or not swarm_review"
    )
    assert result.ret == 0
    result.assert_outcomes(passed=3)


def test_ini_keys_and_precedence(pytester, stub) -> None:
    pytester.makeini("[pytest]\nswarm_voters = 2\nswarm_threshold = 2\nswarm_models = m-ini\n")
    path = write_diff(pytester.path, CLEAN_DIFF)
    result = pytester.runpytest("--swarm-review", f"--swarm-diff={path}")
    result.stdout.fnmatch_lines(["*panel of 2 (m-ini), K=2*"])
    result = pytester.runpytest("--swarm-review", f"--swarm-diff={path}", "--swarm-voters=3", "--swarm-models=m-cli")
    result.stdout.fnmatch_lines(["*panel of 3 (m-cli), K=2*"])


def test_ini_panel_lines(pytester, stub) -> None:
    pytester.makeini(
        "[pytest]\nswarm_threshold = 2\nswarm_panel =\n    m-a lens=security\n    m-b effort=high lens=correctness\n"
    )
    path = write_diff(pytester.path, CLEAN_DIFF)
    result = pytester.runpytest("--swarm-review", f"--swarm-diff={path}", "-v")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*panel of 2 (m-a, m-b), K=2*", "*v2 * m-b * effort=high lens=correctness SAFE*"])
    bodies = {r.voter: r.body for r in stub.calls()}
    assert bodies["v2"]["output_config"] == {"effort": "high"}
    assert "lens: correctness" in bodies["v2"]["messages"][0]["content"][-1]["text"]


def test_stdin_diff(pytester, stub) -> None:
    result = pytester.run(
        sys.executable,
        "-m",
        "pytest",
        "--swarm-review",
        "--swarm-diff=-",
        "-p",
        "no:cacheprovider",
        stdin=SQL_DIFF.encode(),
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*diff: stdin, 1 section*"])


def test_batch_without_calibrate_is_a_usage_error(pytester) -> None:
    assert_usage_error(pytester.runpytest("--swarm-batch"), "--swarm-batch applies to --swarm-calibrate only")


def test_a_spaced_corpus_path_outside_the_project_is_caught(pytester, tmp_path) -> None:
    pytester.makeini("[pytest]\nswarm_voters = 1\n")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "manifest.json").write_text('{"version": 1, "fixtures": []}')
    result = pytester.runpytest("--swarm-calibrate", str(corpus))
    assert_usage_error(result, f"write --swarm-calibrate={corpus} instead")


def test_the_ci_base_beats_a_diff_named_in_the_ini_file(pytester, repo, stub, monkeypatch) -> None:
    """The ini file is part of the pull request: it must not choose what the gate reviews."""
    git(repo, "update-ref", "refs/remotes/origin/main", "main")
    (repo / "empty.patch").write_text("")
    pytester.makeini("[pytest]\nswarm_diff = empty.patch\n")
    monkeypatch.setenv("GITHUB_BASE_REF", "main")
    result = pytester.runpytest("--swarm-review", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*diff: git diff origin/main...HEAD, 1 section*"])


def test_a_diff_over_the_section_ceiling_is_refused_before_any_call(pytester, stub) -> None:
    path = write_diff(pytester.path, SQL_DIFF + SQL_DIFF.replace("app/orders.py", "app/more.py"))
    result = pytester.runpytest("--swarm-review", f"--swarm-diff={path}", "--swarm-max-sections=1")
    # Not a usage error: the review could not be completed (exit 75), and the message says where to narrow it.
    assert result.ret == 75
    result.stderr.fnmatch_lines(["*has 2 sections (10 calls), over --swarm-max-sections=1*--swarm-exclude='app/**'*"])
    assert stub.requests == []


def test_addopts_cannot_choose_the_diff_over_the_ci_base(pytester, repo, stub, monkeypatch) -> None:
    git(repo, "update-ref", "refs/remotes/origin/main", "main")
    (repo / "ok.patch").write_text(CLEAN_DIFF)
    pytester.makeini("[pytest]\naddopts = --swarm-diff=ok.patch\n")
    monkeypatch.setenv("GITHUB_BASE_REF", "main")
    result = pytester.runpytest("--swarm-review", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*diff: git diff origin/main...HEAD*"])
    typed = pytester.runpytest("--swarm-review", "--swarm-diff", "ok.patch", "-p", "no:cacheprovider")
    typed.stdout.fnmatch_lines(["*diff: ok.patch, 1 section*"])


def test_a_bad_annotation_limit_is_refused_before_any_call(pytester, stub) -> None:
    path = write_diff(pytester.path, CLEAN_DIFF)
    result = pytester.runpytest("--swarm-review", f"--swarm-diff={path}", "--swarm-annotations-max=x")
    assert_usage_error(result, "--swarm-annotations-max")
    assert stub.requests == []


def test_native_toml_numbers_and_lists(pytester, stub) -> None:
    """pytest 9's `[tool.pytest]` table is typed: K as a number, globs and models as lists."""
    if pytest.version_tuple < (9,):
        pytest.skip("the native [tool.pytest] table is pytest 9")
    pytester.makepyprojecttoml(
        '[tool.pytest]\nswarm_voters = 3\nswarm_threshold = 2\nswarm_models = ["m-a", "m-b"]\nswarm_exclude = '
        '["docs/**"]\n'
    )
    path = write_diff(pytester.path, CLEAN_DIFF + README_DIFF)
    result = pytester.runpytest("--swarm-review", f"--swarm-diff={path}", "-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["*panel of 3 (m-a, m-b), K=2*", "*docs/README.md: not reviewed (excluded by exclude glob 'docs/**')*"]
    )
