"""Diff source and sectioning: read a unified diff, split it into sections to review.

Pure apart from reading the diff source (a file, stdin or `git diff`): no network, no
pytest. The diff is untrusted input written by whoever opened the pull request, so every
way it can be malformed ends in one clear `DiffError`, never a traceback, and no path in
it is ever used to touch the filesystem.

The parser is this module's own, not unidiff's: it reads git's extended headers, quoted and
unquoted names with spaces (`Plan b/notes.md`, where unidiff's greedy header match fails),
any prefixes (`a/` `b/`, none, custom, `diff -ruN` trees), and it counts hunk lines, so a
`---` line inside a hunk stays a removed line. `parse_diff` reads the text once;
`sections_of` applies filters and the budget to the result as often as the caller needs.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import io
import os
import posixpath
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .choices import ChangeKind, NotReviewedKind
from .model import NotReviewed, Section
from .text import one_line

__all__ = [
    "MEDIA_EXTENSIONS",
    "DiffError",
    "FileDiff",
    "diff_sha256",
    "git_diff",
    "glob_match",
    "is_media",
    "parse_diff",
    "parse_sections",
    "read_diff_file",
    "sections_of",
]

# The only files the gate leaves unjudged: images, audio, video and fonts, by extension (any
# case), when their content is binary or they are only renamed or copied. They carry no code a
# voter could read. Everything else binary is held (core/held.py), so a `.so`, a `.pyc` or a
# script with one NUL byte cannot pass unread. SVG is text and reviewed; PDF and compressed SVG
# can carry scripts, so they are not on the list. The README's "What gets reviewed" repeats it.
MEDIA_EXTENSIONS = frozenset({
    ".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".ico", ".tif", ".tiff", ".avif", ".heic", ".psd", ".xcf",
    ".mp3", ".wav", ".ogg", ".oga", ".flac", ".m4a", ".aac", ".opus",
    ".mp4", ".webm", ".mov", ".avi", ".mkv", ".m4v",
    ".woff", ".woff2", ".ttf", ".otf", ".eot",
})  # fmt: skip

COMBINED_DIFF = (
    "input is a combined diff ('diff --cc', as git show prints for a merge commit), which the gate cannot"
    " review: give a two-sided diff, such as git diff BASE...HEAD or git show --diff-merges=first-parent MERGE"
)
DEV_NULL = "/dev/null"
NOT_A_DIFF = "input is not a unified diff: "
SUBMODULE_MODE = "160000"
SYMLINK_MODE = "120000"
# a `diff --git` or `Binary files` line names two paths; real ones stay far below this
MAX_HEADER_LINE = 8192
# caps the ways a `diff --git` line with spaces is tried, so a hostile line stays cheap
_MAX_TRIES = 32
_GIT_PREFIXES = ("a/", "b/")
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
# git's extended header lines, in the order git may write them
_GIT_KEYS = (
    "old mode ", "new mode ", "deleted file mode ", "new file mode ", "copy from ", "copy to ", "rename from ",
    "rename to ", "similarity index ", "dissimilarity index ", "index ",
)  # fmt: skip
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_ONLY_IN = re.compile(r"^Only in .+: .")
_SUBMODULE_LOG = re.compile(r"^Submodule .+ [0-9a-f]{7,}\.\.\.?[0-9a-f]{7,}")
_SUBPROJECT = re.compile(r"^[-+ ]Subproject commit ([0-9a-f]{7,64})(-dirty)?$")
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
_EXECUTABLE = {("644", "755"): " (made executable)", ("755", "644"): " (no longer executable)"}


class DiffError(Exception):
    """Bad diff input; str(e) is one clear line naming the problem."""


def decode(data: bytes) -> str:
    """Decode diff bytes as UTF-8, replacing invalid bytes.

    "replace" rather than "surrogateescape": the text travels to JSON reports, terminals
    and the API, which all need valid Unicode; a lone surrogate would crash them later.
    A leading byte-order mark is dropped so the first `diff --git` line still parses.
    """
    return data.decode("utf-8-sig", errors="replace")


def read_diff_file(path: str) -> str:
    """Read a diff from a file, or from stdin when path is "-"."""
    try:
        if path == "-":
            stream = sys.stdin
            if stream is None:
                raise DiffError("cannot read diff file -: stdin is not available")
            buffer = getattr(stream, "buffer", None)
            # a real stdin has a byte buffer; a replaced one (StringIO) only gives text
            if buffer is not None:
                return decode(buffer.read())
            return stream.read()
        with open(path, "rb") as f:
            return decode(f.read())
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DiffError(f"cannot read diff file {one_line(path)}: {one_line(reason)}") from None


def _git(args: list[str], cwd: str | os.PathLike[str]) -> subprocess.CompletedProcess[bytes]:
    """Run git with list arguments (never a shell) and capture its output."""
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise DiffError("git is not installed or not on PATH") from None
    except OSError as exc:
        raise DiffError(f"cannot run git in {os.fspath(cwd)}: {exc.strerror or exc}") from None


def _first_line(data: bytes) -> str:
    lines = [ln for ln in decode(data).splitlines() if ln.strip()]
    return one_line(lines[0]) if lines else "no error message"


def git_diff(base: str, cwd: str | os.PathLike[str]) -> str:
    """The diff of HEAD against its merge base with `base` (`git diff base...HEAD`)."""
    if not base or base.startswith("-") or "\0" in base or base != base.strip():
        # a leading "-" would be read by git as an option, not a revision
        raise DiffError(f"invalid git ref {one_line(repr(base))}")
    if not os.path.isdir(cwd):
        raise DiffError(f"cannot run git in {os.fspath(cwd)}: no such directory")
    args = [
        # unicode names as UTF-8 instead of octal escapes (quoted names are still parsed)
        "-c", "core.quotepath=off",
        "diff", "--no-color", "--no-ext-diff", "--no-textconv", "--find-renames",
        # pin what user config could change: prefixes, relative paths, submodule format
        "--src-prefix=a/", "--dst-prefix=b/", "--no-relative", "--submodule=short",
        f"{base}...HEAD", "--",
    ]  # fmt: skip
    proc = _git(args, cwd)
    if proc.returncode == 0:
        return decode(proc.stdout)
    reason = _first_line(proc.stderr)
    # tell the usual failures apart without parsing git's (translated) messages
    if _git(["rev-parse", "--git-dir"], cwd).returncode != 0:
        raise DiffError(f"not a git repository: {os.fspath(cwd)}")
    if _git(["rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], cwd).returncode != 0:
        raise DiffError(f"unknown git ref '{one_line(base)}': {reason}")
    raise DiffError(f"git diff {one_line(base)}...HEAD failed: {reason}")


def diff_sha256(text: str) -> str:
    """Hex sha256 of the diff text encoded as UTF-8."""
    # surrogatepass: hashing must never fail, even on text that did not come from _decode
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def glob_match(path: str, pattern: str) -> bool:
    """Whether path matches an fnmatch glob (case-sensitive).

    As in fnmatch, `*` also matches `/`, so `*.py` matches Python files in every directory;
    `**/` matches zero or more directories, so `**/*.py` matches `a.py` and `x/y/a.py` and
    `src/**/test_*.py` matches `src/test_a.py`.
    """
    if fnmatch.fnmatchcase(path, pattern):
        return True
    i = pattern.find("**/")
    while i != -1:
        if (i == 0 or pattern[i - 1] == "/") and glob_match(path, pattern[:i] + pattern[i + 3 :]):
            return True
        i = pattern.find("**/", i + 1)
    return False


def _unquote(name: str) -> str:
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
            if re.fullmatch(r"[0-3][0-7]{2}", body[i + 1 : i + 4]):
                out.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
        out += c.encode("utf-8", "surrogatepass")
        i += 1
    return out.decode("utf-8", "replace")


# --- reading the entries -------------------------------------------------------------------


@dataclass(frozen=True)
class _Hunk:
    """Where one hunk's lines are, how many it adds and removes, and the ranges its header names."""

    start: int  # index of its `@@` line
    end: int  # index one past its last line
    added: int
    removed: int
    old: tuple[int, int]  # (start, length) in the old file
    new: tuple[int, int]


