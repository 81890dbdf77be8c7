"""Diff source and sectioning: read a unified diff, split it into sections to review.

Pure apart from reading the diff source (a file, stdin or `git diff`): no network, no
pytest. The diff is untrusted input written by whoever opened the pull request, so every
way it can be malformed ends in one clear `DiffError`, never a traceback, and no path in
it is ever used to touch the filesystem.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import io
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Literal, Sequence

from unidiff.constants import (
    DEV_NULL,
    RE_HUNK_HEADER,
    RE_NO_NEWLINE_MARKER,
    RE_PATCH_FILE_PREFIX,
    RE_SOURCE_FILENAME,
    RE_TARGET_FILENAME,
)
from unidiff.patch import PatchedFile, PatchSet

from .model import NotReviewed, Section
from .text import one_line

__all__ = ["DiffError", "read_diff_file", "git_diff", "parse_sections", "diff_sha256", "glob_match"]

SUBMODULE_MODE = "160000"
# a `diff --git` or `Binary files` line names two paths; real ones stay far below this
MAX_HEADER_LINE = 8192
_SUBPROJECT = re.compile(r"^[-+ ]Subproject commit ([0-9a-f]{7,64})(-dirty)?$")
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


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


def _clean(name: str | None, *, prefixed: bool = True) -> str | None:
    """A file name from a header without quotes and a/ b/ prefix; None for /dev/null."""
    if name is None:
        return None
    name = _unquote(name.strip())
    if name == DEV_NULL:
        return None
    return RE_PATCH_FILE_PREFIX.sub("", name, count=1) if prefixed else name


@dataclass
class _File:
    """One file entry of the diff: its metadata and where its lines are."""

    pf: PatchedFile
    start: int  # index of the first header line
    end: int  # index one past the last line that may belong to this file


def _locate(pf: PatchedFile, norm: list[str]) -> int:
    """Index of the first header line of a file entry: `diff --git`, else `---`, else itself."""
    i = (pf.diff_line_no or 1) - 1
    if norm[i].startswith("+++ ") and i > 0 and norm[i - 1].startswith("--- "):
        return i - 1
    return i


def _defuse(norm: list[str]) -> None:
    """Keep unidiff's backtracking regexes linear on hostile header-like lines."""
    for n, line in enumerate(norm):
        if not line.startswith(("diff --git ", "Binary file")):
            continue
        if len(line) > MAX_HEADER_LINE:
            raise DiffError(f"input is not a unified diff: line {n + 1} is a {len(line)}-character file header")
        body = line.rstrip("\n")
        if body.startswith("Binary file") and ("\t" in body or not body.endswith((" differ", " has changed"))):
            # git and diff never write such a line (git quotes a tab in a name), and
            # unidiff's regex would take quadratic time to reject it
            norm[n] = "?\n"


def _hunk_spans(f: _File, norm: list[str]) -> list[tuple[int, int]]:
    """(start, end) line indexes of each hunk of the file, header line included."""
    heads = [i for i in range(f.start, f.end) if RE_HUNK_HEADER.match(norm[i])]
    if len(heads) != len(f.pf):
        raise DiffError(f"input is not a unified diff: cannot locate the hunks of {one_line(f.pf.path)}")
    # the last hunk ends at its last numbered line plus any "\ No newline" markers after it
    last = max((ln.diff_line_no for ln in f.pf[-1] if ln.diff_line_no), default=heads[-1] + 1)
    while last < f.end and RE_NO_NEWLINE_MARKER.match(norm[last]):
        last += 1
    return list(zip(heads, [*heads[1:], last]))


def _submodule(pf: PatchedFile) -> str | None:
    """'old -> new' when the entry is a submodule bump, else None."""
    lines = [f"{ln.line_type}{ln.value}".rstrip("\n") for h in pf for ln in h if ln.line_type in ("+", "-", " ")]
    matches = [_SUBPROJECT.match(ln) for ln in lines]
    if not all(matches):
        # a submodule entry only ever holds `Subproject commit` lines: anything else is reviewed
        return None
    if not matches and SUBMODULE_MODE not in (pf.source_mode, pf.target_mode):
        return None
    old = next((m.group(1) for m in matches if m and m.string[0] == "-"), "none")
    new = next((m.group(1) for m in matches if m and m.string[0] == "+"), "none")
    return f"{old[:12]} -> {new[:12]}"


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


def _paths(f: _File, head: list[str]) -> tuple[str | None, str | None, str | None]:
    """(old path, new path, "rename" / "copy" / None) of a file entry; None for /dev/null."""
    # rename/copy lines are git's own; only trust them under a `diff --git` header
    extra: dict[str, str | None] = {}
    if head and head[0].startswith("diff --git "):
        for line in f.pf.patch_info or []:
            for key in ("rename from ", "rename to ", "copy from ", "copy to "):
                if line.startswith(key):
                    extra.setdefault(key.strip(), _clean(line[len(key) :], prefixed=False))
    # ---/+++ lines name a path unambiguously; the `diff --git` line does not when it has spaces
    minus = next((m.group("filename") for ln in head if (m := RE_SOURCE_FILENAME.match(ln))), None)
    plus = next((m.group("filename") for ln in head if (m := RE_TARGET_FILENAME.match(ln))), None)
    old = extra.get("rename from") or extra.get("copy from") or _clean(minus or f.pf.source_file)
    new = extra.get("rename to") or extra.get("copy to") or _clean(plus or f.pf.target_file)
    kind = "rename" if "rename from" in extra and old != new else "copy" if "copy from" in extra else None
    return old, new, kind


