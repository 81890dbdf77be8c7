"""The diff parser at its edges (issue 16, points 4, 5 and 7): every line read or refused, one
identity per path, and planning linear in what the pull request controls. Pure: no server."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import git

from pytest_swarmgate.core.budget import estimate_input_tokens
from pytest_swarmgate.core.diff import (
    DiffError,
    crowded_directories,
    decode,
    git_diff,
    parse_diff,
    parse_sections,
    read_diff_file,
    sections_of,
)
from pytest_swarmgate.core.diff import sections as sections_module
from pytest_swarmgate.core.held import held_changes
from pytest_swarmgate.core.model import Section, Voter

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
needs_diff = pytest.mark.skipif(shutil.which("diff") is None, reason="diff is not installed")

LOGO = (
    "diff --git a/logo.png b/logo.png\nindex 1111111..2222222 100644\nBinary files a/logo.png and b/logo.png differ\n"
)
APP = "diff --git a/app.py b/app.py\nindex 1111111..2222222 100644\n--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-a\n+b\n"
# Word-diff markup of an added "2", written in two pieces: a line of this file holding it whole would,
# as a context line of a later diff of this file, make the gate refuse that diff (see the README).
ADDED_2 = "{" + "+2+}"
PLAIN_APP = "--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-a\n+b\n"


def refused(text: str) -> str:
    """The one line the parser refuses `text` with."""
    with pytest.raises(DiffError) as info:
        parse_diff(text)
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message and len(message) < 400, message
    return message


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose `feature` branch changes an indented line and a media file."""
    # every line indented, as in a function body: word-diff lines that start with a space read as context
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "app.py").write_text("    x = 1\n    return x\n")
    (repo / "logo.png").write_bytes(b"\x89PNG\x00\x01")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "feature")
    (repo / "app.py").write_text("    x = 2\n    return x\n")
    (repo / "logo.png").write_bytes(b"\x89PNG\x00\x02")
    git(repo, "commit", "-qam", "feature")
    return repo


# --- 4: every line read or refused ------------------------------------------------------------


@needs_git
def test_a_coloured_diff_is_refused_not_read_for_its_uncoloured_lines(repo: Path) -> None:
    """Before: only `Binary files ... differ` (git leaves it uncoloured) was read: the media file alone, exit 0."""
    coloured = git(repo, "diff", "--color=always", "main", "feature")
    assert "Binary files a/logo.png and b/logo.png differ" in coloured
    assert "line 1 holds a terminal colour code (ESC [)" in refused(coloured)
    assert "holds a terminal colour code" in refused(LOGO + "\x1b[32m+added\x1b[m\n")


@needs_git
def test_word_diff_hunks_that_add_up_are_refused(repo: Path) -> None:
    """Indented word-diff lines read as context: the hunk added up and changed nothing."""
    words = git(repo, "diff", "--word-diff", "main", "feature", "--", "app.py")
    assert "[-1-]" + ADDED_2 in words
    assert "line 6 holds --word-diff markup" in refused(words)
    removed_word = "--- a/app.py\n+++ b/app.py\n@@ -1,2 +1,2 @@\n    x = [-1-]\n    return x\n"
    assert "the hunk at line 3 changes no line" in refused(removed_word)
    porcelain = git(repo, "diff", "--word-diff=porcelain", "main", "feature", "--", "app.py")
    assert "longer than its header says" in refused(porcelain)
    # a word-diff line among real ones: its markup in a context line gives it away
    mixed = "--- a/x.yml\n+++ b/x.yml\n@@ -1,2 +1,1 @@\n- item\n  key: [-a-]" + ADDED_2 + "\n"
    assert "line 5 holds --word-diff markup" in refused(mixed)


def test_a_hunk_that_changes_no_line_is_refused() -> None:
    assert "the hunk at line 3 changes no line" in refused("--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\n b\n")


