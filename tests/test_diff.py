"""The diff core: reading diffs, sectioning, not-reviewed reasons, budgets and hostile input."""

from __future__ import annotations

import builtins
import hashlib
import io
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import git

from pytest_swarmgate.core.diff import (
    DiffError,
    diff_sha256,
    git_diff,
    glob_match,
    parse_sections,
    read_diff_file,
)
from pytest_swarmgate.model import NotReviewed


def d(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


MODIFIED = d("""
    diff --git a/src/app.py b/src/app.py
    index 1111111..2222222 100644
    --- a/src/app.py
    +++ b/src/app.py
    @@ -1,3 +1,3 @@
     import os
    -DEBUG = False
    +DEBUG = True
     x = 1
    @@ -10,2 +10,3 @@ def f():
     a
    +b
     c
""")

ADDED = d("""
    diff --git a/new.py b/new.py
    new file mode 100644
    index 0000000..3333333
    --- /dev/null
    +++ b/new.py
    @@ -0,0 +1,2 @@
    +print("hi")
    +print("there")
""")

DELETED = d("""
    diff --git a/auth.py b/auth.py
    deleted file mode 100644
    index 4444444..0000000
    --- a/auth.py
    +++ /dev/null
    @@ -1,2 +0,0 @@
    -def check(user):
    -    return user.is_admin
""")

RENAMED = d("""
    diff --git a/old/name.py b/new/name.py
    similarity index 90%
    rename from old/name.py
    rename to new/name.py
    index 5555555..6666666 100644
    --- a/old/name.py
    +++ b/new/name.py
    @@ -1 +1 @@
    -a = 1
    +a = 2
""")

PURE_RENAME = d("""
    diff --git a/a.txt b/b.txt
    similarity index 100%
    rename from a.txt
    rename to b.txt
""")

MODE_ONLY = d("""
    diff --git a/run.sh b/run.sh
    old mode 100644
    new mode 100755
""")

BINARY = d("""
    diff --git a/logo.png b/logo.png
    index 7777777..8888888 100644
    Binary files a/logo.png and b/logo.png differ
""")

SUBMODULE = d("""
    diff --git a/vendor/lib b/vendor/lib
    index 1234567..89abcde 160000
    --- a/vendor/lib
    +++ b/vendor/lib
    @@ -1 +1 @@
    -Subproject commit 1234567890abcdef1234567890abcdef12345678
    +Subproject commit 89abcdef0123456789abcdef0123456789abcdef
""")


def hunk(n: int, width: int = 10) -> str:
    """A one-line change hunk at line n whose text is about `width` characters long."""
    return f"@@ -{n} +{n} @@\n-{'o' * width}\n+{'n' * width}\n"


def big_file(hunks: int, width: int = 10, path: str = "big.py") -> tuple[str, str]:
    header = f"diff --git a/{path} b/{path}\nindex 1..2 100644\n--- a/{path}\n+++ b/{path}\n"
    # hunks at lines 11, 21, ... so that every hunk has the same length
    return header, header + "".join(hunk(10 * i + 11, width) for i in range(hunks))


# --- sections -------------------------------------------------------------------------


def test_modified_file_is_one_section_with_its_exact_text() -> None:
    sections, skipped = parse_sections(MODIFIED)
    assert skipped == []
    (s,) = sections
    assert (s.id, s.path, s.old_path, s.change) == ("src/app.py", "src/app.py", None, "modified")
    assert (s.part, s.parts, s.added, s.removed) == (1, 1, 2, 1)
    assert s.text == MODIFIED


def test_sections_sorted_by_path_and_text_split_per_file() -> None:
    sections, skipped = parse_sections(RENAMED + MODIFIED + DELETED + ADDED)
    assert skipped == []
    assert [s.path for s in sections] == ["auth.py", "new.py", "new/name.py", "src/app.py"]
    by_path = {s.path: s for s in sections}
    assert by_path["src/app.py"].text == MODIFIED
    assert by_path["new.py"].text == ADDED
    assert by_path["auth.py"].text == DELETED
    assert by_path["new/name.py"].text == RENAMED


def test_added_file() -> None:
    (s,), _ = parse_sections(ADDED)
    assert (s.path, s.change, s.old_path, s.added, s.removed) == ("new.py", "added", None, 2, 0)


def test_deleted_file_is_reviewed() -> None:
    (s,), skipped = parse_sections(DELETED)
    assert skipped == []
    assert (s.path, s.change, s.old_path, s.added, s.removed) == ("auth.py", "deleted", None, 0, 2)
    assert "-    return user.is_admin" in s.text


def test_rename_with_changes_is_reviewed() -> None:
    (s,), skipped = parse_sections(RENAMED)
    assert skipped == []
    assert (s.id, s.path, s.old_path, s.change) == ("new/name.py", "new/name.py", "old/name.py", "renamed")
    assert s.text.startswith("diff --git a/old/name.py b/new/name.py\n")


def test_changes_without_text_lines_are_judged_with_a_note_saying_what_changed() -> None:
    """A pure rename, a mode change, a submodule bump: short sections, never passed unjudged."""
    sections, skipped = parse_sections(PURE_RENAME + MODE_ONLY + BINARY + SUBMODULE + MODIFIED)
    assert [(s.path, s.old_path, s.change) for s in sections] == [
        ("b.txt", "a.txt", "renamed"),
        ("run.sh", None, "modified"),
        ("src/app.py", None, "modified"),
        ("vendor/lib", None, "modified"),
    ]
    rename, mode, _, submodule = sections
    quiet = "# swarmgate: no line of text changed; "
    assert rename.text == quiet + "renames a.txt to b.txt (similarity 100%)\n" + PURE_RENAME
    assert mode.text == quiet + "file mode 100644 -> 100755 (made executable)\n" + MODE_ONLY
    assert submodule.text == (
        "# swarmgate: submodule commit 1234567890abcdef1234567890abcdef12345678"
        " -> 89abcdef0123456789abcdef0123456789abcdef\n" + SUBMODULE
    )
    # only media stay unread, by the documented list
    assert skipped == [NotReviewed("logo.png", "media file: binary content is not reviewed", kind="media")]


def test_a_pure_copy_is_a_new_file_that_names_its_source() -> None:
    copy = PURE_RENAME.replace("rename ", "copy ")
    (s,), _ = parse_sections(copy)
    assert (s.path, s.old_path, s.change) == ("b.txt", "a.txt", "added")
    assert s.text == "# swarmgate: no line of text changed; copies a.txt to b.txt (similarity 100%)\n" + copy


def test_pure_rename_with_mode_change_says_both() -> None:
    text = PURE_RENAME.replace("similarity index 100%\n", "old mode 100644\nnew mode 100755\nsimilarity index 100%\n")
    (s,), skipped = parse_sections(text)
    assert skipped == []
    assert s.text.splitlines()[0] == (
        "# swarmgate: no line of text changed; renames a.txt to b.txt (similarity 100%);"
        " file mode 100644 -> 100755 (made executable)"
    )


@pytest.mark.parametrize("media", ["logo.PNG", "clip.mp4", "font.woff2", "song.flac"])
def test_media_stay_unread_only_by_their_extension(media: str) -> None:
    binary = BINARY.replace("logo.png", media)
    assert parse_sections(binary) == (
        [],
        [NotReviewed(media, "media file: binary content is not reviewed", kind="media")],
    )
    moved = PURE_RENAME.replace("a.txt", "old.png").replace("b.txt", media)
    assert parse_sections(moved) == (
        [],
        [NotReviewed(media, "media file: pure rename from old.png", "old.png", kind="media", change="renamed")],
    )
    # a media name on one side only, or a mode change, is judged
    assert parse_sections(PURE_RENAME.replace("b.txt", media))[0]
    assert parse_sections(moved.replace("similarity", "old mode 100644\nnew mode 100755\nsimilarity"))[0]


@pytest.mark.parametrize("name", ["doc.pdf", "logo.svgz", "tool.so", "data.bin", "noext"])
def test_other_binaries_are_unread_binaries_for_the_hold(name: str) -> None:
    assert parse_sections(BINARY.replace("logo.png", name)) == ([], [NotReviewed(name, "binary file", kind="binary")])


def test_a_deleted_binary_is_a_section_stating_the_deletion() -> None:
    deleted = d("""
        diff --git a/tool.so b/tool.so
        deleted file mode 100644
        index 7777777..0000000
        Binary files a/tool.so and /dev/null differ
    """)
    (s,), skipped = parse_sections(deleted)
    assert skipped == []
    assert (s.path, s.change) == ("tool.so", "deleted")
    assert s.text == "# swarmgate: deletes the binary file tool.so (its content is not shown)\n" + deleted
    media = deleted.replace("tool.so", "logo.png")
    gone = NotReviewed("logo.png", "media file: binary content is not reviewed", kind="media", change="deleted")
    assert parse_sections(media) == ([], [gone])


def test_git_binary_patch_is_not_reviewed() -> None:
    text = d("""
        diff --git a/x.bin b/x.bin
        index 1..2 100644
        GIT binary patch
        literal 3
        KcmZQzU|;|M00aO5

        literal 0
        HcmV?d00001

    """)
    assert parse_sections(text) == ([], [NotReviewed("x.bin", "binary file", kind="binary")])


def test_added_and_removed_submodule() -> None:
    added = d("""
        diff --git a/sub b/sub
        new file mode 160000
        index 0000000..abcdef1
        --- /dev/null
        +++ b/sub
        @@ -0,0 +1 @@
        +Subproject commit abcdef1234567890abcdef1234567890abcdef12
    """)
    (s,), skipped = parse_sections(added)
    assert skipped == [] and (s.path, s.change) == ("sub", "added")
    assert s.text.startswith("# swarmgate: submodule commit none -> " + "abcdef1234567890" * 2 + "abcdef12\ndiff --git")


def test_submodule_mode_cannot_hide_code_from_review() -> None:
    sneaky = SUBMODULE.replace(
        "+Subproject commit 89abcdef0123456789abcdef0123456789abcdef\n", "+import os; os.system('x')\n"
    )
    (s,), skipped = parse_sections(sneaky)
    assert skipped == []
    assert s.path == "vendor/lib"


def test_hunkless_entries_are_never_silently_dropped() -> None:
    empty_new = "diff --git a/e.py b/e.py\nnew file mode 100644\nindex 0000000..e69de29\n"
    empty_gone = "diff --git a/g.py b/g.py\ndeleted file mode 100644\nindex e69de29..0000000\n"
    bare = "diff --git a/h.py b/h.py\n"
    sections, skipped = parse_sections(empty_new + empty_gone + bare)
    assert skipped == []
    assert [(s.path, s.change, s.text.splitlines()[0]) for s in sections] == [
        ("e.py", "added", "# swarmgate: no line of text changed; adds an empty file (mode 100644)"),
        ("g.py", "deleted", "# swarmgate: no line of text changed; deletes an empty file"),
        ("h.py", "modified", "# swarmgate: no line of text changed; shows no change"),
    ]


def test_copy_with_changes_is_an_added_file_that_names_its_source() -> None:
    text = RENAMED.replace("rename from", "copy from").replace("rename to", "copy to")
    (s,), _ = parse_sections(text)
    assert (s.path, s.change, s.old_path) == ("new/name.py", "added", "old/name.py")


def test_mode_change_with_content_is_reviewed_and_shows_the_mode() -> None:
    text = MODIFIED.replace(
        "index 1111111..2222222 100644\n", "old mode 100644\nnew mode 100755\nindex 1111111..2222222\n"
    )
    (s,), skipped = parse_sections(text)
    assert skipped == []
    assert "new mode 100755\n" in s.text


def test_plain_unified_diff_without_git_header() -> None:
    text = d("""
        diff -u a/lib.c b/lib.c
        --- a/lib.c\t2024-01-01 00:00:00.000000000 +0000
        +++ b/lib.c\t2024-01-02 00:00:00.000000000 +0000
        @@ -1 +1 @@
        -int x;
        +long x;
        --- /dev/null\t1970-01-01 00:00:00.000000000 +0000
        +++ b/new.c\t2024-01-02 00:00:00.000000000 +0000
        @@ -0,0 +1 @@
        +int y;
    """)
    (lib, new), _ = parse_sections(text)
    assert (lib.path, lib.change, lib.old_path) == ("lib.c", "modified", None)
    assert lib.text.startswith("--- a/lib.c\t2024-01-01") and lib.text.endswith("+long x;\n")
    assert (new.path, new.change) == ("new.c", "added")


def test_format_patch_mail_and_signature_stay_out_of_sections() -> None:
    text = (
        "From abc Mon Sep 17 00:00:00 2001\nSubject: [PATCH] x\n\n---\n src/app.py | 2 +-\n\n"
        + MODIFIED
        + "-- \n2.39.5\n\n"
    )
    (s,), _ = parse_sections(text)
    assert s.text == MODIFIED


# --- the section budget ------------------------------------------------------------------


def test_file_within_budget_is_not_split() -> None:
    _, text = big_file(5)
    (s,), _ = parse_sections(text, budget=len(text))
    assert (s.id, s.part, s.parts, s.text) == ("big.py", 1, 1, text)


def test_large_file_splits_on_hunk_boundaries_with_greedy_packing() -> None:
    header, text = big_file(5)
    one = len(hunk(11))
    budget = len(header) + 2 * one  # exactly two hunks per slice
    sections, _ = parse_sections(text, budget=budget)
    assert [s.id for s in sections] == ["big.py#1", "big.py#2", "big.py#3"]
    assert [(s.part, s.parts) for s in sections] == [(1, 3), (2, 3), (3, 3)]
    assert all(s.text.startswith(header) and len(s.text) <= budget for s in sections)
    assert [s.added for s in sections] == [2, 2, 1]
    # every hunk appears once, whole and in order
    assert header + "".join(s.text[len(header) :] for s in sections) == text
    assert sections[2].text == header + hunk(51)


def test_hunk_larger_than_budget_is_its_own_uncut_section() -> None:
    header = "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n"
    text = header + hunk(1) + hunk(11, width=500) + hunk(21)
    sections, _ = parse_sections(text, budget=len(header) + 100)
    assert [s.text for s in sections] == [header + hunk(1), header + hunk(11, width=500), header + hunk(21)]
    assert len(sections[1].text) > len(header) + 100


def test_single_oversize_hunk_keeps_the_plain_id() -> None:
    _, text = big_file(1, width=1000)
    (s,), _ = parse_sections(text, budget=50)
    assert (s.id, s.parts, s.text) == ("big.py", 1, text)


@pytest.mark.parametrize("budget", [0, -5])
def test_budget_must_be_positive(budget: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        parse_sections(MODIFIED, budget=budget)


def test_budget_of_one_puts_every_hunk_alone() -> None:
    sections, _ = parse_sections(MODIFIED, budget=1)
    assert [s.id for s in sections] == ["src/app.py#1", "src/app.py#2"]
    assert sections[1].text.endswith("@@ -10,2 +10,3 @@ def f():\n a\n+b\n c\n")


# --- include / exclude -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("a.py", "**/*.py", True),
        ("x/y/a.py", "**/*.py", True),
        ("a.py", "*.py", True),
        ("x/a.py", "*.py", True),  # fnmatch: * crosses /
        ("src/test_a.py", "src/**/test_*.py", True),
        ("src/x/y/test_a.py", "src/**/test_*.py", True),
        ("lib/test_a.py", "src/**/test_*.py", False),
        ("a.PY", "*.py", False),  # case-sensitive
        ("docs/readme.md", "**/*.py", False),
        ("xdocs/a", "docs/**", False),
    ],
)
def test_glob_match(path: str, pattern: str, expected: bool) -> None:
    assert glob_match(path, pattern) is expected


