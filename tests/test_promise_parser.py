"""The promise against the inputs the parser skipped or misread (issue 16, points 4, 5 and 7),
through the real path: pytester, the real SDK over HTTP, and the stub answering UNSAFE for
every section. Before, each of these exited 0 (or crashed); now it is refused in one line (exit
4), held (exit 1) or stopped before the diff is read whole (exit 75)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import git, write_diff
from test_promise import branch, review

from pytest_swarmgate.exitcodes import REVIEW_INCOMPLETE
from pytest_swarmgate.testing import Reply, Script, StubServer

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
needs_diff = pytest.mark.skipif(shutil.which("diff") is None, reason="diff is not installed")

PNG_OLD, PNG_NEW = b"\x89PNG\r\n\x1a\n\x00\x01", b"\x89PNG\r\n\x1a\n\x00\x02"
LOGO = (
    "diff --git a/logo.png b/logo.png\nindex 1111111..2222222 100644\nBinary files a/logo.png and b/logo.png differ\n"
)
PLAIN_LOGO = "Binary files old/logo.png and new/logo.png differ\n"


@pytest.fixture
def unsafe(serve: Callable[..., StubServer]) -> StubServer:
    """Every voter calls every section UNSAFE: a run can only pass on what no voter saw."""
    return serve(Script(default=Reply.verdict("UNSAFE")))


def refused(result: pytest.RunResult, words: str) -> None:
    """A usage error of one line that says `words`, and no traceback."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    errors = [line for line in result.stderr.lines if line.startswith("ERROR: swarmgate:")]
    assert len(errors) == 1 and words in errors[0], result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def held(result: pytest.RunResult, line: str) -> None:
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines([f"*held for a human: {line}*"])