@needs_diff
def test_diff_r_sentences_other_than_only_in_are_refused(tmp_path: Path) -> None:
    """Before: `File x is a regular file while file x is a directory` dropped x and the conftest.py under it."""
    (tmp_path / "old" / "pkg").mkdir(parents=True)
    (tmp_path / "new").mkdir()
    (tmp_path / "old" / "pkg" / "conftest.py").write_text("x = 1\n")
    (tmp_path / "new" / "pkg").write_text("a file now\n")
    (tmp_path / "old" / "logo.png").write_bytes(b"\x89PNG\x00\x01")
    (tmp_path / "new" / "logo.png").write_bytes(b"\x89PNG\x00\x02")
    proc = subprocess.run(["diff", "-ruN", "old", "new"], cwd=tmp_path, capture_output=True)
    text = proc.stdout.decode()
    assert "File old/pkg is a directory while file new/pkg is a regular file" in text
    assert "is diff -r's note of a change it does not show" in refused(text)
    for sentence in (
        "Common subdirectories: old/a and new/a",
        "Files old/a and new/a differ",
        "Symbolic links old/a and new/a differ",
    ):
        assert "line 1 is diff -r's note" in refused(f"{sentence}\n{PLAIN_APP}")


@needs_diff
def test_normal_and_context_format_entries_after_a_unified_one_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("one\ntwo\n")
    (tmp_path / "b").write_text("one\n2\n")
    normal = subprocess.run(["diff", "a", "b"], cwd=tmp_path, capture_output=True).stdout.decode()
    context = subprocess.run(["diff", "-c", "a", "b"], cwd=tmp_path, capture_output=True).stdout.decode()
    assert normal.startswith("2c2\n") and "***************" in context
    assert "line 8 is a normal-format, ed or RCS change command" in refused(APP + normal)
    assert "belongs to a context-format diff (diff -c)" in refused(APP + context)
    # diff -r's command line before a normal-format entry: refused there, since no entry follows it
    assert "the diff command line 8 is not followed by a unified diff entry" in refused(APP + "diff -r a b\n" + normal)


def test_a_diff_command_line_before_its_entry_is_skipped() -> None:
    """`diff -ruN old/x new/x` heads each entry of a tree diff: it is read as the entry's preamble."""
    text = "diff -ruN old/app.py new/app.py\n--- old/app.py\n+++ new/app.py\n@@ -1 +1 @@\n-a\n+b\n"
    assert [f.path for f in parse_diff(text)] == ["app.py"]