def test_exclude_and_include_filters_report_every_file() -> None:
    sections, skipped = parse_sections(
        MODIFIED + ADDED + DELETED + RENAMED, include=["src/**", "**/*.py"], exclude=["*/name.py", "auth.py"]
    )
    assert [s.path for s in sections] == ["new.py", "src/app.py"]
    assert skipped == [
        NotReviewed("auth.py", "excluded by exclude glob 'auth.py'", kind="excluded", change="deleted"),
        NotReviewed("new/name.py", "excluded by exclude glob '*/name.py'", "old/name.py", "excluded", "renamed"),
    ]


def test_a_rename_into_an_excluded_folder_is_still_reviewed() -> None:
    """Moving code under an excluded path must not hide what the move changes."""
    sections, skipped = parse_sections(RENAMED, exclude=["new/**"])
    assert [s.path for s in sections] == ["new/name.py"] and skipped == []
    sections, skipped = parse_sections(RENAMED, include=["old/**"])
    assert [s.path for s in sections] == ["new/name.py"]


def test_not_matched_by_include() -> None:
    sections, skipped = parse_sections(MODIFIED + ADDED, include=["src/*"])
    assert [s.path for s in sections] == ["src/app.py"]
    assert skipped == [NotReviewed("new.py", "not matched by any include glob", kind="excluded", change="added")]