@dataclass
class _Entry:
    """One file entry as written: where its lines are and what its headers say."""

    start: int  # index of its first line
    git: str | None  # the names part of its `diff --git` line; None for a plain unified diff
    info: dict[str, str] = field(default_factory=dict)  # git's extended header lines
    minus: str | None = None  # the name on the `---` line, as written (prefix and all)
    plus: str | None = None
    binary: str | None = None  # the `Binary files ... differ` line of a plain diff
    is_binary: bool = False
    head_end: int = 0
    hunks: list[_Hunk] = field(default_factory=list)


def _body(line: str) -> str:
    return line[:-1] if line.endswith("\n") else line


def _name(line: str) -> str:
    """The file name of a `---`/`+++` line: up to the tab git and diff put before a timestamp."""
    rest = _body(line)[4:]
    name, tab, _ = rest.partition("\t")
    return _unquote(name if tab else name.rstrip(" "))


def _read(norm: list[str]) -> list[_Entry]:
    """Every file entry of the diff, in order; lines between entries (mail, junk) are left out."""
    entries: list[_Entry] = []
    n, i = len(norm), 0
    while i < n:
        line = norm[i]
        if line.startswith(("diff --git ", "Binary file")) and len(line) > MAX_HEADER_LINE:
            raise DiffError(f"{NOT_A_DIFF}line {i + 1} is a {len(line)}-character file header")
        if line.startswith(("diff --cc ", "diff --combined ", "@@@ ")):
            raise DiffError(COMBINED_DIFF)
        if line.startswith("diff --git "):
            entry = _Entry(i, _body(line)[len("diff --git ") :])
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
        elif line.startswith("--- ") and i + 1 < n and norm[i + 1].startswith("+++ "):
            entry = _Entry(i, None, minus=_name(line), plus=_name(norm[i + 1]))
            i += 2
        elif line.startswith("Binary file") and _body(line).endswith((" differ", " has changed")):
            entry = _Entry(i, None, binary=_body(line), is_binary=True)
            i += 1
        elif _HUNK.match(line):
            raise DiffError(f"{NOT_A_DIFF}the hunk at line {i + 1} belongs to no file ('---'/'+++' lines)")
        elif _ONLY_IN.match(line):
            raise DiffError(
                f"{NOT_A_DIFF}line {i + 1} says a file exists on one side only, which diff -r"
                " leaves out: make the diff with diff -ruN, or git diff"
            )
        elif _SUBMODULE_LOG.match(line):
            raise DiffError(
                f"{NOT_A_DIFF}line {i + 1} is a submodule summary (git diff --submodule=log):"
                " make the diff with --submodule=short"
            )
        else:
            i += 1
            continue
        entry.head_end = i
        i = _read_hunks(norm, i, entry)
        entries.append(entry)
    return entries


