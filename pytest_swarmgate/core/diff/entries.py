"""Reading a diff's lines into file entries: where each entry's headers and hunks are, nothing more.

Every line is either part of an entry, or text between entries (a mail header, a commit
message), or a line the gate refuses because it would hide a change (`DiffError`).
"""

from __future__ import annotations

import bisect
import io
import itertools
import re
from dataclasses import dataclass, field

from .pieces import DiffText

COMBINED_DIFF = (
    "input is a combined diff ('diff --cc', as git show prints for a merge commit), which the gate cannot"
    " review: give a two-sided diff, such as git diff BASE...HEAD or git show --diff-merges=first-parent MERGE"
)
NOT_A_DIFF = "input is not a unified diff: "
# A `diff --git` or `Binary files` line names two paths; the bound is in characters of the decoded
# line. The longest git writes for real paths: two quoted names of Linux's PATH_MAX (4,096 bytes),
# every byte an octal escape (`\303`: 4 characters), with quotes and prefixes: about 32,800.
_PATH_MAX = 4096
MAX_HEADER_LINE = len("diff --git ") + 2 * (4 * _PATH_MAX + len('"a/" '))
# ASCII digits only (`\d` also takes other scripts' digits, which git rejects), at most 10 each:
# a count of 5,000 digits is not a number any diff has, and int() of it would raise.
_NUMBER = "([0-9]{1,10})"
HUNK = re.compile(rf"^@@ -{_NUMBER}(?:,{_NUMBER})? \+{_NUMBER}(?:,{_NUMBER})? @@")
# git's extended header lines, in the order git may write them
_GIT_KEYS = (
    "old mode ", "new mode ", "deleted file mode ", "new file mode ", "copy from ", "copy to ", "rename from ",
    "rename to ", "similarity index ", "dissimilarity index ", "index ",
)  # fmt: skip
# each key by its first word, so a header line costs one lookup and a comparison or two
_KEYS_BY_WORD = {
    word: tuple(k for k in _GIT_KEYS if k.startswith(f"{word} ")) for word in {k.split()[0] for k in _GIT_KEYS}
}
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
_OCTAL = re.compile(r"[0-3][0-7]{2}")
QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
# The timestamp `diff -u` writes after a name, as `git apply` recognises it when spaces, not a
# tab, come before it: `2024-01-01 00:00:00.000000000 +0000` (time and zone optional). Searched
# in the name's last characters only, so a name of a million spaces costs one pass.
_TIMESTAMP = re.compile(
    r" (?:[0-9]{2})?[0-9]{2}-[0-9]{2}-[0-9]{2}"  # date
    r"(?: [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,12})?)?"  # time
    r"(?: [+-][0-9]{2}:?[0-9]{2})?$"  # zone
)
_TIMESTAMP_MAX = 48
# format-patch's signature line and the line that ends a commit message: text, even right after a hunk
_MAIL_LINES = ("-- \n", "---\n")
# `diff -r`'s command line before each file it compares: skipped, when an entry follows it.
_COMMAND = re.compile(r"^diff (?!--git |--cc |--combined )-")