def test_exclude_wins_over_include() -> None:
    assert parse_sections(MODIFIED, include=["src/*"], exclude=["**/app.py"]) == (
        [],
        [NotReviewed("src/app.py", "excluded by exclude glob '**/app.py'", kind="excluded")],
    )


# --- untrusted input -----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   \n\t\n"])
def test_empty_input_is_nothing_to_review(text: str) -> None:
    assert parse_sections(text) == ([], [])


@pytest.mark.parametrize(
    "text",
    [
        "just some text\nnot a diff at all\n",
        "import os\n\nprint(os.getcwd())\n",
        "--- a horizontal rule in markdown\n",
        "\x00\x01\x02garbage\xff",
    ],
)
def test_text_without_a_file_diff_is_an_error(text: str) -> None:
    with pytest.raises(DiffError, match=r"^input is not a unified diff: no file header"):
        parse_sections(text)


@pytest.mark.parametrize(
    "text",
    [
        MODIFIED.replace(" x = 1\n", ""),  # hunk shorter than its header says
        MODIFIED.replace("+DEBUG = True\n", "+DEBUG = True\n+more\n+more\n"),  # longer
        "@@ -1 +1 @@\n-a\n+b\n",  # hunk without a file
        "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n\x1b[31mred\n",  # not a hunk line, with an escape
    ],
)
def test_malformed_diff_is_one_line_error(text: str) -> None:
    with pytest.raises(DiffError, match=r"^input is not a unified diff: ") as info:
        parse_sections(text)
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message and len(message) < 300