def _read_hunks(norm: list[str], i: int, entry: _Entry) -> int:
    """Read the hunks that follow a file header, counting lines against each hunk header."""
    n = len(norm)
    while i < n and (m := _HUNK.match(norm[i])):
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
        entry.hunks.append(_Hunk(start, i, added, removed, *ranges))
    return i


# --- names and prefixes ----------------------------------------------------------------------


def _tail(left: str, right: str) -> str | None:
    """The longest path both names end with at a component boundary (left = P + X, right = Q + X)."""
    if left == right:
        return left
    j, tries = 0, 0
    while j != -1 and tries < _MAX_TRIES:
        x = right[j:]
        if x and left.endswith(x) and (len(left) == len(x) or left[-len(x) - 1] == "/"):
            return x
        j = right.find("/", j) + 1 or -1
        tries += 1
    return None


def _best_split(text: str, sep: str) -> tuple[str, str] | None:
    """Split `text` at one `sep` into two names of one path under two prefixes, preferring the longest path."""
    middle = (len(text) - len(sep)) // 2
    if text[middle : middle + len(sep)] == sep and _tail(text[:middle], text[middle + len(sep) :]) is not None:
        return text[:middle], text[middle + len(sep) :]  # equal prefixes (a/ b/, none): the usual case
    best: tuple[int, str, str] | None = None
    k, tries = text.find(sep), 0
    while k != -1 and tries < _MAX_TRIES:
        left, right = text[:k], text[k + len(sep) :]
        x = _tail(left, right)
        if x is not None and (best is None or len(x) > best[0]):
            best = (len(x), left, right)
        k, tries = text.find(sep, k + 1), tries + 1
    return (best[1], best[2]) if best else None