@needs_git
def test_an_unmerged_path_line_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "conflict"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "conftest.py").write_text("a = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "side")
    (repo / "conftest.py").write_text("a = 2\n")
    git(repo, "commit", "-qam", "side")
    git(repo, "checkout", "-q", "main")
    (repo / "conftest.py").write_text("a = 3\n")
    git(repo, "commit", "-qam", "main")
    git(repo, "merge", "-q", "side", check=False)  # a conflict: exit 1, the index left unmerged
    text = git(repo, "diff", "--cached")
    assert text.startswith("* Unmerged path conftest.py")
    assert "line 1 names a file with unresolved merge conflicts" in refused(text + LOGO)


def test_a_plain_entry_in_a_commit_message_of_format_patch_input_is_refused() -> None:
    """Before: the message's `--- a/setup.cfg` hunk was merged into the real file's text."""
    mail = (
        "From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001\n"
        "From: a <a@example.com>\nSubject: [PATCH] tidy\n\nA message that quotes a diff:\n"
        "--- a/setup.cfg\n+++ b/setup.cfg\n@@ -1,2 +1,2 @@\n [tool:pytest]\n-addopts = -p no:gate\n+addopts = -ra\n"
        "---\n setup.cfg | 2 +-\n 1 file changed, 1 insertion(+), 1 deletion(-)\n\n"
        "diff --git a/setup.cfg b/setup.cfg\nindex 1111111..2222222 100644\n--- a/setup.cfg\n+++ b/setup.cfg\n"
        "@@ -1,2 +1,2 @@\n [tool:pytest]\n-addopts = -ra\n+addopts = -p no:gate\n-- \n2.39.5\n\n"
    )
    assert "the entry at line 6 has no 'diff --git' line though other entries do" in refused(mail)
    # the same mail without the quoted diff parses: headers, prose, --stat lines and signature are junk
    honest = mail.replace(mail[mail.index("--- a/setup.cfg") : mail.index("---\n setup.cfg")], "")
    assert [f.path for f in parse_diff(honest)] == ["setup.cfg"]


@pytest.mark.parametrize(
    "header",
    [
        "@@ -1 +1," + "9" * 5000 + " @@",  # before: int() raised, an INTERNALERROR traceback
        "@@ -\u0661 +\u0661 @@",  # Arabic-Indic digits: \d took them, git does not
        "@@ -12345678901 +1 @@",  # eleven digits
    ],
)
def test_hunk_numbers_are_ascii_digits_of_a_bounded_length(header: str) -> None:
    message = refused(f"--- a/x\n+++ b/x\n{header}\n-a\n+b\n")
    assert "line 3 starts like a hunk header but is not one" in message


def test_junk_between_entries_still_parses() -> None:
    """Mail headers, prose, `--stat` lines, `Index:` lines and the signature are text between entries."""
    text = (
        "From: a\nSubject: x\n\nProse - with a dash.\n> quoted reply\n< less\n---\n app.py | 2 +-\n\n"
        "Index: app.py\n===================================================================\n" + APP + "-- \n2.43.0\n"
    )
    assert [f.path for f in parse_diff(text)] == ["app.py"]


# --- 5: one path, one identity ----------------------------------------------------------------


def test_names_that_decode_alike_are_refused() -> None:
    """Before: `x\\xfe` and `x\\xff` were one path `x\ufffd`, and only the first was checked for holds."""
    raw = (
        b"diff --git a/conftest.py b/x\xff\nsimilarity index 100%\nrename from conftest.py\nrename to x\xff\n"
        b"diff --git a/x\xfe b/x\xfe\nindex 1111111..2222222 100644\n--- a/x\xfe\n+++ b/x\xfe\n@@ -1 +1 @@\n-a\n+b\n"
    )
    assert "the entries at lines 1 and 5 name x\ufffd, whose bytes are not all UTF-8" in refused(decode(raw))
    once = '--- "a/x\\376"\n+++ "b/x\\376"\n@@ -1 +1 @@\n-a\n+b\n'
    assert parse_diff(once)[0].path == "x\ufffd"  # named once, it is one file, whatever its bytes
    rename = 'diff --git "a/x\\376" "b/x\\377"\nsimilarity index 100%\nrename from "x\\376"\nrename to "x\\377"\n'
    assert "both sides of the rename at line 1 name x\ufffd" in refused(rename)


def test_every_entry_of_a_path_is_checked_for_holds() -> None:
    """A patch series that deletes x.py, then renames conftest.py to x.py: the second entry is held."""
    deleted = Section("x.py", "x.py", None, "deleted", "-a\n")
    renamed = Section("x.py~2", "x.py", "conftest.py", "renamed", "")
    assert [h.line() for h in held_changes([deleted, renamed], [])] == [
        "x.py: pytest runs this code in the gate's process"
    ]


@pytest.mark.parametrize(
    "stamp",
    ["    2024-01-01 00:00:00.000000000 +0000", " 2024-01-01 00:00:00", "  24-01-01 10:00:00.5 -05:00", " 2024-01-01"],
)
def test_timestamps_after_spaces_are_stripped_as_git_apply_strips_them(stamp: str) -> None:
    text = f"--- a/conftest.py{stamp}\n+++ b/conftest.py{stamp}\n@@ -1 +1 @@\n-a\n+b\n"
    (f,) = parse_diff(text)
    assert f.path == "conftest.py"
    sections, skipped = sections_of([f])
    assert [h.line() for h in held_changes(sections, skipped)] == [
        "conftest.py: pytest runs this code in the gate's process"
    ]


def test_a_git_entry_keeps_a_name_that_ends_like_a_timestamp() -> None:
    """git apply reads a git entry's names as written: the `---` name must match the `diff --git` line."""
    name = "notes 2024-01-01"
    text = f"diff --git a/{name} b/{name}\n--- a/{name}\n+++ b/{name}\n@@ -1 +1 @@\n-a\n+b\n"
    assert parse_diff(text)[0].path == name


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('--- "a/"conftest.py\n+++ "b/"conftest.py\n@@ -1 +1 @@\n-a\n+b\n', 1),
        ('--- a/x\n+++ "b/x\n@@ -1 +1 @@\n-a\n+b\n', 2),
        ('diff --git a/x b/y\nsimilarity index 100%\nrename from "x"y\nrename to y\n', 3),
    ],
)
def test_partial_quoting_is_refused(text: str, line: int) -> None:
    assert f"line {line} quotes only part of a file name" in refused(text)