def test_crlf_diff_keeps_its_bytes_and_its_metadata() -> None:
    text = (ADDED + DELETED).replace("\n", "\r\n")
    (deleted, added), skipped = parse_sections(text)
    assert skipped == []
    assert (added.change, added.added) == ("added", 2)
    assert (deleted.change, deleted.removed) == ("deleted", 2)
    assert added.text == ADDED.replace("\n", "\r\n")


def test_crlf_content_lines_in_lf_diff() -> None:
    text = MODIFIED.replace("+DEBUG = True\n", "+DEBUG = True\r\n")
    (s,), _ = parse_sections(text)
    assert s.text == text and s.added == 2


def test_no_newline_at_end_of_file_marker_stays_with_its_hunk() -> None:
    text = d("""
        diff --git a/a.txt b/a.txt
        --- a/a.txt
        +++ b/a.txt
        @@ -1 +1 @@
        -old
        \\ No newline at end of file
        +new
        \\ No newline at end of file
    """)
    (s, _), _ = parse_sections(text + MODIFIED)
    assert s.text == text
    (s,), _ = parse_sections(text, budget=1)
    assert s.text.endswith("+new\n\\ No newline at end of file\n")


def test_names_with_spaces_unicode_and_quotes() -> None:
    spaces = d("""
        diff --git a/my dir/a b.py b/my dir/a b.py
        --- a/my dir/a b.py\t
        +++ b/my dir/a b.py\t
        @@ -1 +1 @@
        -a
        +b
    """)
    quoted = d("""
        diff --git "a/caf\\303\\251 \\"q\\".py" "b/caf\\303\\251 \\"q\\".py"
        --- "a/caf\\303\\251 \\"q\\".py"
        +++ "b/caf\\303\\251 \\"q\\".py"
        @@ -1 +1 @@
        -a
        +b
    """)
    raw_unicode = spaces.replace("my dir/a b.py", "日本/ü.py")
    sections, _ = parse_sections(spaces + quoted + raw_unicode)
    assert [s.path for s in sections] == ['café "q".py', "my dir/a b.py", "日本/ü.py"]
    assert sections[0].text == quoted


