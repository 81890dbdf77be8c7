"""Reading a diff's lines into file entries: where each entry's headers and hunks are, nothing more.

Every line is either part of an entry, or text between entries (a mail header, a commit
message), or a line the gate refuses because it would hide a change (`DiffError`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

COMBINED_DIFF = (
    "input is a combined diff ('diff --cc', as git show prints for a merge commit), which the gate cannot"
    " review: give a two-sided diff, such as git diff BASE...HEAD or git show --diff-merges=first-parent MERGE"
)
NOT_A_DIFF = "input is not a unified diff: "
# a `diff --git` or `Binary files` line names two paths; real ones stay far below this
MAX_HEADER_LINE = 8192
HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
# git's extended header lines, in the order git may write them
_GIT_KEYS = (
    "old mode ", "new mode ", "deleted file mode ", "new file mode ", "copy from ", "copy to ", "rename from ",
    "rename to ", "similarity index ", "dissimilarity index ", "index ",
)  # fmt: skip
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
_OCTAL = re.compile(r"[0-3][0-7]{2}")

# Lines outside an entry that would hide a change if they were skipped as junk: each is refused
# with what it is and how to make a diff the gate can read. `{line}` is the line's number.
_REFUSED: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(?:diff --cc |diff --combined |@@@ )"), COMBINED_DIFF),
    (HUNK, NOT_A_DIFF + "the hunk at line {line} belongs to no file ('---'/'+++' lines)"),
    (
        re.compile(r"^Only in .+: ."),
        NOT_A_DIFF + "line {line} says a file exists on one side only, which diff -r leaves out:"
        " make the diff with diff -ruN, or git diff",
    ),
    (
        re.compile(r"^Submodule .+ [0-9a-f]{7,}\.\.\.?[0-9a-f]{7,}"),
        NOT_A_DIFF + "line {line} is a submodule summary (git diff --submodule=log): make the diff with"
        " --submodule=short",
    ),
)


class DiffError(Exception):
    """Bad diff input; str(e) is one clear line naming the problem."""


@dataclass(frozen=True)
class Hunk:
    """Where one hunk's lines are, how many it adds and removes, and the ranges its header names."""

    start: int  # index of its `@@` line
    end: int  # index one past its last line
    added: int
    removed: int
    old: tuple[int, int]  # (start, length) in the old file
    new: tuple[int, int]


@dataclass
class Entry:
    """One file entry as written: where its lines are and what its headers say."""

    start: int  # index of its first line
    git: str | None  # the names part of its `diff --git` line; None for a plain unified diff
    info: dict[str, str] = field(default_factory=dict)  # git's extended header lines
    minus: str | None = None  # the name on the `---` line, as written (prefix and all)
    plus: str | None = None
    binary: str | None = None  # the `Binary files ... differ` line of a plain diff
    is_binary: bool = False
    head_end: int = 0
    hunks: list[Hunk] = field(default_factory=list)


def unquote(name: str) -> str:
    """Undo git's C-style quoting of a file name ("a/sp\\303\\251" -> a/spé)."""
    if len(name) < 2 or not (name.startswith('"') and name.endswith('"')):
        return name
    out, body, i = bytearray(), name[1:-1], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in _C_ESCAPES:
                out.append(_C_ESCAPES[nxt])
                i += 2
                continue
            if _OCTAL.fullmatch(body[i + 1 : i + 4]):
                out.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
        out += c.encode("utf-8", "surrogatepass")
        i += 1
    return out.decode("utf-8", "replace")


def _body(line: str) -> str:
    return line[:-1] if line.endswith("\n") else line


def _name(line: str) -> str:
    """The file name of a `---`/`+++` line: up to the tab git and diff put before a timestamp."""
    rest = _body(line)[4:]
    name, tab, _ = rest.partition("\t")
    return unquote(name if tab else name.rstrip(" "))


def read_entries(norm: list[str]) -> list[Entry]:
    """Every file entry of the diff, in order; lines between entries (mail, junk) are left out."""
    entries: list[Entry] = []
    n, i = len(norm), 0
    while i < n:
        _refuse(norm[i], i)
        opened = _open(norm, i)
        if opened is None:
            i += 1
            continue
        entry, i = opened
        entry.head_end = i
        i = _read_hunks(norm, i, entry)
        entries.append(entry)
    return entries


def _refuse(line: str, i: int) -> None:
    """Raise `DiffError` for a line that must not be skipped as text between entries."""
    if line.startswith(("diff --git ", "Binary file")) and len(line) > MAX_HEADER_LINE:
        raise DiffError(f"{NOT_A_DIFF}line {i + 1} is a {len(line)}-character file header")
    for pattern, message in _REFUSED:
        if pattern.match(line):
            raise DiffError(message.format(line=i + 1))


def _open(norm: list[str], i: int) -> tuple[Entry, int] | None:
    """The entry whose headers start at line i, and the index past them; None when no entry starts there."""
    line = norm[i]
    if line.startswith("diff --git "):
        return _open_git(norm, i)
    if line.startswith("--- ") and i + 1 < len(norm) and norm[i + 1].startswith("+++ "):
        return Entry(i, None, minus=_name(line), plus=_name(norm[i + 1])), i + 2
    if line.startswith("Binary file") and _body(line).endswith((" differ", " has changed")):
        return Entry(i, None, binary=_body(line), is_binary=True), i + 1
    return None


def _open_git(norm: list[str], i: int) -> tuple[Entry, int]:
    """A `diff --git` entry's headers: its extended lines, then a binary line or the `---`/`+++` pair."""
    n = len(norm)
    entry = Entry(i, _body(norm[i])[len("diff --git ") :])
    i += 1
    while i < n and norm[i].startswith(_GIT_KEYS):
        key = next(k for k in _GIT_KEYS if norm[i].startswith(k))
        entry.info.setdefault(key.strip(), _body(norm[i])[len(key) :])
        i += 1
    if i < n and norm[i].startswith(("Binary files ", "GIT binary patch")):
        # git's own binary line names nothing the `diff --git` line does not
        entry.is_binary = True
        i += 1
    elif i + 1 < n and norm[i].startswith("--- ") and norm[i + 1].startswith("+++ "):
        entry.minus, entry.plus = _name(norm[i]), _name(norm[i + 1])
        i += 2
    return entry, i


def _read_hunks(norm: list[str], i: int, entry: Entry) -> int:
    """Read the hunks that follow a file header, counting lines against each hunk header."""
    n = len(norm)
    while i < n and (m := HUNK.match(norm[i])):
        start = i
        ranges = (int(m[1]), int(m[2] or 1)), (int(m[3]), int(m[4] or 1))
        old, new = ranges[0][1], ranges[1][1]
        added = removed = 0
        i += 1
        while old > 0 or new > 0:
            c = norm[i][0] if i < n else ""
            if c == "+":
                new, added = new - 1, added + 1
            elif c == "-":
                old, removed = old - 1, removed + 1
            elif c in (" ", "\n"):  # an empty line is a context line whose space an editor stripped
                old, new = old - 1, new - 1
            elif c != "\\":
                raise DiffError(f"{NOT_A_DIFF}the hunk at line {start + 1} is shorter than its header says")
            if old < 0 or new < 0:
                raise DiffError(f"{NOT_A_DIFF}the hunk at line {start + 1} is longer than its header says")
            i += 1
        while i < n and norm[i].startswith("\\"):  # "\ No newline at end of file" after the last line
            i += 1
        entry.hunks.append(Hunk(start, i, added, removed, *ranges))
    return i