def test_partial_quoting_of_a_diff_git_line_is_refused() -> None:
    git_line = 'diff --git "a/"conftest.py "b/"conftest.py\nsimilarity index 100%\nrename from a\nrename to b\n'
    assert "the 'diff --git' line 1 quotes only part of a file name" in refused(git_line)


@needs_git
def test_no_index_trees_resolve_like_diff_ruN(tmp_path: Path) -> None:
    """Before: an added `new/.github/workflows/x.yml` kept its tree prefix and was not held."""
    (tmp_path / "old").mkdir()
    (tmp_path / "new" / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / "old" / "app.py").write_text("a = 1\n")
    (tmp_path / "new" / "app.py").write_text("a = 2\n")
    (tmp_path / "old" / "gone.py").write_text("b = 1\n")
    (tmp_path / "new" / ".github" / "workflows" / "x.yml").write_text("on: push\n")
    text = git(tmp_path, "diff", "--no-index", "old", "new", check=False)  # exit 1: the trees differ
    assert "diff --git a/new/.github/workflows/x.yml b/new/.github/workflows/x.yml" in text
    files = parse_diff(text)
    assert [(f.path, f.change) for f in files] == [
        (".github/workflows/x.yml", "added"),
        ("app.py", "modified"),
        ("gone.py", "deleted"),
    ]
    sections, skipped = sections_of(files)
    assert [h.path for h in held_changes(sections, skipped)] == [".github/workflows/x.yml"]


def test_a_plain_git_diff_of_added_files_under_a_folder_named_b_keeps_its_paths() -> None:
    """--no-prefix: an added `b/x` shows no prefix; the modified file's empty pair applies to it."""
    text = (
        "diff --git b/x b/x\nnew file mode 100644\n--- /dev/null\n+++ b/x\n@@ -0,0 +1 @@\n+a\n"
        "diff --git app.py app.py\n--- app.py\n+++ app.py\n@@ -1 +1 @@\n-a\n+b\n"
    )
    assert [f.path for f in parse_diff(text)] == ["app.py", "b/x"]


# --- 7: linear time, bounded memory -----------------------------------------------------------