def test_quoted_rename_paths() -> None:
    text = PURE_RENAME.replace("rename from a.txt", 'rename from "t\\tab.txt"')
    (s,), _ = parse_sections(text)
    assert (s.path, s.old_path) == ("b.txt", "t\tab.txt")
    assert s.text.startswith("# swarmgate: no line of text changed; renames t\\tab.txt to b.txt (similarity 100%)\n")


def test_dangerous_paths_are_kept_and_never_touched(monkeypatch: pytest.MonkeyPatch) -> None:
    text = MODIFIED.replace("src/app.py", "../../etc/passwd") + ADDED.replace("b/new.py", "/etc/shadow")

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"filesystem touched: {args}")

    for name in ("stat", "lstat", "open", "listdir", "scandir"):
        monkeypatch.setattr(os, name, forbidden)
    monkeypatch.setattr(builtins, "open", forbidden)
    sections, _ = parse_sections(text)
    monkeypatch.undo()
    assert [s.path for s in sections] == ["../../etc/passwd", "/etc/shadow"]


def test_duplicate_paths_and_lookalike_ids_stay_unique() -> None:
    _, big = big_file(2, width=300, path="x")
    lookalike = MODIFIED.replace("src/app.py", "x#1")
    sections, _ = parse_sections(big + lookalike + MODIFIED + MODIFIED, budget=400)
    ids = [s.id for s in sections]
    assert len(set(ids)) == len(ids)
    assert ids == ["src/app.py", "src/app.py~2", "x#1", "x#2", "x#1~2"]


def test_extremely_long_lines_do_not_blow_up() -> None:
    long_line = "+" + "a" * 5_000_000 + "\n"
    text = "diff --git a/min.js b/min.js\n--- a/min.js\n+++ b/min.js\n@@ -0,0 +1 @@\n" + long_line
    start = time.perf_counter()
    (s,), _ = parse_sections(text, budget=1000)
    assert s.text == text
    with pytest.raises(DiffError, match="file header"):
        parse_sections("diff --git a/" + "x " * 1_000_000 + "\n")
    # would take minutes in unidiff's binary-line regex without the guard
    hostile = ("Binary files " + " and" * 2000 + "\t differ\n") * 200
    with pytest.raises(DiffError, match=r"cannot read the two file names of the binary file line 1$"):
        parse_sections(hostile)
    spaces = "diff --git a/" + "x " * 4000 + "\nnew file mode 100644\n"
    with pytest.raises(DiffError):
        parse_sections(spaces)
    assert parse_sections("z" * 5_000_000 + "\n" + MODIFIED)[0][0].text == MODIFIED
    assert time.perf_counter() - start < 10


def test_diff_sha256() -> None:
    assert diff_sha256(MODIFIED) == hashlib.sha256(MODIFIED.encode()).hexdigest()
    assert diff_sha256("é") == hashlib.sha256("é".encode()).hexdigest()
    assert diff_sha256(MODIFIED) != diff_sha256(MODIFIED + " ")
    assert len(diff_sha256("\udcff")) == 64  # never raises


# --- reading diffs ------------------------------------------------------------------------


def test_read_diff_file(tmp_path: Path) -> None:
    path = tmp_path / "pr.patch"
    path.write_bytes(b"\xef\xbb\xbf" + MODIFIED.encode() + b"+bad \xff byte\n")
    text = read_diff_file(str(path))
    assert text.startswith("diff --git")  # BOM dropped
    assert text.endswith("+bad \ufffd byte\n")  # invalid UTF-8 replaced, never a crash


def test_read_missing_diff_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.patch"
    with pytest.raises(DiffError, match=rf"^cannot read diff file {missing}: No such file or directory$"):
        read_diff_file(str(missing))
    with pytest.raises(DiffError, match=r"^cannot read diff file .*: Is a directory$"):
        read_diff_file(str(tmp_path))