def _git_names(entry: _Entry, moved: tuple[str, str] | None) -> tuple[str, str] | None:
    """The old and new names of a `diff --git` line, prefixes included; None when they cannot be told apart."""
    s = entry.git or ""
    if s.startswith('"'):
        m = _QUOTED.match(s)
        if m is None or s[m.end() : m.end() + 1] != " ":
            return None
        return _unquote(m.group()), _unquote(s[m.end() + 1 :])
    if s.endswith('"') and (k := s.find(' "')) != -1:
        return s[:k], _unquote(s[k + 1 :])
    # unquoted names may hold spaces (and " b/"): split where the known names say
    if entry.plus not in (None, DEV_NULL) and s.endswith(f" {entry.plus}"):
        return s[: -len(entry.plus) - 1], entry.plus
    if entry.minus not in (None, DEV_NULL) and s.startswith(f"{entry.minus} "):
        return entry.minus, s[len(entry.minus) + 1 :]
    if moved is not None:
        old, new = moved
        k = s.find(f"{old} ")
        while k != -1 and s.endswith(new):
            left, right = s[: k + len(old)], s[k + len(old) + 1 :]
            if _tail(left, old) == old and _tail(right, new) == new:
                return left, right
            k = s.find(f"{old} ", k + 1)
        return None
    return _best_split(s, " ")


def _written_names(entry: _Entry, moved: tuple[str, str] | None) -> tuple[str | None, str | None]:
    """The entry's old and new names as written, prefixes included ("/dev/null" kept)."""
    if entry.git is not None:
        names = _git_names(entry, moved)
        if names is not None:
            for side, said in zip(names, (entry.minus, entry.plus), strict=True):
                if said not in (None, DEV_NULL) and said != side:
                    raise DiffError(
                        f"{NOT_A_DIFF}the '---'/'+++' names of the entry at line {entry.start + 1}"
                        " do not match its 'diff --git' line"
                    )
            return names
        if entry.minus is None and moved is None:
            line = entry.start + 1
            raise DiffError(f"{NOT_A_DIFF}cannot tell the two file names of the 'diff --git' line {line} apart")
        return entry.minus, entry.plus
    if entry.binary is not None:
        body = entry.binary[len("Binary files ") : -len(" differ")] if entry.binary.endswith(" differ") else ""
        if not body:  # hg: "Binary file NAME has changed"
            name = entry.binary[len("Binary file ") : -len(" has changed")]
            return name, name
        first, _, second = body.partition(" and ")
        if not (first and second) or "\t" in body:
            # diff and git never write such a line (git quotes a tab in a name): a change it hides is not passed
            raise DiffError(f"{NOT_A_DIFF}cannot read the two file names of the binary file line {entry.start + 1}")
        return _best_split(body, " and ") or (first, second)
    return entry.minus, entry.plus


def _prefixes(old: str | None, new: str | None, moved: tuple[str, str] | None) -> tuple[str, str] | None:
    """The (old, new) prefixes one entry shows, when both its names are known."""
    if old in (None, DEV_NULL) or new in (None, DEV_NULL):
        return None
    if moved is not None:
        if _tail(old, moved[0]) == moved[0] and _tail(new, moved[1]) == moved[1]:
            return old[: len(old) - len(moved[0])], new[: len(new) - len(moved[1])]
        return None
    x = _tail(old, new)
    return None if x is None else (old[: len(old) - len(x)], new[: len(new) - len(x)])


def _strip(name: str | None, prefix: str) -> str | None:
    if name is None or name == DEV_NULL:
        return None
    return name[len(prefix) :] if prefix and name.startswith(prefix) and len(name) > len(prefix) else name


# --- what each entry is ----------------------------------------------------------------------


@dataclass(frozen=True)
class FileDiff:
    """One file entry of the diff, parsed once: its repository paths, its change and its text."""

    path: str
    old_path: str | None  # the other side's path when it differs (a rename or copy)
    change: ChangeKind
    header: str  # the gate's note on what changed (when the lines do not say it), then the header lines
    hunks: tuple[tuple[str, int, int], ...]  # each hunk's text, lines added and lines removed
    # why it is never sent to the panel (media and binary files): the kind the gate decides on, and its words
    unread: tuple[NotReviewedKind, str] | None = None


def is_media(path: str) -> bool:
    """Whether a path names an image, audio, video or font file by its extension (any case)."""
    return posixpath.splitext(path)[1].lower() in MEDIA_EXTENSIONS


