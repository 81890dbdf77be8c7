"""The promise through the real path: exit 0 only when every changed path was judged SAFE,
is media, or was released by a human for this exact diff. Each test is one way a pull request
got past the gate before (issue 8), run with pytester, the real SDK and the stub server."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest
from conftest import CLEAN_DIFF, git, write_diff

from pytest_swarmgate.core.diff import diff_sha256
from pytest_swarmgate.core.diff.source import GIT_DIFF_FLAGS
from pytest_swarmgate.testing import Reply, Script

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
PLACEHOLDER = "import pytest\n\n@pytest.mark.swarm_review\ndef test_placeholder():\n    pass\n"


def branch(
    repo: Path, base: Mapping[str, str], change: Mapping[str, str | None], *, renames: Mapping[str, str] | None = None
) -> None:
    """A git repository at `repo` with a `main` commit of `base` and a `feature` commit that applies `change`."""
    git(repo, "init", "-q", "-b", "main")
    for path, text in base.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "feature")
    for old, new in (renames or {}).items():
        (repo / new).parent.mkdir(parents=True, exist_ok=True)
        git(repo, "mv", old, new)
    for path, new_text in change.items():
        if new_text is None:
            (repo / path).unlink()
        else:
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            (repo / path).write_text(new_text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feature")


def review(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--swarm-review", "-p", "no:cacheprovider", "-m", "swarm_review", *args)


APP = "import os\n\ndef run(cmd):\n    return cmd\n"
BACKDOOR = "import os\n\ndef run(cmd):\n    os.system(cmd)\n    return cmd\n"
PYPROJECT = (
    '[project]\nname = "x"\ndependencies = ["requests>=2.0"]\n\n[tool."pytest".ini_options]\nmarkers = ["slow"]\n'
)


@needs_git
def test_an_escaped_swarm_key_in_a_quoted_table_is_held(pytester, stub) -> None:
    """Before: `"\\u0073warm_exclude" = ["*"]` under `[tool."pytest".ini_options]` passed, 0 sections."""
    evil = PYPROJECT + '"\\u0073warm_exclude" = ["*"]\n'
    branch(
        pytester.path,
        {"pyproject.toml": PYPROJECT, "app/run.py": APP},
        {"pyproject.toml": evil, "app/run.py": BACKDOOR},
    )
    result = review(pytester, "--swarm-base=main")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*held for a human: pyproject.toml: changes what pytest or the gate reads: *swarm_exclude*"]
    )


@needs_git
def test_a_patch_file_applied_to_the_base_checkout_is_judged_on_parsed_text(pytester, stub) -> None:
    """The base-checkout recipe: the tree is the old side, the patch gives the new text in memory."""
    bumped = PYPROJECT.replace("requests>=2.0", "requests>=2.32")
    spaced = PYPROJECT.replace(
        '[tool."pytest".ini_options]', "[ tool . pytest . ini_options ]\naddopts = '-p no:swarmgate'"
    )
    branch(pytester.path, {"pyproject.toml": PYPROJECT}, {"pyproject.toml": bumped})
    git(pytester.path, "checkout", "-q", "-b", "evil", "main")
    (pytester.path / "pyproject.toml").write_text(spaced)
    git(pytester.path, "commit", "-qam", "evil")
    ordinary, evil = git(pytester.path, "diff", "main", "feature"), git(pytester.path, "diff", "main", "evil")
    git(pytester.path, "checkout", "-q", "main")
    write_diff(pytester.path, ordinary)
    assert review(pytester, "--swarm-diff=pr.patch").ret == 0, "a dependency bump is not a pytest setting"
    write_diff(pytester.path, evil)
    held = review(pytester, "--swarm-diff=pr.patch")
    assert held.ret == pytest.ExitCode.TESTS_FAILED
    held.stdout.fnmatch_lines(["*held for a human: pyproject.toml: changes what pytest or the gate reads: *addopts*"])


def test_blocking_the_session_plugin_from_the_ini_fails_in_one_line(pytester, stub) -> None:
    """Before: `addopts = -p no:swarmgate-session` ran the placeholder item: exit 0, "1 passed"."""
    pytester.makeini("[pytest]\naddopts = -p no:swarmgate-session\n")
    pytester.makepyfile(test_placeholder=PLACEHOLDER)
    write_diff(pytester.path, CLEAN_DIFF)
    result = review(pytester, "--swarm-diff=pr.patch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: swarmgate: the plugin swarmgate-session is blocked (-p no:swarmgate-session)*"]
    )
    assert "passed" not in result.stdout.str()


def test_a_session_plugin_removed_later_fails_from_the_entry_plugin(pytester, stub) -> None:
    pytester.makeconftest(
        "def pytest_sessionstart(session):\n"
        "    pm = session.config.pluginmanager\n"
        "    pm.unregister(pm.get_plugin('swarmgate-session'))\n"
    )
    pytester.makepyfile(test_placeholder=PLACEHOLDER)
    write_diff(pytester.path, CLEAN_DIFF)
    result = review(pytester, "--swarm-diff=pr.patch")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.stdout.fnmatch_lines(["*swarmgate: the plugin swarmgate-session was removed before the end of the session*"])


def test_a_release_takes_the_full_sha256_and_the_report_prints_it(pytester, stub) -> None:
    """Before: 8 hex digits (32 bits) released the held changes: a second diff was brute-forced to match."""
    diff = CLEAN_DIFF + (
        "diff --git a/tests/conftest.py b/tests/conftest.py\nnew file mode 100644\n--- /dev/null\n"
        "+++ b/tests/conftest.py\n@@ -0,0 +1 @@\n+import os\n"
    )
    sha = diff_sha256(diff)
    write_diff(pytester.path, diff)
    held = review(pytester, "--swarm-diff=pr.patch")
    assert held.ret == pytest.ExitCode.TESTS_FAILED
    held.stdout.fnmatch_lines([f"*rerun with --swarm-allow-held={sha} typed on the command line*"])
    for short in (sha[:8], sha[:12], sha[:31]):
        refused = review(pytester, "--swarm-diff=pr.patch", f"--swarm-allow-held={short}")
        assert refused.ret == pytest.ExitCode.USAGE_ERROR, short
        refused.stderr.fnmatch_lines(
            ["ERROR: swarmgate: --swarm-allow-held takes this diff's sha256 (32 to 64 hex digits)*"]
        )
    assert review(pytester, "--swarm-diff=pr.patch", f"--swarm-allow-held={sha[:32]}").ret == 0
    assert review(pytester, "--swarm-diff=pr.patch", f"--swarm-allow-held={sha.upper()}").ret == 0


@needs_git
def test_a_pure_rename_of_codeowners_is_held(pytester, stub) -> None:
    """Before: `.github/CODEOWNERS` -> `CODEOWNERS.old` was "not reviewed", not held: exit 0."""
    branch(
        pytester.path,
        {".github/CODEOWNERS": "* @owner\n", "app/run.py": APP},
        {},
        renames={".github/CODEOWNERS": "CODEOWNERS.old"},
    )
    result = review(pytester, "--swarm-base=main")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*held for a human: CODEOWNERS.old: CODEOWNERS decides who must approve*"])


STEERING = {
    "pyproject.toml": PYPROJECT + '\n[project.entry-points."pytest11"]\nquiet = "app.quiet"\n',
    "setup.cfg": "[metadata]\nname = x\n\n[options.entry_points]\npytest11 =\n    quiet = app.quiet\n",
    "app/zz_boot.pth": "import app.quiet\n",
    "sitecustomize.py": "import app.quiet\n",
    "app/usercustomize.py": "import app.quiet\n",
    "sitecustomize/__init__.py": "import app.quiet\n",
    "lib/usercustomize/boot.py": "import app.quiet\n",
    "_distutils_hack/__init__.py": "import app.quiet\n",
    "setup.py": "from setuptools import setup\nsetup(entry_points={'pytest11': ['quiet = app.quiet']})\n",
    ".gitmodules": '[submodule "lib"]\n\tpath = lib\n\turl = ./lib\n\tignore = all\n',
    "tools/build.bin": "version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 + "\nsize 9\n",
    ".buildkite/pipeline.yml": "steps: []\n",
    ".gitlab/ci/test.yml": "test: {script: [pytest]}\n",
    ".circleci/config.yml": "version: 2.1\n",
    "Jenkinsfile": "pipeline {}\n",
}


@needs_git
@pytest.mark.parametrize("path", sorted(STEERING))
def test_files_that_steer_pytest_or_its_process_are_held(pytester, stub, path) -> None:
    """Before: pytest11 entry points, .pth, sitecustomize, other CI systems' files were judged as code."""
    base = {"pyproject.toml": PYPROJECT, "app/run.py": APP}
    branch(pytester.path, base, {path: STEERING[path]})
    result = review(pytester, "--swarm-base=main")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines([f"*held for a human: {path}: *"])