def test_read_diff_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(MODIFIED.encode() + b"\xfe"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    assert read_diff_file("-") == MODIFIED + "\ufffd"
    monkeypatch.setattr(sys, "stdin", io.StringIO(MODIFIED))
    assert read_diff_file("-") == MODIFIED


def test_read_diff_from_closed_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.StringIO("")
    stdin.close()
    monkeypatch.setattr(sys, "stdin", stdin)
    with pytest.raises(DiffError, match=r"^cannot read diff file -: "):
        read_diff_file("-")


# --- git ----------------------------------------------------------------------------------

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "keep.py").write_text("a = 1\n")
    (repo / "gone.py").write_text("def check():\n    return False\n")
    (repo / "moved.py").write_text("".join(f"line {i}\n" for i in range(40)))
    (repo / "logo.png").write_bytes(b"\x89PNG\x00\x01")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "feature")
    (repo / "keep.py").write_text("a = 2\n")
    (repo / "gone.py").unlink()
    (repo / "moved.py").rename(repo / "renamed.py")
    (repo / "renamed.py").write_text("".join(f"line {i}\n" for i in range(39)) + "changed\n")
    (repo / "logo.png").write_bytes(b"\x89PNG\x00\x02")
    (repo / "añadido é.py").write_text("print('new')\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "feature")
    return repo


@needs_git
def test_git_diff_against_base(repo: Path) -> None:
    text = git_diff("main", repo)
    assert "rename from moved.py\nrename to renamed.py\n" in text
    sections, skipped = parse_sections(text)
    assert [(s.path, s.change, s.old_path) for s in sections] == [
        ("añadido é.py", "added", None),
        ("gone.py", "deleted", None),
        ("keep.py", "modified", None),
        ("renamed.py", "renamed", "moved.py"),
    ]
    assert skipped == [NotReviewed("logo.png", "media file: binary content is not reviewed", kind="media")]
    assert text == git_diff("main", str(repo))  # str or PathLike


@needs_git
def test_git_diff_pins_options_that_config_could_change(repo: Path) -> None:
    for key, value in [
        ("diff.noprefix", "true"),
        ("color.diff", "always"),
        ("diff.external", "false"),
        ("diff.relative", "true"),
        ("core.quotepath", "true"),
        ("diff.renames", "false"),
    ]:
        git(repo, "config", key, value)
    (repo / "sub").mkdir()
    text = git_diff("main", repo / "sub")  # diff.relative would drop every file outside sub/
    assert "\x1b[" not in text
    assert "diff --git a/keep.py b/keep.py\n" in text and "rename to renamed.py\n" in text
    assert "+++ b/añadido é.py" in text


@needs_git
def test_git_diff_uses_the_merge_base(repo: Path) -> None:
    git(repo, "checkout", "-q", "main")
    (repo / "later.py").write_text("x = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "main moves on")
    git(repo, "checkout", "-q", "feature")
    assert "later.py" not in git_diff("main", repo)


@needs_git
def test_git_diff_unknown_ref(repo: Path) -> None:
    with pytest.raises(DiffError, match=r"^unknown git ref 'no-such-branch': \S") as info:
        git_diff("no-such-branch", repo)
    assert "\n" not in str(info.value)


@needs_git
@pytest.mark.parametrize("ref", ["--output=/tmp/pwned", "-p", "", "main\n"])
def test_git_diff_rejects_refs_that_look_like_options(repo: Path, ref: str) -> None:
    with pytest.raises(DiffError, match=r"^invalid git ref"):
        git_diff(ref, repo)


@needs_git
def test_git_diff_outside_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    with pytest.raises(DiffError, match=r"^not a git repository: "):
        git_diff("main", tmp_path)
    with pytest.raises(DiffError, match=r"^cannot run git in .*: no such directory$"):
        git_diff("main", tmp_path / "missing")


def test_git_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DiffError, match=r"^git is not installed or not on PATH$"):
        git_diff("main", tmp_path)


# --- every change judged, with real git (issue 8) --------------------------------------------


@pytest.fixture
def quiet_repo(tmp_path: Path) -> Path:
    """A repository with a base commit on main and a `feature` branch to change."""
    repo = tmp_path / "quiet"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "app").mkdir()
    (repo / "app" / "authz_check.py").write_text("def allowed(user):\n    return user.is_admin\n")
    (repo / "run.sh").write_text("echo hi\n")
    (repo / "tool.so").write_bytes(b"\x7fELF\x00\x01\x02")
    os.symlink("config/dev.ini", repo / "settings.ini")
    (repo / "vendor" / "lib").mkdir(parents=True)  # an unpopulated submodule, as after a plain clone
    git(repo, "add", "-A")
    git(repo, "update-index", "--add", "--cacheinfo", "160000,1234567890abcdef1234567890abcdef12345678,vendor/lib")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "feature")
    return repo


@needs_git
def test_git_made_changes_without_text_lines_are_all_judged(quiet_repo: Path) -> None:
    """A pure rename, a file made executable, a new link target, a submodule bump, an empty
    `__init__.py` and a deleted binary: each a section stating what changed, none unjudged."""
    repo = quiet_repo
    (repo / "docs").mkdir()
    git(repo, "mv", "app/authz_check.py", "docs/authz_check.py.bak")
    (repo / "run.sh").chmod(0o755)
    (repo / "settings.ini").unlink()
    os.symlink("/etc/passwd", repo / "settings.ini")
    (repo / "pkg").mkdir()
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "tool.so").unlink()
    git(repo, "add", "-A")
    git(repo, "update-index", "--cacheinfo", "160000,89abcdef0123456789abcdef0123456789abcdef,vendor/lib")
    git(repo, "commit", "-qm", "quiet changes")
    sections, skipped = parse_sections(git_diff("main", repo))
    assert skipped == []
    notes = {s.path: (s.change, s.old_path, s.text.splitlines()[0]) for s in sections}
    assert notes == {
        "docs/authz_check.py.bak": (
            "renamed",
            "app/authz_check.py",
            "# swarmgate: no line of text changed; renames app/authz_check.py to docs/authz_check.py.bak"
            " (similarity 100%)",
        ),
        "run.sh": (
            "modified",
            None,
            "# swarmgate: no line of text changed; file mode 100644 -> 100755 (made executable)",
        ),
        "settings.ini": ("modified", None, "# swarmgate: symbolic link target 'config/dev.ini' -> '/etc/passwd'"),
        "pkg/__init__.py": ("added", None, "# swarmgate: no line of text changed; adds an empty file (mode 100644)"),
        "tool.so": ("deleted", None, "# swarmgate: deletes the binary file tool.so (its content is not shown)"),
        "vendor/lib": (
            "modified",
            None,
            "# swarmgate: submodule commit 1234567890abcdef1234567890abcdef12345678"
            " -> 89abcdef0123456789abcdef0123456789abcdef",
        ),
    }
    # the git header lines stay in the section, under the note
    rename = next(s for s in sections if s.change == "renamed")
    assert "rename from app/authz_check.py\nrename to docs/authz_check.py.bak\n" in rename.text
    # a deleted binary is never held for being binary
    from pytest_swarmgate.core.held import held_changes

    assert held_changes(sections, skipped) == []