def media_only(*paths: str | None) -> bool:
    """Whether every path named is a media file: a binary renamed from `tool.so` to `logo.png` is not."""
    named = [p for p in paths if p]
    return bool(named) and all(is_media(p) for p in named)


def _mode(entry: _Entry, side: int) -> str | None:
    """The file mode of the old (0) or new (1) side, from git's header lines."""
    own = entry.info.get(("old mode", "new mode")[side]) or entry.info.get(("deleted file mode", "new file mode")[side])
    if own:
        return own
    index = entry.info.get("index", "").split(" ")
    return index[1] if len(index) == 2 else None


def _side_text(lines: list[str], sign: str) -> str:
    return "".join(ln[1:] for ln in lines if ln.startswith(sign)).rstrip("\n")


def _facts(
    entry: _Entry, raw: list[str], old: str | None, new: str | None, kind: str | None
) -> tuple[list[str], tuple[NotReviewedKind, str] | None]:
    """What the entry changes that its text lines do not show, for the note; and why it is unread, if it is."""
    facts: list[str] = []
    old_mode, new_mode = _mode(entry, 0), _mode(entry, 1)
    special = {SYMLINK_MODE, SUBMODULE_MODE} & {old_mode, new_mode}
    lines = [ln.rstrip("\r\n") for h in entry.hunks for ln in raw[h.start + 1 : h.end]] if special else []
    textless = not entry.hunks and not entry.is_binary
    if textless:
        facts.append("no line of text changed")
    # a hunk's file header shows a rename or a mode change already: the note is for entries without one
    if kind is not None and old and new and not entry.hunks:
        similarity = entry.info.get("similarity index")
        verb = {"rename": "renames", "copy": "copies"}[kind]
        facts.append(f"{verb} {one_line(old)} to {one_line(new)}" + (f" (similarity {similarity})" * bool(similarity)))
    mode_change = False
    if old_mode and new_mode and old_mode != new_mode and old and new and not entry.hunks:
        mode_change = True
        facts.append(f"file mode {old_mode} -> {new_mode}" + _EXECUTABLE.get((old_mode[-3:], new_mode[-3:]), ""))
    subprojects = [m for ln in lines if (m := _SUBPROJECT.match(ln))]
    if SYMLINK_MODE in (old_mode, new_mode):
        before, after = _side_text(lines, "-") or "(none)", _side_text(lines, "+") or "(none)"
        facts.append(f"symbolic link target {one_line(repr(before))} -> {one_line(repr(after))}")
    elif SUBMODULE_MODE in (old_mode, new_mode) and lines and len(subprojects) == len(lines):
        before = next((m.group(1) for m in subprojects if m.string[0] == "-"), "none")
        after = next((m.group(1) for m in subprojects if m.string[0] == "+"), "none")
        facts.append(f"submodule commit {before} -> {after}")
    elif textless and kind is None and not mode_change:
        what = "adds an empty file" if old is None else "deletes an empty file" if new is None else "shows no change"
        facts.append(what + (f" (mode {new_mode})" if old is None and new_mode else ""))
    if entry.is_binary and new is None:
        facts.append(f"deletes the binary file {one_line(old or '')} (its content is not shown)")
    media = media_only(old, new)
    if media and entry.is_binary:
        return facts, ("media", "media file: binary content is not reviewed")
    if media and textless and kind is not None and not mode_change:
        return facts, ("media", f"media file: pure {kind} from {old}")
    if entry.is_binary and new is not None:
        return facts, ("binary", "binary file")
    return facts, None


def _moved(entry: _Entry) -> tuple[tuple[str, str] | None, str | None]:
    """((old path, new path), "rename" or "copy") from git's own lines, which carry no prefix; else (None, None)."""
    for kind in ("rename", "copy"):
        if f"{kind} from" in entry.info and f"{kind} to" in entry.info:
            return (_unquote(entry.info[f"{kind} from"]), _unquote(entry.info[f"{kind} to"])), kind
    return None, None