def lines_run(function: Callable[..., Any], *args: Any) -> int:
    """How many lines of sections.py run during `function(*args)`: a measure of work, not of time."""
    count = 0
    target = sections_module.__file__

    def trace(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if frame.f_code.co_filename != target:
            return None
        if event == "line":
            count += 1
        return trace

    sys.settrace(trace)
    try:
        function(*args)
    finally:
        sys.settrace(None)
    return count


def same_name(n: int) -> list[Section]:
    return [Section("x.py", "x.py", None, "modified", "+a\n") for _ in range(n)]


def test_unique_ids_are_linear_in_repeats_of_one_name() -> None:
    """Before: the k-th copy tried k suffixes (16,000 names that decode alike: 116 s)."""
    small, large = (
        lines_run(sections_module._unique_ids, same_name(400)),
        lines_run(sections_module._unique_ids, same_name(800)),
    )
    assert large < 2.2 * small
    ids = [s.id for s in sections_module._unique_ids([*same_name(3), Section("x.py~2", "x.py~2", None, "added", "")])]
    assert ids == ["x.py", "x.py~2", "x.py~3", "x.py~2~2"]


def test_the_directory_hint_is_linear_in_directories() -> None:
    """Before: each directory scanned all the others (40,000 one-file directories: 273 s)."""
    small = lines_run(crowded_directories, [f"d{i}/f.py" for i in range(400)])
    large = lines_run(crowded_directories, [f"d{i}/f.py" for i in range(800)])
    assert large < 2.2 * small
    deep = ["a/" * 2000 + f"f{i}.py" for i in range(20)]
    assert crowded_directories(deep) == [("a/", 20)]


def test_the_directory_hint_is_the_same_for_unsorted_paths() -> None:
    paths = ["mypy/typeshed/a.pyi"] * 8 + ["mypy/b.py"] * 2 + ["test-data/c.test"] * 3
    assert crowded_directories(paths[::-1]) == crowded_directories(paths) == [("mypy/typeshed/", 8), ("test-data/", 3)]


def test_a_2_kb_non_ascii_path_quoted_by_git_is_read() -> None:
    """Before: git's octal quoting made its `diff --git` line 12,000+ characters: "not a unified diff"."""
    path = "/".join(["\u65e5\u672c\u8a9e" * 40] * 6)  # 720 characters, 2,160 bytes of UTF-8
    quoted = '"' + "".join(f"\\{b:03o}" if b > 127 else chr(b) for b in path.encode()) + '"'
    a, b = quoted.replace('"', '"a/', 1), quoted.replace('"', '"b/', 1)
    text = f"diff --git {a} {b}\nindex 1111111..2222222 100644\n--- {a}\n+++ {b}\n@@ -1 +1 @@\n-a\n+b\n"
    assert len(text.splitlines()[0]) > 12_000
    assert [f.path for f in parse_diff(text)] == [path]


def test_a_header_line_past_any_real_path_is_still_refused() -> None:
    line = "diff --git a/" + "x" * 40_000 + " b/" + "x" * 40_000 + "\n"
    assert "line 1 is a 80017-character file header" in refused(line)


def test_the_token_estimate_counts_non_ascii_text_conservatively() -> None:
    """Before: 3 characters a token everywhere, 3-6x low for CJK and emoji."""
    panel = [Voter("v0", "m")]
    ascii_only = estimate_input_tokens([Section("a.py", "a.py", None, "added", "+" + "x" * 30_000)], panel)
    cjk = estimate_input_tokens([Section("a.py", "a.py", None, "added", "+" + "\u65e5" * 30_000)], panel)
    emoji = estimate_input_tokens([Section("a.py", "a.py", None, "added", "+" + "\U0001f600" * 30_000)], panel)
    assert cjk - ascii_only >= 30_000 * (1.5 - 1 / 3) - 1  # 1.5 tokens a CJK character (3 bytes / 2)
    assert emoji - ascii_only >= 30_000 * (2 - 1 / 3) - 1  # 2 an emoji (4 bytes / 2)


class CountingReader(io.BytesIO):
    """A stream that remembers how much was asked of it."""

    asked = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.asked += len(data)
        return data


def test_the_diff_is_read_with_a_bound() -> None:
    from pytest_swarmgate.core.diff import DiffTooLarge
    from pytest_swarmgate.core.diff.source import bounded_read

    stream = CountingReader(b"x" * 10_000)
    with pytest.raises(DiffTooLarge, match=r"^the diff file p is over --swarm-max-diff-bytes=100: not read whole"):
        bounded_read(stream, 100, "the diff file p")
    assert stream.asked == 101
    assert bounded_read(CountingReader(b"x" * 100), 100, "p") == b"x" * 100


def test_files_stdin_and_git_output_are_read_with_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo: Path
) -> None:
    from pytest_swarmgate.core.diff import DiffTooLarge

    patch = tmp_path / "pr.patch"
    patch.write_text(APP)
    with pytest.raises(DiffTooLarge, match=r"^the diff file .*pr\.patch is over --swarm-max-diff-bytes=10: "):
        read_diff_file(str(patch), 10)
    assert read_diff_file(str(patch), len(APP)) == APP
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(APP.encode())))
    with pytest.raises(DiffTooLarge, match=r"^the diff on stdin is over"):
        read_diff_file("-", 10)
    monkeypatch.setattr(sys, "stdin", io.StringIO("\u65e5" * 10))  # 10 characters, 30 bytes
    with pytest.raises(DiffTooLarge):
        read_diff_file("-", 20)
    if shutil.which("git"):
        with pytest.raises(DiffTooLarge, match=r"^git diff main\.\.\.HEAD is over --swarm-max-diff-bytes=50: "):
            git_diff("main", repo, 50)
        assert "app.py" in git_diff("main", repo, 10_000)