@needs_git
@pytest.mark.parametrize("quotepath", ["off", "on"])
def test_paths_with_space_b_slash_parse_from_git(quiet_repo: Path, quotepath: str) -> None:
    """unidiff's greedy `diff --git` match could not place `Plan b/notes.md` (issue 9)."""
    repo = quiet_repo
    (repo / "Plan b").mkdir()
    (repo / "Plan b" / "notes.md").write_text("one\n")
    (repo / "Plan b" / "café b.md").write_text("two\n")  # quoted by git when core.quotepath is on
    (repo / "Plan b" / 'say "b" b.txt').write_text("three\n")  # always quoted
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "plan b")
    (repo / "Plan b" / "old b").mkdir()
    git(repo, "mv", "Plan b/notes.md", "Plan b/old b/notes.md")
    (repo / "Plan b" / "café b.md").write_text("two, changed\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "move")
    text = git(repo, "-c", f"core.quotepath={quotepath}", "diff", "main", "HEAD")
    if quotepath == "on":
        assert '"b/Plan b/caf\\303\\251 b.md"' in text
    assert 'diff --git "a/Plan b/say \\"b\\" b.txt"' in text
    sections, skipped = parse_sections(text)
    assert skipped == []
    got = {(s.path, s.change): s.old_path for s in sections if s.path.startswith("Plan b/")}
    assert got == {
        ("Plan b/café b.md", "added"): None,
        ("Plan b/old b/notes.md", "added"): None,
        ('Plan b/say "b" b.txt', "added"): None,
    }
    moved = parse_sections(git(repo, "-c", f"core.quotepath={quotepath}", "diff", "-M", "HEAD~1", "HEAD"))[0]
    assert {(s.path, s.old_path, s.change) for s in moved} == {
        ("Plan b/café b.md", None, "modified"),
        ("Plan b/old b/notes.md", "Plan b/notes.md", "renamed"),
    }


def _shape(text: str) -> list[tuple[str, str | None, str, int, int]]:
    sections, skipped = parse_sections(text)
    return sorted([(s.path, s.old_path, s.change, s.added, s.removed) for s in sections]) + sorted(
        [(n.path, n.old_path, n.reason, 0, 0) for n in skipped]
    )


@needs_git
@pytest.mark.parametrize(
    "options",
    [
        ["--no-prefix"],
        ["--src-prefix=old/", "--dst-prefix=new/"],
        ["--src-prefix=base-tree/", "--dst-prefix=x/"],
        ["--src-prefix=i/", "--dst-prefix=w/"],
        ["--src-prefix=b/", "--dst-prefix=a/"],
    ],
)
def test_git_prefixes_resolve_to_the_same_paths(quiet_repo: Path, options: list[str]) -> None:
    repo = quiet_repo
    (repo / "a").mkdir()  # a directory named like git's prefix: --no-prefix must keep it
    (repo / "a" / "x.py").write_text("x = 1\n")
    (repo / "b").mkdir()
    (repo / "b" / "y b.py").write_text("y = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "prefix dirs")
    (repo / "a" / "x.py").write_text("x = 2\n")
    (repo / "b" / "y b.py").unlink()
    (repo / ".github" / "workflows").mkdir(parents=True)
    (repo / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    git(repo, "mv", "app/authz_check.py", "docs.py")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")
    usual = git(repo, "diff", "-M", "HEAD~1", "HEAD")
    other = git(repo, "diff", "-M", *options, "HEAD~1", "HEAD")
    assert other != usual
    assert _shape(other) == _shape(usual)
    paths = [p for p, *_ in _shape(usual)]
    assert paths == [".github/workflows/ci.yml", "a/x.py", "b/y b.py", "docs.py"]
    from pytest_swarmgate.core.held import held_changes

    assert held_changes(*parse_sections(other)) == held_changes(*parse_sections(usual)) != []
    assert [s.path for s in parse_sections(other, exclude=[".github/**", "a/**"])[0]] == ["b/y b.py", "docs.py"]


needs_diff = pytest.mark.skipif(shutil.which("diff") is None, reason="GNU diff is not installed")


def _trees(tmp_path: Path) -> Path:
    old, new = tmp_path / "flask-3.1.3", tmp_path / "flask-3.1.3.new"
    for root in (old, new):
        (root / ".github" / "workflows").mkdir(parents=True)
        (root / "src").mkdir()
    (old / ".github" / "workflows" / "tests.yaml").write_text("on: push\njobs: {}\n")
    (new / ".github" / "workflows" / "tests.yaml").write_text("on: pull_request_target\njobs: {}\n")
    (old / "src" / "gone.py").write_text("def check():\n    return False\n")
    (new / "src" / "added.py").write_text("import os\nos.system('true')\n")
    (old / "src" / "same.py").write_text("a = 1\n")
    (new / "src" / "same.py").write_text("a = 2\n")
    return tmp_path


@needs_diff
def test_diff_ruN_trees_resolve_to_repository_paths_and_change_kinds(tmp_path: Path) -> None:
    """`diff -ruN old/ new/`: the tree prefix is stripped, added and deleted files are such."""
    root = _trees(tmp_path)
    proc = subprocess.run(["diff", "-ruN", "flask-3.1.3", "flask-3.1.3.new"], cwd=root, capture_output=True)
    assert proc.returncode == 1, proc.stderr
    text = proc.stdout.decode()
    assert "+++ flask-3.1.3.new/.github/workflows/tests.yaml\t" in text
    sections, skipped = parse_sections(text)
    assert skipped == []
    assert [(s.path, s.change) for s in sections] == [
        (".github/workflows/tests.yaml", "modified"),
        ("src/added.py", "added"),
        ("src/gone.py", "deleted"),
        ("src/same.py", "modified"),
    ]
    from pytest_swarmgate.core.held import held_changes

    assert [h.line() for h in held_changes(sections, skipped)] == [
        ".github/workflows/tests.yaml: CI configuration that may run the gate"
    ]
    included = parse_sections(text, include=["src/**"])[0]
    assert [s.path for s in included] == ["src/added.py", "src/gone.py", "src/same.py"]
    # without -N diff leaves added and deleted files out: an error that says so, not a pass
    proc = subprocess.run(["diff", "-ru", "flask-3.1.3", "flask-3.1.3.new"], cwd=root, capture_output=True)
    with pytest.raises(DiffError, match=r"^input is not a unified diff: line \d+ says a file exists on one side only"):
        parse_sections(proc.stdout.decode())


def test_plain_diff_with_one_sided_entries_only_keeps_git_style_prefix_rule() -> None:
    text = "--- /dev/null\n+++ b/new.c\n@@ -0,0 +1 @@\n+int y;\n--- a/old.c\n+++ /dev/null\n@@ -1 +0,0 @@\n-int x;\n"
    assert [(s.path, s.change) for s in parse_sections(text)[0]] == [("new.c", "added"), ("old.c", "deleted")]


# --- combined diffs and input that cannot be placed --------------------------------------------


@needs_git
def test_a_merge_commits_combined_diff_is_a_one_line_error(quiet_repo: Path) -> None:
    repo = quiet_repo
    (repo / "run.sh").write_text("echo feature\n")
    git(repo, "commit", "-qam", "feature side")
    git(repo, "checkout", "-q", "main")
    (repo / "run.sh").write_text("echo main\n")
    (repo / "new.py").write_text("import os\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "main side")
    git(repo, "merge", "-q", "feature", check=False)  # conflicts, resolved by hand below
    (repo / "run.sh").write_text('echo merged\ntouch "${TMPDIR:-/tmp}/swarmgate-marker"\n')
    git(repo, "commit", "-qam", "merge")
    shown = git(repo, "show", "HEAD")
    assert "diff --cc run.sh" in shown
    for text in (shown, git(repo, "diff", "--cc", "HEAD^1", "HEAD^2", "HEAD"), shown.replace("--cc", "--combined")):
        with pytest.raises(DiffError) as info:
            parse_sections(text)
        message = str(info.value)
        assert message.startswith("input is a combined diff ('diff --cc', as git show prints for a merge commit)")
        assert "git diff BASE...HEAD" in message and "\n" not in message
    # only the combined hunks, without their header: still not passed as empty
    hunks = shown[shown.index("@@@") :]
    with pytest.raises(DiffError, match="combined diff"):
        parse_sections(hunks)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("@@ -1 +1 @@\n-a\n+b\n", "the hunk at line 1 belongs to no file"),
        ("--- a/x\n+++ b/x\n@@ -1,2 +1 @@\n-a\n", "the hunk at line 3 is shorter than its header says"),
        ("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n+c\n@@ -5 +5 @@\n", "the hunk at line 3 is longer than its header"),
        ("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\nprose\n@@ -5 +5 @@\n", "the hunk at line 7 belongs to no file"),
        ("--- /dev/null\n+++ /dev/null\n@@ -0,0 +1 @@\n+a\n", "the entry at line 1 names no file on either side"),
        ("diff --git a/x b/x\n--- a/y\n+++ b/y\n@@ -1 +1 @@\n-a\n+b\n", "do not match its 'diff --git' line"),
        ("Submodule lib 1234567..89abcde:\n  > bump\n", "submodule summary (git diff --submodule=log)"),
    ],
)
def test_input_that_cannot_be_placed_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(DiffError) as info:
        parse_sections(text)
    assert problem in str(info.value) and "\n" not in str(info.value)