def _skip_reason(pf: PatchedFile, hunkless: bool, old: str | None, new: str | None, kind: str | None) -> str | None:
    """Why a file entry is not sent to the panel, or None when it is reviewed."""
    if pf.is_binary_file:
        return "binary file"
    bump = _submodule(pf)
    if bump is not None:
        return f"submodule bump: {bump}"
    if not hunkless:
        return None
    modes = (pf.source_mode, pf.target_mode)
    mode_change = bool(all(modes) and modes[0] != modes[1] and old and new)
    note = f" (mode {modes[0]} -> {modes[1]})" if mode_change else ""
    if kind is not None:
        return f"pure {kind} from {old}{note}"
    if mode_change:
        return f"mode change only: {modes[0]} -> {modes[1]}"
    if old is None:
        return "empty file added"
    if new is None:
        return "empty file deleted"
    return "no content change"


def _moved(old: str | None, path: str) -> str | None:
    """The old path when the entry moved a file, else None."""
    return old if old and old != path else None


def _entry(
    f: _File, raw: list[str], norm: list[str], budget: int, include: Sequence[str], exclude: Sequence[str]
) -> list[Section] | NotReviewed:
    """The sections of one file entry, or why it is not reviewed."""
    pf = f.pf
    spans = _hunk_spans(f, norm) if pf and not pf.is_binary_file else []
    head_end = spans[0][0] if spans else f.end
    old, new, kind = _paths(f, norm[f.start : head_end])
    path = new or old or one_line(pf.path)
    # Both ends of a rename: moving a security check into an excluded folder is a change to review.
    paths = [p for p in dict.fromkeys((path, old)) if p]
    excluded = next((p for p in exclude if all(glob_match(each, p) for each in paths)), None)
    if excluded is not None:
        return NotReviewed(path, f"excluded by exclude glob '{excluded}'", _moved(old, path))
    if include and not any(glob_match(each, p) for each in paths for p in include):
        return NotReviewed(path, "not matched by any include glob", _moved(old, path))
    reason = _skip_reason(pf, not spans, old, new, kind)
    if reason is not None:
        return NotReviewed(path, reason, _moved(old, path))

    # a copy is a new file; its old_path names the source its diff is against
    change: Literal["added", "modified", "deleted", "renamed"] = "modified"
    if old is None or kind == "copy":
        change = "added"
    elif new is None:
        change = "deleted"
    elif kind == "rename":
        change = "renamed"
    header = "".join(raw[f.start : head_end])
    hunks = [("".join(raw[a:b]), h.added, h.removed) for (a, b), h in zip(spans, pf)]
    slices = _split(header, hunks, budget)
    return [
        Section(
            id=path if len(slices) == 1 else f"{path}#{part}",
            path=path,
            old_path=old if kind else None,
            change=change,
            text=header + "".join(h[0] for h in chunk),
            part=part,
            parts=len(slices),
            added=sum(h[1] for h in chunk),
            removed=sum(h[2] for h in chunk),
        )
        for part, chunk in enumerate(slices, 1)
    ]


def parse_sections(
    text: str, *, budget: int = 60_000, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[list[Section], list[NotReviewed]]:
    """Split a unified diff into sections to review and files not reviewed, each sorted by path."""
    if budget < 1:
        raise ValueError(f"section budget must be at least 1 character, got {budget}")
    if not text.strip():
        return [], []
    # split on "\n" only (str.splitlines also splits on \x0b, \x1c, U+2028 ...), like unidiff
    raw = list(io.StringIO(text, newline="\n"))
    # parse a CRLF-normalised copy (same line numbers) so header regexes match; slice `raw`
    norm = [ln[:-2] + "\n" if ln.endswith("\r\n") else ln for ln in raw]
    _defuse(norm)
    try:
        patch = PatchSet(norm)
    except Exception as exc:  # noqa: BLE001 - a third-party parser on hostile input: any failure is a bad diff
        raise DiffError(f"input is not a unified diff: {one_line(str(exc) or type(exc).__name__)}") from None
    if not patch:
        raise DiffError("input is not a unified diff: no file header ('diff --git' or '---'/'+++') found")

    starts = [_locate(pf, norm) for pf in patch]
    sections: list[Section] = []
    skipped: list[NotReviewed] = []
    for pf, start, end in zip(patch, starts, [*starts[1:], len(norm)]):
        entry = _entry(_File(pf, start, end), raw, norm, budget, include, exclude)
        if isinstance(entry, NotReviewed):
            skipped.append(entry)
        else:
            sections.extend(entry)

    # stable sorts: a path that occurs twice (a concatenated patch series) keeps input order
    sections.sort(key=lambda s: s.path)
    skipped.sort(key=lambda n: n.path)
    return _unique_ids(sections), skipped


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