def _build(entry: _Entry, raw: list[str], prefixes: tuple[str, str]) -> FileDiff:
    info = entry.info
    moved, kind = _moved(entry)
    written_old, written_new = _written_names(entry, moved)
    old, new = moved if moved else (_strip(written_old, prefixes[0]), _strip(written_new, prefixes[1]))
    if entry.git is not None:
        old = None if "new file mode" in info or entry.minus == DEV_NULL else old
        new = None if "deleted file mode" in info or entry.plus == DEV_NULL else new
    else:
        old = None if written_old == DEV_NULL else old
        new = None if written_new == DEV_NULL else new
        # `diff -N` shows a file on one side only against an empty one: the hunk ranges say which
        if len(entry.hunks) == 1 and entry.hunks[0].old == (0, 0):
            old = None
        elif len(entry.hunks) == 1 and entry.hunks[0].new == (0, 0):
            new = None
    if old is None and new is None:
        raise DiffError(f"{NOT_A_DIFF}the entry at line {entry.start + 1} names no file on either side")
    if kind == "rename" and old == new:
        kind = None
    path = new or old or ""
    change: ChangeKind = "modified"
    if old is None or kind == "copy":
        change = "added"  # a copy is a new file; its old_path names the source its diff is against
    elif new is None:
        change = "deleted"
    elif kind == "rename":
        change = "renamed"
    facts, unread = _facts(entry, raw, old, new, kind)
    note = f"# swarmgate: {'; '.join(facts)}\n" if facts else ""
    return FileDiff(
        path=path,
        old_path=old if old and old != path else None,
        change=change,
        header=note + "".join(raw[entry.start : entry.head_end]),
        hunks=tuple(("".join(raw[h.start : h.end]), h.added, h.removed) for h in entry.hunks),
        unread=unread,
    )


def parse_diff(text: str) -> list[FileDiff]:
    """Every file entry of a unified diff (git's, `diff -ruN`'s, any prefixes), sorted by path.

    Parsed once; `sections_of` then applies the filters and the section budget. A diff that
    cannot be placed (a combined diff, a hunk that does not add up, text with no file entry)
    is one `DiffError` line naming the problem.
    """
    if not text.strip():
        return []
    # split on "\n" only (str.splitlines also splits on \x0b, \x1c, U+2028 ...)
    raw = list(io.StringIO(text, newline="\n"))
    # read a CRLF-normalised copy (same line numbers) so headers match; slice `raw` for the text
    norm = [ln[:-2] + "\n" if ln.endswith("\r\n") else ln for ln in raw]
    entries = _read(norm)
    if not entries:
        raise DiffError("input is not a unified diff: no file header ('diff --git' or '---'/'+++') found")
    prefixes = _diff_prefixes(entries)
    files = [_build(e, raw, prefixes.get(id(e), _GIT_PREFIXES)) for e in entries]
    # stable sort: a path that occurs twice (a concatenated patch series) keeps input order
    return sorted(files, key=lambda f: f.path)


def _diff_prefixes(entries: list[_Entry]) -> dict[int, tuple[str, str]]:
    """The prefixes to strip from each entry's names: one pair for the whole diff when its entries agree.

    Every entry that shows both names of one path gives the pair of prefixes in front of it
    (git's `a/` `b/`, none for --no-prefix, `old/` `new/` for --src-prefix/--dst-prefix or a
    `diff -ruN old/ new/` tree). When they all agree, that pair applies to every entry,
    added and deleted files included; when they disagree (diffs made different ways, pasted
    together) each entry uses its own pair, and `a/` `b/` where it shows none.
    """
    seen: dict[int, tuple[str, str]] = {}
    for e in entries:
        moved, _ = _moved(e)
        try:
            old, new = _written_names(e, moved)
        except DiffError:
            continue  # reported when the entry is built
        pair = _prefixes(old, new, moved)
        if pair is not None:
            seen[id(e)] = pair
    pairs = set(seen.values())
    if len(pairs) == 1:
        (pair,) = pairs
        return {id(e): pair for e in entries}
    return seen


# --- sections --------------------------------------------------------------------------------


def _split(header: str, hunks: list[tuple[str, int, int]], budget: int) -> list[list[tuple[str, int, int]]]:
    """Greedy packing of whole hunks into slices of at most budget characters with the header."""
    slices: list[list[tuple[str, int, int]]] = [[]]
    size = len(header)
    for hunk in hunks:
        if slices[-1] and size + len(hunk[0]) > budget:
            slices.append([])
            size = len(header)
        slices[-1].append(hunk)
        size += len(hunk[0])
    return slices