@needs_git
def test_on_github_only_the_running_workflow_is_held(pytester, stub, monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_WORKFLOW_REF", "o/r/.github/workflows/tests.yml@refs/pull/7/merge")
    ci = "on: push\njobs: {t: {runs-on: x, steps: [{run: pytest}]}}\n"
    base = {".github/workflows/tests.yml": ci, ".github/workflows/lint.yml": ci, "app/run.py": APP}
    branch(pytester.path, base, {".github/workflows/lint.yml": ci.replace("pytest", "ruff check")})
    assert review(pytester, "--swarm-base=main").ret == 0, "another workflow is code the panel judges"
    git(pytester.path, "checkout", "-q", "main")
    git(pytester.path, "checkout", "-qb", "second")
    (pytester.path / ".github/workflows/tests.yml").write_text(ci.replace("pytest", "pytest --swarm-exclude='*'"))
    git(pytester.path, "commit", "-qam", "x")
    result = review(pytester, "--swarm-base=main")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*held for a human: .github/workflows/tests.yml: the CI configuration that runs the gate*"]
    )


@needs_git
def test_ordinary_work_in_config_files_is_not_held(pytester, stub) -> None:
    """Dependency bumps and non-pytest entry points are judged, not held (they were, 26% of real commits)."""
    cfg = "[options.entry_points]\nbandit.plugins =\n    a = bandit.a:a\n\n[tool:pytest]\naddopts = -ra\n"
    base = {"pyproject.toml": PYPROJECT, "setup.cfg": cfg}
    change = {
        "pyproject.toml": PYPROJECT.replace("requests>=2.0", "requests>=2.32") + "# a comment\n",
        "setup.cfg": cfg.replace("    a = bandit.a:a\n", "    a = bandit.a:a\n    b = bandit.b:b\n"),
    }
    branch(pytester.path, base, change)
    result = review(pytester, "--swarm-base=main")
    assert result.ret == 0, result.stdout.str()
    assert "held for a human" not in result.stdout.str()