_DIFF_R = " of a change it does not show: make the diff with diff -ruN, or git diff"
# Lines outside an entry that would hide a change if they were skipped as junk: each is refused
# with what it is and how to make a diff the gate can read (patterns match from the line's start;
# `{line}` in a message is the line's number). Junk that is legitimately between entries (mail
# headers, commit messages, `--stat` lines, the format-patch separator and signature) matches none.
_REFUSED: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r".*\x1b\["),
        NOT_A_DIFF + "line {line} holds a terminal colour code (ESC [): make the diff with --no-color",
    ),
    (re.compile(r"^(?:diff --cc |diff --combined |@@@ )"), COMBINED_DIFF),
    (HUNK, NOT_A_DIFF + "the hunk at line {line} belongs to no file ('---'/'+++' lines)"),
    (
        re.compile(r"^@@"),
        NOT_A_DIFF + "line {line} starts like a hunk header but is not one (its numbers are at most 10 ASCII digits)",
    ),
    (
        re.compile(r"^Only in .+: ."),
        NOT_A_DIFF + "line {line} says a file exists on one side only, which diff -r leaves out:"
        " make the diff with diff -ruN, or git diff",
    ),
    (
        re.compile(r"^(?:File .+ while file |Common subdirectories: |(?:Files|Symbolic links) .+ differ$)"),
        NOT_A_DIFF + "line {line} is diff -r's note" + _DIFF_R,
    ),
    (
        re.compile(r"^Submodule .+ [0-9a-f]{7,}\.\.\.?[0-9a-f]{7,}"),
        NOT_A_DIFF + "line {line} is a submodule summary (git diff --submodule=log): make the diff with"
        " --submodule=short",
    ),
    (
        re.compile(r"^(?:\*{15}|\*\*\* [0-9]+(?:,[0-9]+)? \*\*\*\*|--- [0-9]+(?:,[0-9]+)? ----)$"),
        NOT_A_DIFF + "line {line} belongs to a context-format diff (diff -c): make the diff with diff -u, or git diff",
    ),
    (
        re.compile(r"^(?:[0-9]+(?:,[0-9]+)?[acd](?:[0-9]+(?:,[0-9]+)?)?|[ad][0-9]+ [0-9]+)$"),
        NOT_A_DIFF + "line {line} is a normal-format, ed or RCS change command (diff without -u):"
        " make the diff with diff -u, or git diff",
    ),
    (
        re.compile(r"^\* Unmerged path "),
        NOT_A_DIFF + "line {line} names a file with unresolved merge conflicts, whose change git diff does not"
        " show: resolve the conflicts first",
    ),
)
MIXED_FORMS = (
    NOT_A_DIFF + "the entry at line {line} has no 'diff --git' line though other entries do"
    " (a commit message can carry such text): give git's diff alone"
)


# The table as one pattern, so a line between entries costs one match; the table then says which.
_ANY_REFUSED = re.compile("|".join(f"(?:{pattern.pattern})" for pattern, _ in _REFUSED))


class DiffError(Exception):
    """Bad diff input; str(e) is one clear line naming the problem."""


class Lines:
    """The text's lines, split on "\n" only with CRLF read as LF, made a window at a time; where each starts.

    The text is the diff's pieces read as one (`DiffText`): offsets count characters of the whole.

    A list of every line would hold a str object per line, about twice an 80 MB diff again; the
    reader walks forward with a lookahead of a line or two, so only the window it is in and the
    one before are kept. A window is re-made when a line behind them is asked for (rare: the
    offset of a header that started several windows back).
    """

    WINDOW = 1 << 20  # characters a window spans at least (a line is never cut)

    def __init__(self, text: DiffText) -> None:
        self.text = text
        self._count = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
        # each window met so far: its first line and the character it starts at
        self._firsts: list[int] = [0]
        self._chars: list[int] = [0]
        self._kept: dict[int, tuple[list[str], list[int]]] = {}  # window -> its lines and their offsets
        self._base, (self._lines, self._offsets) = 0, self._window(0)

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: int) -> str:
        k = i - self._base
        if 0 <= k < len(self._lines):
            return self._lines[k]
        lines, k = self.at(i)
        return lines[k]

    def at(self, i: int) -> tuple[list[str], int]:
        """The window holding line i and i's index in it, so a loop can walk the window's list."""
        k = i - self._base
        if not 0 <= k < len(self._lines):
            if not 0 <= i < self._count:
                raise IndexError(i)
            w = self._find(i)
            self._base, (self._lines, self._offsets) = self._firsts[w], self._window(w)
            k = i - self._base
        return self._lines, k

    def offset(self, i: int) -> int:
        """The character at which line i starts (the text's length for the line past the last)."""
        if 0 <= i - self._base < len(self._lines):
            return self._offsets[i - self._base]
        if i >= self._count:
            return len(self.text)
        w = self._find(i)
        return self._window(w)[1][i - self._firsts[w]]

    def _find(self, i: int) -> int:
        """The window holding line i; windows are met in order, each made once to find where the next starts."""
        w = bisect.bisect_right(self._firsts, i) - 1
        while w == len(self._firsts) - 1 and i >= self._firsts[w] + len(self._window(w)[0]):
            w += 1
        return w

    def _window(self, w: int) -> tuple[list[str], list[int]]:
        kept = self._kept.get(w)
        if kept is not None:
            return kept
        start = self._chars[w]
        cut = self.text.find("\n", start + self.WINDOW - 1)
        end = len(self.text) if cut == -1 else cut + 1
        raw = list(io.StringIO(self.text[start:end], newline="\n"))
        lines = [ln[:-2] + "\n" if ln.endswith("\r\n") else ln for ln in raw]
        if w + 1 == len(self._chars) and end < len(self.text):
            self._firsts.append(self._firsts[w] + len(raw))
            self._chars.append(end)
        for old in [k for k in self._kept if k not in (w, w - 1)]:
            del self._kept[old]
        self._kept[w] = lines, list(itertools.accumulate(map(len, raw), initial=start))
        return self._kept[w]