def sections_of(
    files: Iterable[FileDiff], *, budget: int | None = None, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[list[Section], list[NotReviewed]]:
    """The sections to review and the files not reviewed, each sorted by path.

    `budget` (characters) splits a large file along hunk boundaries; None keeps each file whole.
    """
    if budget is not None and budget < 1:
        raise ValueError(f"section budget must be at least 1 character, got {budget}")
    sections: list[Section] = []
    skipped: list[NotReviewed] = []
    for f in files:
        # Both ends of a rename: moving a security check into an excluded folder is a change to review.
        paths = [p for p in (f.path, f.old_path) if p]
        excluded = next((p for p in exclude if all(glob_match(each, p) for each in paths)), None)
        if excluded is not None:
            reason = f"excluded by exclude glob '{excluded}'"
            skipped.append(NotReviewed(f.path, reason, f.old_path, "excluded", f.change))
        elif include and not any(glob_match(each, p) for each in paths for p in include):
            skipped.append(NotReviewed(f.path, "not matched by any include glob", f.old_path, "excluded", f.change))
        elif f.unread is not None:
            kind, reason = f.unread
            skipped.append(NotReviewed(f.path, reason, f.old_path, kind, f.change))
        else:
            slices = _split(f.header, list(f.hunks), budget) if budget is not None else [list(f.hunks)]
            sections.extend(
                Section(
                    id=f.path if len(slices) == 1 else f"{f.path}#{part}",
                    path=f.path,
                    old_path=f.old_path,
                    change=f.change,
                    text=f.header + "".join(h[0] for h in chunk),
                    part=part,
                    parts=len(slices),
                    added=sum(h[1] for h in chunk),
                    removed=sum(h[2] for h in chunk),
                )
                for part, chunk in enumerate(slices, 1)
            )
    sections.sort(key=lambda s: s.path)
    skipped.sort(key=lambda n: n.path)
    return _unique_ids(sections), skipped


def parse_sections(
    text: str, *, budget: int = 60_000, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[list[Section], list[NotReviewed]]:
    """Split a unified diff into sections to review and files not reviewed, each sorted by path."""
    if budget < 1:
        raise ValueError(f"section budget must be at least 1 character, got {budget}")
    return sections_of(parse_diff(text), budget=budget, include=include, exclude=exclude)


def _unique_ids(sections: list[Section]) -> list[Section]:
    """Make section ids unique: a repeated path, or a file named `x#1`, must not share an id."""
    seen: set[str] = set()
    out: list[Section] = []
    for s in sections:
        sid, n = s.id, 1
        while sid in seen:
            n += 1
            sid = f"{s.id}~{n}"
        seen.add(sid)
        out.append(s if sid == s.id else dataclasses.replace(s, id=sid))
    return out


def crowded_directories(paths: Sequence[str], most: int = 3) -> list[tuple[str, int]]:
    """The directories holding the most of `paths`, as (`dir/`, count), for a hint on what to exclude.

    A directory whose one subdirectory holds at least three quarters of its paths, with a
    tenth or more elsewhere, gives way to that subdirectory (`mypy/typeshed/`, not `mypy/`);
    no directory is listed with one of its ancestors, and only directories holding at least
    two paths are named.
    """
    counts: Counter[str] = Counter()
    for path in paths:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            counts["/".join(parts[:depth]) + "/"] += 1

    def narrowest(directory: str) -> str:
        while True:
            depth = directory.count("/") + 1
            children = [(c, n) for c, n in counts.items() if c.startswith(directory) and c.count("/") == depth]
            best = max(children, key=lambda cn: cn[1], default=None)
            # Narrow when the subdirectory holds most of the paths but its siblings are a real
            # share (10%+): excluding the parent would also drop those, likely the project's code.
            total = counts[directory]
            if best is None or best[1] * 4 < total * 3 or (total - best[1]) * 10 < total:
                return directory
            directory = best[0]

    chosen: list[tuple[str, int]] = []
    for directory, _ in sorted(counts.items(), key=lambda dn: (-dn[1], dn[0])):
        if len(chosen) == most:
            break
        directory = narrowest(directory)
        if counts[directory] < 2 or any(directory.startswith(c) or c.startswith(directory) for c, _ in chosen):
            continue
        chosen.append((directory, counts[directory]))
    return chosen