def test_a_stopped_run_names_its_cause_once() -> None:
    from pytest_swarmgate.core.decision import broken
    from pytest_swarmgate.core.model import Stopped

    line = Stopped("fault", "HTTP 401 authentication_error", 2, 10).line()
    assert broken([], [], [], stopped=line) == ["review stopped: HTTP 401 authentication_error (2 of 10 calls sent)"]


@needs_git
def test_a_module_the_gate_imports_cannot_come_from_the_pull_request(pytester, stub, tmp_path) -> None:
    """Before: in the PR's own checkout, `python -m pytest` imported the PR's `anthropic.py` instead of the SDK."""
    marker = tmp_path / "imported"
    # Harmless stand-in for a hostile module: it only leaves a marker file when imported.
    shadow = f"open({str(marker)!r}, 'w').close()\n"
    branch(pytester.path, {"app/run.py": APP}, {"app/run.py": BACKDOOR, "anthropic.py": shadow, "conftest.py": ""})
    result = pytester.runpytest_subprocess("--swarm-review", "--swarm-base=main", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: swarmgate: the module anthropic would be imported from anthropic.py, a file this diff changes*"]
    )
    assert not marker.exists()


@needs_git
def test_a_submodule_bump_git_would_hide_is_judged(pytester, serve) -> None:
    """Before: `ignore = all` in the base's .gitmodules made `git diff` print nothing for a bump, and a
    PR that bumped it and added an image passed unjudged ("0 sections", exit 0)."""
    serve(Script(default=Reply.verdict("UNSAFE")))
    repo = pytester.path
    git(repo, "init", "-q", "-b", "main")
    (repo / ".gitmodules").write_text('[submodule "lib"]\n\tpath = lib\n\turl = ./lib\n\tignore = all\n')
    git(repo, "add", "-A")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},lib")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "feature")
    git(repo, "update-index", "--cacheinfo", f"160000,{'2' * 40},lib")
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    git(repo, "add", "logo.png")
    git(repo, "commit", "-qm", "bump")
    result = review(pytester, "--swarm-base=main", "--swarm-only")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(["*lib*UNSAFE*"])


def test_the_recipe_makes_the_patch_as_the_gate_runs_git_diff() -> None:
    """The README's base-checkout recipe pins every flag the gate's own `git diff` pins."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    recipe = readme[readme.index("the pull request's diff, as data") :]
    command = recipe[: recipe.index("FETCH_HEAD")].replace("\\\n", " ")
    assert all(f" {flag} " in f" {command} " for flag in GIT_DIFF_FLAGS), command