@dataclass(frozen=True, slots=True)
class Hunk:
    """Where one hunk's lines are, how many it adds and removes, and the ranges its header names."""

    start: int  # index of its `@@` line
    end: int  # index one past its last line
    added: int
    removed: int
    old: tuple[int, int]  # (start, length) in the old file
    new: tuple[int, int]
    text_end: int  # the character one past its last line (it starts where the one before it ends)


@dataclass(slots=True)
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
    text_start: int = 0  # the characters of its lines, header and hunks, from this one
    head_text_end: int = 0  # to this one for its header
    hunks: list[Hunk] = field(default_factory=list)
    written: tuple[str | None, str | None] | None = None  # its two names as written, once split (names.py)


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


def _name(norm: Lines, i: int, dated: bool) -> str:
    """The file name of the `---`/`+++` line i: up to the tab git and diff put before a timestamp.

    `dated`: a plain diff's line, whose timestamp may follow spaces instead (`git apply` strips it
    there too; in a git entry the name must match the `diff --git` line, so it is kept).
    """
    rest = _body(norm[i])[4:]
    name, tab, _ = rest.partition("\t")
    if not tab:
        name = (_undated(name) if dated else name).rstrip(" ")
    return quoted_name(name, i)


def _undated(name: str) -> str:
    """The name without the timestamp a plain diff may write after it with spaces."""
    tail = name[-_TIMESTAMP_MAX:]
    m = _TIMESTAMP.search(tail)
    return name[: len(name) - len(tail) + m.start()] if m else name


def quoted_name(name: str, i: int) -> str:
    """A name of line i unquoted; one that quotes only a part (`"a/"x`), which git never writes, is refused."""
    if name.startswith('"') and not QUOTED.fullmatch(name):
        raise DiffError(f"{NOT_A_DIFF}line {i + 1} quotes only part of a file name, which git never writes")
    return unquote(name)


def read_entries(norm: Lines) -> list[Entry]:
    """Every file entry of the diff, in order; lines between entries (mail, junk) are left out."""
    entries: list[Entry] = []
    n, i = len(norm), 0
    while i < n:
        _refuse(norm, i)
        opened = _open(norm, i)
        if opened is None:
            i += 1
            continue
        entry, i = opened
        entry.head_end, entry.text_start, entry.head_text_end = i, norm.offset(entry.start), norm.offset(i)
        i = _read_hunks(norm, i, entry)
        entries.append(entry)
    _one_form(entries)
    return entries


def _one_form(entries: list[Entry]) -> None:
    """Refuse plain entries in a diff of git entries: git never writes one, but a commit message can hold one."""
    if any(e.git is not None for e in entries):
        plain = next((e for e in entries if e.git is None), None)
        if plain is not None:
            raise DiffError(MIXED_FORMS.format(line=plain.start + 1))


def _refuse(norm: Lines, i: int) -> None:
    """Raise `DiffError` for a line that must not be skipped as text between entries."""
    line = norm[i]
    if line.startswith(("diff --git ", "Binary file")) and len(line) > MAX_HEADER_LINE:
        raise DiffError(f"{NOT_A_DIFF}line {i + 1} is a {len(line)}-character file header")
    if _ANY_REFUSED.match(line):
        message = next(message for pattern, message in _REFUSED if pattern.match(line))
        raise DiffError(message.format(line=i + 1))
    if _COMMAND.match(line) and (i + 1 == len(norm) or _open(norm, i + 1) is None):
        raise DiffError(f"{NOT_A_DIFF}the diff command line {i + 1} is not followed by a unified diff entry")


def _open(norm: Lines, i: int) -> tuple[Entry, int] | None:
    """The entry whose headers start at line i, and the index past them; None when no entry starts there."""
    line = norm[i]
    if line.startswith("diff --git "):
        return _open_git(norm, i)
    if line.startswith("--- ") and i + 1 < len(norm) and norm[i + 1].startswith("+++ "):
        return Entry(i, None, minus=_name(norm, i, True), plus=_name(norm, i + 1, True)), i + 2
    if line.startswith("Binary file") and _body(line).endswith((" differ", " has changed")):
        return Entry(i, None, binary=_body(line), is_binary=True), i + 1
    return None