def trees(tmp_path: Path, old: dict[str, bytes | None], new: dict[str, bytes | None]) -> Path:
    """Two trees `old/` and `new/` under tmp_path (None: a directory), for diff -r and git --no-index."""
    for side, files in (("old", old), ("new", new)):
        for path, data in files.items():
            target = tmp_path / side / path
            if data is None:
                target.mkdir(parents=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
    return tmp_path


def run(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}
    return subprocess.run(args, cwd=cwd, capture_output=True, env=env, check=False).stdout.decode("utf-8", "replace")


# --- 4: every line read or refused ------------------------------------------------------------


@needs_git
def test_a_coloured_diff_is_refused(pytester, unsafe) -> None:
    """Before: only the uncoloured `Binary files` line was read: the text file never judged, exit 0."""
    branch(pytester.path, {"app.py": "a = 1\n"}, {"app.py": "import os\nos.system('id')\n"})
    (pytester.path / "logo.png").write_bytes(PNG_OLD)
    git(pytester.path, "add", "-A")
    git(pytester.path, "commit", "-qm", "logo")
    (pytester.path / "logo.png").write_bytes(PNG_NEW)
    git(pytester.path, "commit", "-qam", "logo 2")
    write_diff(pytester.path, git(pytester.path, "diff", "--color=always", "main", "feature"))
    refused(review(pytester, "--swarm-diff=pr.patch"), "line 1 holds a terminal colour code (ESC [)")
    assert unsafe.calls() == []


@needs_diff
def test_a_diff_r_sentence_is_refused(pytester, unsafe, tmp_path) -> None:
    """Before: `File old/pkg is a directory while file new/pkg is a regular file` dropped pkg's conftest.py."""
    root = trees(
        tmp_path,
        {"pkg/conftest.py": b"import os\n", "logo.png": PNG_OLD},
        {"pkg": b"now a file\n", "logo.png": PNG_NEW},
    )
    write_diff(pytester.path, run(root, "diff", "-ruN", "old", "new"))
    refused(review(pytester, "--swarm-diff=pr.patch"), "is diff -r's note of a change it does not show")


@needs_diff
@pytest.mark.parametrize("form", ["-c", "--normal"])
def test_context_and_normal_format_entries_are_refused(pytester, unsafe, tmp_path, form) -> None:
    """Before: a conftest.py change in context (`***`) or normal (`1c1`) format after a unified entry was skipped."""
    root = trees(tmp_path, {"conftest.py": b"a = 1\n"}, {"conftest.py": b"import os\n"})
    other = run(root, "diff", form, "old/conftest.py", "new/conftest.py")
    write_diff(pytester.path, LOGO + other)
    words = "context-format diff" if form == "-c" else "normal-format, ed or RCS change command"
    refused(review(pytester, "--swarm-diff=pr.patch"), words)


def test_an_unmerged_path_is_refused(pytester, unsafe) -> None:
    write_diff(pytester.path, "* Unmerged path conftest.py\n" + LOGO)
    refused(review(pytester, "--swarm-diff=pr.patch"), "line 1 names a file with unresolved merge conflicts")


SETUP_CFG = "[tool:pytest]\naddopts =\n    -ra\n"


@needs_git
def test_a_word_diff_that_adds_up_is_refused(pytester, unsafe) -> None:
    """Before: the changed continuation line read as context: setup.cfg 'unchanged', excluded, not held: exit 0."""
    branch(pytester.path, {"setup.cfg": SETUP_CFG}, {"setup.cfg": SETUP_CFG.replace("-ra", "-p no:swarmgate")})
    write_diff(pytester.path, git(pytester.path, "diff", "--word-diff", "-U0", "main", "feature"))
    git(pytester.path, "checkout", "-q", "main")
    refused(review(pytester, "--swarm-diff=pr.patch", "--swarm-exclude=setup.cfg"), "holds --word-diff markup")


@needs_git
def test_a_fake_entry_in_a_commit_message_is_refused(pytester, unsafe) -> None:
    """Before: the message's `--- a/setup.cfg` hunk was merged into the real file's text."""
    branch(pytester.path, {"setup.cfg": SETUP_CFG}, {"setup.cfg": SETUP_CFG.replace("-ra", "-p no:swarmgate")})
    fake = "--- a/setup.cfg\n+++ b/setup.cfg\n@@ -3 +3 @@\n-    -p no:swarmgate\n+    -ra\n"
    git(pytester.path, "commit", "-q", "--amend", "-m", f"Tidy the options\n\nAs in:\n{fake}")
    mail = git(pytester.path, "format-patch", "--stdout", "main")
    assert "\n--- a/setup.cfg\n+++ b/setup.cfg\n@@ -3 +3 @@\n" in mail.split("\n---\n")[0]
    write_diff(pytester.path, mail)
    git(pytester.path, "checkout", "-q", "main")
    refused(
        review(pytester, "--swarm-diff=pr.patch", "--swarm-exclude=setup.cfg"),
        "has no 'diff --git' line though other entries do",
    )


def test_a_hunk_count_of_5000_digits_is_one_line_not_a_traceback(pytester, unsafe) -> None:
    """Before: int() of the count raised in the parser: INTERNALERROR, exit 3."""
    write_diff(pytester.path, f"--- a/app.py\n+++ b/app.py\n@@ -1 +1,{'9' * 5000} @@\n-a\n+b\n")
    refused(review(pytester, "--swarm-diff=pr.patch"), "line 3 starts like a hunk header but is not one")


# --- 5: one path, one identity ----------------------------------------------------------------


@needs_git
@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse names that are not UTF-8")
def test_names_that_decode_alike_are_refused(pytester, unsafe) -> None:
    """Before: `x\\xfe` and `x\\xff` were one path; conftest.py renamed into the second was held 0 times."""
    repo = pytester.path
    git(repo, "init", "-q", "-b", "main")
    (repo / "conftest.py").write_text("import os\n")
    (repo / os.fsdecode(b"x\xfe")).write_text("a = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "feature")
    (repo / os.fsdecode(b"x\xfe")).write_text("a = 2\n")
    git(repo, "mv", "conftest.py", os.fsdecode(b"x\xff"))
    git(repo, "commit", "-qam", "feature")
    refused(review(pytester, "--swarm-base=main", "--swarm-exclude=x*"), "whose bytes are not all UTF-8")


@needs_git
def test_every_entry_of_a_path_in_a_patch_series_is_checked_for_holds(pytester, unsafe) -> None:
    """Before: a series that deletes x.py, then renames conftest.py to x.py: only the first entry was checked."""
    branch(pytester.path, {"x.py": "a = 1\n", "conftest.py": "import os\n"}, {"x.py": None})
    git(pytester.path, "mv", "conftest.py", "x.py")
    git(pytester.path, "commit", "-qm", "move")
    write_diff(pytester.path, git(pytester.path, "format-patch", "--stdout", "main"))
    git(pytester.path, "checkout", "-q", "main")
    held(review(pytester, "--swarm-diff=pr.patch", "--swarm-exclude=x.py"), "x.py: pytest runs this code")


def test_a_timestamp_after_spaces_is_stripped(pytester, unsafe) -> None:
    """Before: `--- a/conftest.py    2024-01-01 ...` kept the timestamp in the path: not held, excluded, exit 0."""
    stamp = "    2024-01-01 00:00:00.000000000 +0000"
    write_diff(pytester.path, f"--- a/conftest.py{stamp}\n+++ b/conftest.py{stamp}\n@@ -1 +1 @@\n-a\n+b\n")
    held(review(pytester, "--swarm-diff=pr.patch", "--swarm-exclude=conftest.py*"), "conftest.py: pytest runs")


def test_partial_quoting_is_refused(pytester, unsafe) -> None:
    """Before: `"a/"conftest.py` read as the path `"conftest.py`: not held, excluded, exit 0."""
    write_diff(pytester.path, '--- "a/"conftest.py\n+++ "b/"conftest.py\n@@ -1 +1 @@\n-a\n+b\n')
    refused(review(pytester, "--swarm-diff=pr.patch", "--swarm-exclude=*conftest.py"), "line 1 quotes only part")


@needs_git
def test_a_no_index_tree_resolves_its_prefixes(pytester, unsafe, tmp_path) -> None:
    """Before: `a/new/.github/workflows/x.yml` kept `new/`: not a CI file, excluded by `*.yml`, exit 0."""
    root = trees(tmp_path, {"logo.png": PNG_OLD}, {"logo.png": PNG_NEW, ".github/workflows/x.yml": b"on: push\n"})
    write_diff(pytester.path, run(root, "git", "diff", "--no-index", "old", "new"))
    held(review(pytester, "--swarm-diff=pr.patch", "--swarm-exclude=*.yml"), ".github/workflows/x.yml: CI config")


# --- 7: bounded memory, honest estimates ------------------------------------------------------


BIG = "--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-a\n+" + "b" * 5000 + "\n"


@needs_git
def test_a_diff_over_the_size_ceiling_is_not_read_whole(pytester, unsafe) -> None:
    """A file, stdin and git's output: exit 75 and one line, before any call."""
    write_diff(pytester.path, BIG)
    result = review(pytester, "--swarm-diff=pr.patch", "--swarm-max-diff-bytes=1000")
    assert result.ret == REVIEW_INCOMPLETE
    result.stderr.fnmatch_lines(["*not reviewed: the diff file *pr.patch is over --swarm-max-diff-bytes=1000: *"])
    piped = pytester.run(
        sys.executable, "-m", "pytest", "--swarm-review", "--swarm-diff=-", "--swarm-max-diff-bytes=1000",
        "-p", "no:cacheprovider", stdin=BIG.encode(),
    )  # fmt: skip
    assert piped.ret == REVIEW_INCOMPLETE
    piped.stderr.fnmatch_lines(["*the diff on stdin is over --swarm-max-diff-bytes=1000*"])
    branch(pytester.path, {"app.py": "a\n"}, {"app.py": "b" * 5000 + "\n"})
    pytester.makeini("[pytest]\nswarm_max_diff_bytes = 1000\n")
    from_git = review(pytester, "--swarm-base=main")
    assert from_git.ret == REVIEW_INCOMPLETE
    from_git.stderr.fnmatch_lines(["*git diff main...HEAD is over --swarm-max-diff-bytes=1000*"])
    assert unsafe.calls() == []
    assert review(pytester, "--swarm-base=main", "--swarm-max-diff-bytes=10000").ret == pytest.ExitCode.TESTS_FAILED


@needs_git
def test_a_2_kb_non_ascii_path_from_git_is_reviewed(pytester, unsafe) -> None:
    """Before: git's octal quoting made the `diff --git` line 17,000 characters: "not a unified diff", exit 4."""
    path = "/".join(["\u65e5\u672c\u8a9e" * 20] * 12)  # 2,172 bytes, every directory under 255
    branch(pytester.path, {path: "a = 1\n"}, {path: "a = 2\n"})
    write_diff(pytester.path, git(pytester.path, "-c", "core.quotepath=on", "diff", "main", "feature"))
    result = review(pytester, "--swarm-diff=pr.patch")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stderr.str()
    assert len(unsafe.calls()) >= 5  # the panel judged it (and a prewarm call)


def test_the_token_estimate_counts_cjk_text_conservatively(pytester, unsafe) -> None:
    """Before: 30,000 CJK characters counted as 10,000 tokens, under the ceiling: the calls were sent."""
    write_diff(pytester.path, "--- a/doc.md\n+++ b/doc.md\n@@ -0,0 +1 @@\n+" + "\u65e5" * 30_000 + "\n")
    result = review(pytester, "--swarm-diff=pr.patch", "--swarm-voters=1", "--swarm-max-input-tokens=30000")
    assert result.ret == REVIEW_INCOMPLETE
    result.stderr.fnmatch_lines(["*needs about * input tokens *over --swarm-max-input-tokens=30000*"])
    assert unsafe.calls() == []
