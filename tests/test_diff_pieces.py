"""The diff read a file entry at a time (`DiffText`): the same characters, hash, files and errors as read whole."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from pytest_swarmgate.core.diff import (
    DiffError,
    DiffText,
    FileDiff,
    decode,
    diff_sha256,
    parse_diff,
    read_diff,
    read_diff_file,
    sections_of,
)

FIXTURES = sorted((Path(__file__).parent.parent / "fixtures").rglob("*.diff"))


def modified(path: str, line: str = "b") -> str:
    head = f"diff --git a/{path} b/{path}\nindex 1111111..2222222 100644\n"
    return f"{head}--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-a\n+{line}\n"


# Entries and text between them, each as the bytes a pull request could send: wide and invalid
# characters, CRLF, `\ No newline`, quoted and alike names, binary patches, plain diffs, mail.
SNIPPETS = [
    modified("src/app.py").encode(),
    modified("emoji.py", "smile = '\U0001f600'").encode(),
    modified("cjk.py", "\u65e5\u672c\u8a9e").encode(),
    modified("latin.py", "caf\u00e9").encode(),
    modified("x\x80.py").encode().replace(b"\xc2\x80", b"\x80"),  # a name whose byte is not UTF-8
    modified("bad.py", "@").encode().replace(b"@", b"\xe6\x97"),  # a sequence cut short
    modified("crlf.py").encode().replace(b"\n", b"\r\n"),
    b"diff --git a/n.txt b/n.txt\n--- a/n.txt\n+++ b/n.txt\n@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+b\n"
    b"\\ No newline at end of file\n",
    b'diff --git "a/sp\\303\\251 \\360\\237\\230\\200.py" "b/sp\\303\\251 \\360\\237\\230\\200.py"\n'
    b"new file mode 100644\n--- /dev/null\n"
    b'+++ "b/sp\\303\\251 \\360\\237\\230\\200.py"\n@@ -0,0 +1 @@\n+x\n',
    b"diff --git a/tool.so b/tool.so\nnew file mode 100755\nindex 0000000..1111111\nGIT binary patch\n"
    b"literal 4\nLcmZQzWMT#Y01f~L\n\nliteral 0\nHcmV?d00001\n\n",
    b"diff --git a/logo.png b/logo.png\nindex 1111111..2222222 100644\nBinary files a/logo.png and b/logo.png differ\n",
    b"diff --git a/old.py b/new\xf0\x9f\x98\x80.py\nsimilarity index 100%\nrename from old.py\n"
    b"rename to new\xf0\x9f\x98\x80.py\n",
    b"commit 0123456789abcdef\nAuthor: A <a@example.com>\n\n    a message \xf0\x9f\x98\x80\n\n",
    b"From 0123456789abcdef Mon Sep 17 00:00:00 2001\nSubject: [PATCH] x\n\n---\n",
    b"-- \n2.40.0\n\n",
    b"\xef\xbb\xbf",
]
# Entries that end the parse in an error (a plain entry among git ones, a hunk cut short, ...): rarer in a mix.
TRAPS = [
    b"--- a/plain.py\n+++ b/plain.py\n@@ -1 +1 @@\n-a\n+\xf0\x9f\x98\x80\n",
    b"diff --git a/short.py b/short.py\n--- a/short.py\n+++ b/short.py\n@@ -1,3 +1,3 @@\n-a\n+b\n",
    b"diff -ruN a/x b/x\n",
]


def parsed(text: str | DiffText) -> object:
    """What the plan reads of a diff: its files and both views of its sections, or the error's line."""
    try:
        files = parse_diff(text)
    except DiffError as exc:
        return f"DiffError: {exc}"
    return files, sections_of(files, budget=40), sections_of(files)


def test_the_pieces_decode_to_the_characters_and_hash_of_the_whole() -> None:
    rng = random.Random(21)
    alphabet = [
        b"diff --git a/x b/x\n",
        b"\n",
        b"\r\n",
        b"\xe6\x97",
        b"\xf0\x9f\x98\x80",
        b"\xff",
        b"\xef\xbb\xbf",
        b"a",
    ]
    for _ in range(3000):
        data = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        text, whole = DiffText.decode(data), decode(data)
        assert (str(text), len(text), text.sha256) == (whole, len(whole), diff_sha256(whole)), data
        a, b = sorted(rng.randint(0, len(whole)) for _ in range(2))
        assert text[a:b] == whole[a:b] and text.find("\n", a) == whole.find("\n", a)
        assert (text.count("\n"), text.endswith("\n"), text.isspace()) == (
            whole.count("\n"),
            whole.endswith("\n"),
            whole.isspace(),
        )


@pytest.mark.parametrize("seed", range(60))
def test_any_mix_of_entries_parses_as_it_does_whole(seed: int) -> None:
    rng = random.Random(seed)
    data = b"".join(rng.choice(TRAPS if rng.random() < 0.05 else SNIPPETS) for _ in range(rng.randint(1, 8)))
    assert parsed(DiffText.decode(data)) == parsed(decode(data))


def test_a_plain_diff_parses_as_it_does_whole() -> None:
    data = TRAPS[0] + b"--- a/second.py\n+++ b/second.py\n@@ -1 +1 @@\n-a\n+b\n"
    assert parsed(DiffText.decode(data)) == parsed(decode(data))
    assert len(parse_diff(DiffText.decode(data))) == 2


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (SNIPPETS[4] + SNIPPETS[0] + SNIPPETS[4], "the entries at lines 1 and 15 name"),  # names that decode alike
        (SNIPPETS[0] + TRAPS[1], "the hunk at line 11 is shorter than its header says"),
        (SNIPPETS[0] + SNIPPETS[1] + TRAPS[0], "the entry at line 15 has no 'diff --git' line"),
    ],
)
def test_a_refusal_says_the_line_it_says_whole(data: bytes, problem: str) -> None:
    assert problem in str(parsed(DiffText.decode(data)))
    assert parsed(DiffText.decode(data)) == parsed(decode(data))


def test_a_command_line_before_a_git_entry_is_read_across_pieces() -> None:
    data = SNIPPETS[0] + TRAPS[2] + SNIPPETS[1]  # the entry that follows it is the next piece
    assert len(DiffText.decode(data).pieces) == 2
    assert parsed(DiffText.decode(data)) == parsed(decode(data)) and not isinstance(parsed(decode(data)), str)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_every_fixture_parses_as_it_does_whole(path: Path) -> None:
    data = path.read_bytes()
    assert parsed(DiffText.decode(data)) == parsed(decode(data))


def test_one_emoji_widens_its_own_file_only_and_each_file_is_its_piece() -> None:
    files = [modified(f"f{i}.py") for i in range(50)]
    files[7] = modified("f7.py", "\U0001f600")
    text = DiffText.decode("".join(files).encode())
    assert [sys.getsizeof(p) > 4 * len(p) for p in text.pieces] == [i == 7 for i in range(50)]
    by_path: dict[str, FileDiff] = {f.path: f for f in parse_diff(text)}
    # the file texts are the pieces themselves, not copies of them
    assert all(by_path[f"f{i}.py"].text is piece for i, piece in enumerate(text.pieces))


def test_the_gate_reads_a_diff_file_as_pieces(tmp_path: Path) -> None:
    path = tmp_path / "change.diff"
    path.write_bytes(b"\xef\xbb\xbf" + SNIPPETS[1] + SNIPPETS[4] + SNIPPETS[0])
    text = read_diff(str(path))
    assert len(text.pieces) == 3
    assert (str(text), text.sha256) == (read_diff_file(str(path)), diff_sha256(read_diff_file(str(path))))