def _open_git(norm: Lines, i: int) -> tuple[Entry, int]:
    """A `diff --git` entry's headers: its extended lines, then a binary line or the `---`/`+++` pair."""
    n = len(norm)
    entry = Entry(i, _body(norm[i])[len("diff --git ") :])
    i += 1
    while i < n and (key := _git_key(norm[i])):
        value = _body(norm[i])[len(key) :]
        if key.endswith((" from ", " to ")):
            quoted_name(value, i)  # checked here, where the line's number is known
        entry.info.setdefault(key.strip(), value)
        i += 1
    if i < n and norm[i].startswith(("Binary files ", "GIT binary patch")):
        # git's own binary line names nothing the `diff --git` line does not
        entry.is_binary = True
        i += 1
    elif i + 1 < n and norm[i].startswith("--- ") and norm[i + 1].startswith("+++ "):
        entry.minus, entry.plus = _name(norm, i, False), _name(norm, i + 1, False)
        i += 2
    return entry, i


def _git_key(line: str) -> str | None:
    """The extended header key (`rename from `, `index `, ...) line starts with, else None."""
    keys = _KEYS_BY_WORD.get(line[: line.find(" ")], ())
    return next((k for k in keys if line.startswith(k)), None)


def _read_hunks(norm: Lines, i: int, entry: Entry) -> int:
    """Read the hunks that follow a file header, counting lines against each hunk header."""
    n = len(norm)
    while i < n and (m := HUNK.match(norm[i])):
        start = i
        ranges = (int(m[1]), int(m[2] or 1)), (int(m[3]), int(m[4] or 1))
        i, removed, added = _count(norm, start, ranges[0][1], ranges[1][1])
        while i < n and norm[i].startswith("\\"):  # "\ No newline at end of file" after the last line
            i += 1
        _check_end(norm, i, start, removed + added)
        entry.hunks.append(Hunk(start, i, added, removed, *ranges, norm.offset(i)))
    return i


def _count(norm: Lines, start: int, old: int, new: int) -> tuple[int, int, int]:
    """Count the lines of the hunk at `start` against its `old` and `new` lengths: (index past it, removed, added)."""
    n, i = len(norm), start + 1
    removed = added = 0
    while old > 0 or new > 0:
        if i >= n:
            raise DiffError(f"{NOT_A_DIFF}the hunk at line {start + 1} is shorter than its header says")
        # walk the window's own list: the hunk lines are most of a diff's lines
        lines, first = norm.at(i)
        for k in range(first, len(lines)):
            line = lines[k]
            c = line[:1]
            if c == "+":
                new, added = new - 1, added + 1
            elif c == "-":
                old, removed = old - 1, removed + 1
            elif c in (" ", "\n"):  # an empty line is a context line whose space an editor stripped
                if "{+" in line and _word_diff(line):
                    raise DiffError(
                        f"{NOT_A_DIFF}line {i + 1} holds --word-diff markup: make the diff without --word-diff"
                    )
                old, new = old - 1, new - 1
            elif c != "\\":
                raise DiffError(f"{NOT_A_DIFF}the hunk at line {start + 1} is shorter than its header says")
            if old < 0 or new < 0:
                raise DiffError(f"{NOT_A_DIFF}the hunk at line {start + 1} is longer than its header says")
            i += 1
            if old <= 0 and new <= 0:
                break
    return i, removed, added


def _check_end(norm: Lines, i: int, start: int, changed: int) -> None:
    """Refuse a hunk that changes nothing, or one followed by a line that reads as one of its own."""
    if not changed:
        raise DiffError(f"{NOT_A_DIFF}the hunk at line {start + 1} changes no line (a --word-diff diff?)")
    # a hunk line right after the hunk (`~` ends a line of --word-diff=porcelain) makes it longer
    after = norm[i] if i < len(norm) else ""
    if after[:1] in ("+", "-", " ", "~") and after not in _MAIL_LINES and _open(norm, i) is None:
        raise DiffError(f"{NOT_A_DIFF}the hunk at line {start + 1} is longer than its header says")


def _word_diff(line: str) -> bool:
    """Whether a context line holds `--word-diff` markup of an added word (braces and plus signs round it); one pass.

    The markup is never written whole in this file: a context line holding it would make the
    gate refuse a diff of this file.
    """
    k = line.find("{+")
    return k != -1 and line.find("+}", k + 2) != -1