def test_parse_sections_still_splits_and_filters() -> None:
    """The parser's changes leave sectioning as it was."""
    sections, skipped = parse_sections(APP + LOGO)
    assert [s.path for s in sections] == ["app.py"] and [n.path for n in skipped] == ["logo.png"]


def _read(text: str) -> object:
    """Everything the parse gives for `text`: each file, the sections with and without a budget; or the refusal."""
    try:
        files = parse_diff(text)
    except DiffError as exc:
        return str(exc)
    views = [sections_of(files, budget=b) for b in (None, 300, 1)]
    return [(f.path, f.old_path, f.change, f.header, f.hunks, f.unread) for f in files], views


@pytest.mark.parametrize("window", [1, 5, 64])
def test_lines_read_a_window_at_a_time_read_as_the_whole(monkeypatch: pytest.MonkeyPatch, window: int) -> None:
    """The reader keeps a window of lines, not all of them: a line, a hunk or a header across windows reads the same."""
    from pytest_swarmgate.core.diff import entries

    fixtures = sorted((Path(__file__).parent.parent / "fixtures").rglob("*.diff"))
    whole = "".join(p.read_text("utf-8") for p in fixtures)
    texts = [whole, whole.replace("\n", "\r\n"), whole[: len(whole) // 3], APP.rstrip("\n"), APP + "@@ -1 +1 @@\n-a\n"]
    expected = [_read(t) for t in texts]
    monkeypatch.setattr(entries.Lines, "WINDOW", window)
    assert [_read(t) for t in texts] == expected


def test_every_view_of_a_file_in_one_section_is_its_own_text() -> None:
    """Planning holds a file's text once: the budgeted and the whole views share it, with no copy."""
    files = parse_diff(APP + APP.replace("app.py", "lib.py"))
    for budget in (None, 60_000):
        sections, _ = sections_of(files, budget=budget)
        assert [s.text for s in sections] == [f.text for f in files]
        assert all(s.text is f.text for s, f in zip(sections, files, strict=True))


def test_the_plans_passes_pause_the_cyclic_collector_and_restore_it_however_they_end() -> None:
    """core/heap.py: parse_diff and sections_of run with the collector paused, and give it back."""
    import gc

    from pytest_swarmgate.core.diff import DiffError, parse_diff, sections_of
    from pytest_swarmgate.core.heap import no_cycle_collection

    seen: list[bool] = []
    with no_cycle_collection():
        seen.append(gc.isenabled())
    assert seen == [False] and gc.isenabled()
    files = parse_diff("diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n")
    assert gc.isenabled() and sections_of(files)[0] and gc.isenabled()
    with pytest.raises(DiffError):
        parse_diff("not a diff at all\n")
    assert gc.isenabled()  # back on after a refusal too
    gc.disable()
    try:
        parse_diff("")
        assert not gc.isenabled(), "a collector the caller had paused stays paused"
    finally:
        gc.enable()
