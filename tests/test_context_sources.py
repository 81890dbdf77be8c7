"""Where the context reads files: git objects and the checkout, confined to the repository.

Paths here are hostile data from a diff; each test checks that a read is refused or stays inside
the repository made in the test's own temporary directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_swarmgate.core.diff import parse_diff, sections_of
from pytest_swarmgate.core.texts import GitFiles, GitTexts, PatchTexts, TreeFiles, Unknown, check_path

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, env=env, check=True, capture_output=True
    ).stdout.decode()


@pytest.mark.parametrize(
    "path", ["", "/etc/passwd", "../x.py", "a/../../x.py", "a//b.py", "./a.py", "a\\b.py", "a\0b", ".git/config",
             "sub/.GIT/config", "a/\ufffd.py"],
)  # fmt: skip
def test_a_path_that_could_leave_the_repository_is_refused(path: str) -> None:
    with pytest.raises(Unknown):
        check_path(path)


@needs_git
@pytest.mark.parametrize("listing", ["pathspecs", "whole tree"])
def test_git_objects_give_regular_text_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listing: str
) -> None:
    if listing == "whole tree":
        monkeypatch.setattr("pytest_swarmgate.core.texts._GIT_BATCH", 2)  # a batch this large lists the tree
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "ok.py").write_text("x = 1\n")
    (repo / "big.py").write_text("#" * 200 + "\n")
    (repo / "bin.dat").write_bytes(b"a\0b")
    (repo / "latin1.py").write_bytes("caf\xe9 = 1\n".encode("latin-1"))
    outside = tmp_path / "secret.txt"
    outside.write_text("outside the repository\n")
    (repo / "link.py").symlink_to(outside)
    (repo / "dir").mkdir()
    (repo / "dir" / "inner.py").write_text("y = 2\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    files = GitFiles(repo, "HEAD", max_bytes=100)
    files.prefetch(["ok.py", "big.py", "bin.dat", "latin1.py", "link.py", "dir", "missing.py", "../secret.txt"])
    assert files.read("ok.py") == "x = 1\n"
    assert files.read("dir/inner.py") == "y = 2\n"
    assert files.read("missing.py") is None
    refused = {}
    assert files.read("link.py/x") is None  # git does not follow the link: nothing is there
    for path in ("big.py", "bin.dat", "latin1.py", "link.py", "dir", "../secret.txt"):
        with pytest.raises(Unknown) as caught:
            files.read(path)
        refused[path] = caught.value.reason
    assert refused["big.py"] == "over 100 bytes (not read)"
    assert refused["bin.dat"] == "binary content"
    assert refused["latin1.py"] == "not UTF-8 text"
    assert refused["link.py"] == "a symbolic link (not followed)"
    assert refused["dir"] == "a directory"
    assert "outside the repository" not in str(refused)
    with pytest.raises(Unknown, match="git cannot read"):
        GitFiles(repo, "no-such-rev").read("ok.py")
    with pytest.raises(Unknown):
        GitFiles(repo, "--output=x").read("ok.py")  # a revision that would be an option is never passed on
    assert not (repo / "x").exists()


@needs_git
def test_a_checkout_read_stays_inside_and_reads_only_regular_files(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_text("[http]\n\textraheader = AUTHORIZATION: basic c2VjcmV0\n")
    (root / "ok.py").write_text("x = 1\n")
    outside = tmp_path / "outside.py"
    outside.write_text("secret = 1\n")
    (root / "out.py").symlink_to(outside)
    (root / "in.py").symlink_to(root / "ok.py")
    (root / "gitlink.py").symlink_to(root / ".git" / "config")
    os.mkfifo(root / "pipe.py")
    files = TreeFiles(root, max_bytes=1000)
    assert files.read("ok.py") == "x = 1\n" and files.read("in.py") == "x = 1\n"
    assert files.read("gone.py") is None
    reasons = {}
    for path in ("out.py", "gitlink.py", "pipe.py", ".git/config"):
        with pytest.raises(Unknown) as caught:
            files.read(path)  # the FIFO must not block: it is refused unopened
        reasons[path] = caught.value.reason
    assert reasons == {
        "out.py": "resolves outside the repository",
        "gitlink.py": "resolves into .git",
        "pipe.py": "not a regular file",
        ".git/config": "inside .git",
    }


@needs_git
def test_the_base_checkout_gives_the_new_text_by_applying_the_hunks_in_memory(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    old = "def f(x):\n    if not x:\n        raise ValueError\n    return x\n"
    (repo / "a.py").write_text(old)
    (repo / "gone.py").write_text("z = 1\n")
    (repo / "keep.py").write_text("k = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "pr")
    new = old.replace("    if not x:\n        raise ValueError\n", "")
    (repo / "a.py").write_text(new)
    (repo / "gone.py").unlink()
    git(repo, "mv", "keep.py", "kept.py")
    git(repo, "commit", "-qam", "pr")
    patch = git(repo, "diff", "-M", "main", "pr")
    files = parse_diff(patch)
    everything, _ = sections_of(files)

    def texts(rev: str) -> PatchTexts:
        return PatchTexts(
            GitFiles(repo, rev, label="checkout HEAD"),
            everything,
            {f.path: f.change for f in files},
            moves={f.path: f.old_path for f in files if f.old_path},
            diff_paths=[p for f in files for p in (f.path, f.old_path) if p],
        )

    base, head = texts("main"), texts("pr")  # the base checkout, and the PR's own checkout
    for each in (base, head):
        assert (each.old("a.py"), each.new("a.py")) == (old, new)
        assert (each.old("gone.py"), each.new("gone.py")) == ("z = 1\n", None)
        assert (each.old("keep.py"), each.new("kept.py")) == ("k = 1\n", "k = 1\n")
    assert (base.describe("a.py", "old"), base.describe("a.py", "new")) == ("checkout HEAD", "checkout HEAD + hunks")
    assert (head.describe("a.py", "old"), head.describe("a.py", "new")) == ("checkout HEAD - hunks", "checkout HEAD")
    # A file the diff does not name reads the same on both sides; a path it names but does not change is unknown.
    (repo / "other.py").write_text("o = 1\n")
    git(repo, "add", "other.py")
    git(repo, "commit", "-qm", "more")
    assert texts("pr").new("other.py") == texts("pr").old("other.py") == "o = 1\n"
    # Hunks that apply to neither side: unknown, with the reason.
    (repo / "a.py").write_text("something else\n")
    git(repo, "commit", "-qam", "drift")
    with pytest.raises(Unknown, match="the hunks do not apply to the checkout HEAD"):
        texts("HEAD").new("a.py")


@needs_git
def test_git_texts_read_both_commits_in_a_batch(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for i in range(30):
        (repo / f"m{i}.py").write_text(f"v = {i}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one")
    first = git(repo, "rev-parse", "HEAD").strip()
    (repo / "m3.py").write_text("v = 33\n")
    git(repo, "commit", "-qam", "two")
    texts = GitTexts(repo, first, "HEAD")
    texts.prefetch([f"m{i}.py" for i in range(30)])
    assert (texts.old("m3.py"), texts.new("m3.py")) == ("v = 3\n", "v = 33\n")
    assert texts.describe("m3.py", "old") == f"git {first[:12]}" and texts.describe("m3.py", "new") == "git HEAD"
