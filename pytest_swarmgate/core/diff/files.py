"""What each entry of the diff is: its repository paths, its change, a note on what its lines do not show."""

from __future__ import annotations

import io
import itertools
import posixpath
import re
from dataclasses import dataclass

from ..choices import ChangeKind, NotReviewedKind
from ..heap import no_cycle_collection
from ..text import one_line
from .entries import NOT_A_DIFF, DiffError, Entry, Lines, read_entries
from .names import DEV_NULL, GIT_PREFIXES, diff_prefixes, moved, strip_prefix, written_names
from .pieces import DiffText, as_text

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

SUBMODULE_MODE = "160000"
SYMLINK_MODE = "120000"
_SUBPROJECT = re.compile(r"^[-+ ]Subproject commit ([0-9a-f]{7,64})(-dirty)?$")
_EXECUTABLE = {("644", "755"): " (made executable)", ("755", "644"): " (no longer executable)"}
_VERBS = {"rename": "renames", "copy": "copies"}

Unread = tuple[NotReviewedKind, str]
# What decoding puts for bytes that are not UTF-8 (source.decode, entries.unquote): two names that
# differ only there read as one path.
REPLACED = "\ufffd"
COLLAPSED = (
    NOT_A_DIFF + "{where} name {path}, whose bytes are not all UTF-8, so the gate cannot tell one file from"
    " two: rename the files to UTF-8 names"
)


@dataclass(frozen=True)
class FileDiff:
    """One file entry of the diff, parsed once: its repository paths, its change and its text.

    The text is one string, the section text of the whole file: every section of the file, and
    both views the plan takes (with and without the budget), are that string or slices of it.
    """

    path: str
    old_path: str | None  # the other side's path when it differs (a rename or copy)
    change: ChangeKind
    # the gate's note on what changed (when the lines do not say it), the header lines, then every hunk
    text: str
    head: int  # where the header ends in `text`
    # each hunk's end in `text` (it starts where the one before ends), lines added and lines removed
    spans: tuple[tuple[int, int, int], ...]
    # why it is never sent to the panel (media and binary files): the kind the gate decides on, and its words
    unread: Unread | None = None

    @property
    def header(self) -> str:
        """The gate's note, then the header lines."""
        return self.text[: self.head]

    @property
    def hunks(self) -> tuple[tuple[str, int, int], ...]:
        """Each hunk's text, lines added and lines removed (made when asked: the text holds them)."""
        bounds = itertools.pairwise((self.head, *(end for end, _, _ in self.spans)))
        return tuple((self.text[a:b], h[1], h[2]) for (a, b), h in zip(bounds, self.spans, strict=True))


def is_media(path: str) -> bool:
    """Whether a path names an image, audio, video or font file by its extension (any case)."""
    return posixpath.splitext(path)[1].lower() in MEDIA_EXTENSIONS


def media_only(*paths: str | None) -> bool:
    """Whether every path named is a media file: a binary renamed from `tool.so` to `logo.png` is not."""
    named = [p for p in paths if p]
    return bool(named) and all(is_media(p) for p in named)


@dataclass(frozen=True)
class _Shape:
    """One entry's paths and modes, the facts every note and the unread check are read from."""

    entry: Entry
    old: str | None
    new: str | None
    kind: str | None  # "rename", "copy" or None
    old_mode: str | None
    new_mode: str | None

    @property
    def textless(self) -> bool:
        return not self.entry.hunks and not self.entry.is_binary

    @property
    def mode_change(self) -> bool:
        """A mode change no hunk's file header shows."""
        modes = self.old_mode and self.new_mode and self.old_mode != self.new_mode
        return bool(modes and self.old and self.new and not self.entry.hunks)


def _mode(entry: Entry, side: int) -> str | None:
    """The file mode of the old (0) or new (1) side, from git's header lines."""
    own = entry.info.get(("old mode", "new mode")[side]) or entry.info.get(("deleted file mode", "new file mode")[side])
    if own:
        return own
    index = entry.info.get("index", "").split(" ")
    return index[1] if len(index) == 2 else None


def _side_text(lines: list[str], sign: str) -> str:
    return "".join(ln[1:] for ln in lines if ln.startswith(sign)).rstrip("\n")


def _move_fact(s: _Shape) -> str | None:
    """The rename or copy, for an entry with no hunk (a hunk's file header shows it already)."""
    if s.kind is None or not (s.old and s.new) or s.entry.hunks:
        return None
    similarity = s.entry.info.get("similarity index")
    fact = f"{_VERBS[s.kind]} {one_line(s.old)} to {one_line(s.new)}"
    return fact + (f" (similarity {similarity})" if similarity else "")


def _mode_fact(s: _Shape) -> str | None:
    if not s.mode_change or s.old_mode is None or s.new_mode is None:
        return None
    return f"file mode {s.old_mode} -> {s.new_mode}" + _EXECUTABLE.get((s.old_mode[-3:], s.new_mode[-3:]), "")


def _special_fact(s: _Shape, text: DiffText) -> str | None:
    """What a symbolic link now points to, or which commit a submodule now records."""
    modes = {s.old_mode, s.new_mode}
    if not {SYMLINK_MODE, SUBMODULE_MODE} & modes:
        return None
    bounds = itertools.pairwise((s.entry.head_text_end, *(h.text_end for h in s.entry.hunks)))
    hunks = [list(io.StringIO(text[a:b], newline="\n"))[1:] for a, b in bounds]  # each without its `@@` line
    lines = [ln.rstrip("\r\n") for each in hunks for ln in each]
    if SYMLINK_MODE in modes:
        before, after = _side_text(lines, "-") or "(none)", _side_text(lines, "+") or "(none)"
        return f"symbolic link target {one_line(repr(before))} -> {one_line(repr(after))}"
    subprojects = [m for ln in lines if (m := _SUBPROJECT.match(ln))]
    if not lines or len(subprojects) != len(lines):
        return None
    before = next((m.group(1) for m in subprojects if m.string[0] == "-"), "none")
    after = next((m.group(1) for m in subprojects if m.string[0] == "+"), "none")
    return f"submodule commit {before} -> {after}"


def _empty_fact(s: _Shape) -> str | None:
    """An entry that adds, deletes or shows no text and is neither a move nor a mode change."""
    if not s.textless or s.kind is not None or s.mode_change:
        return None
    what = "adds an empty file" if s.old is None else "deletes an empty file" if s.new is None else "shows no change"
    return what + (f" (mode {s.new_mode})" if s.old is None and s.new_mode else "")


def _facts(s: _Shape, text: DiffText) -> list[str]:
    """What the entry changes that its text lines do not show, for the note."""
    facts = ["no line of text changed"] if s.textless else []
    facts += [f for f in (_move_fact(s), _mode_fact(s)) if f]
    special = _special_fact(s, text)
    facts += [special] if special else [f for f in (_empty_fact(s),) if f]
    if s.entry.is_binary and s.new is None:
        facts.append(f"deletes the binary file {one_line(s.old or '')} (its content is not shown)")
    return facts


def _unread(s: _Shape) -> Unread | None:
    """Why the entry is never sent to the panel: media (not reviewed) or binary (held); None when it is read."""
    media = media_only(s.old, s.new)
    if media and s.entry.is_binary:
        return "media", "media file: binary content is not reviewed"
    if media and s.textless and s.kind is not None and not s.mode_change:
        return "media", f"media file: pure {s.kind} from {s.old}"
    if s.entry.is_binary and s.new is not None:
        return "binary", "binary file"
    return None


def _paths(entry: Entry, prefixes: tuple[str, str]) -> tuple[str | None, str | None, str | None]:
    """The entry's old and new repository paths (None for a side that does not exist), and its move kind."""
    move, kind = moved(entry)
    written_old, written_new = written_names(entry, move)
    old, new = move if move else (strip_prefix(written_old, prefixes[0]), strip_prefix(written_new, prefixes[1]))
    if entry.git is not None:
        old = None if "new file mode" in entry.info or entry.minus == DEV_NULL else old
        new = None if "deleted file mode" in entry.info or entry.plus == DEV_NULL else new
    else:
        old, new = _one_sided(entry, None if written_old == DEV_NULL else old, None if written_new == DEV_NULL else new)
    if old is None and new is None:
        raise DiffError(f"{NOT_A_DIFF}the entry at line {entry.start + 1} names no file on either side")
    if kind is not None and old == new and old is not None and REPLACED in old:
        raise DiffError(
            COLLAPSED.format(where=f"both sides of the {kind} at line {entry.start + 1}", path=one_line(old))
        )
    return old, new, None if kind == "rename" and old == new else kind


def _one_sided(entry: Entry, old: str | None, new: str | None) -> tuple[str | None, str | None]:
    """`diff -N` shows a file on one side only against an empty one: the hunk ranges say which."""
    if len(entry.hunks) == 1 and entry.hunks[0].old == (0, 0):
        return None, new
    if len(entry.hunks) == 1 and entry.hunks[0].new == (0, 0):
        return old, None
    return old, new


def _change(old: str | None, new: str | None, kind: str | None) -> ChangeKind:
    if old is None or kind == "copy":
        return "added"  # a copy is a new file; its old_path names the source its diff is against
    if new is None:
        return "deleted"
    return "renamed" if kind == "rename" else "modified"


def _build(entry: Entry, text: DiffText, prefixes: tuple[str, str]) -> FileDiff:
    old, new, kind = _paths(entry, prefixes)
    shape = _Shape(entry, old, new, kind, _mode(entry, 0), _mode(entry, 1))
    facts = _facts(shape, text)
    note = f"# swarmgate: {'; '.join(facts)}\n" if facts else ""
    path = new or old or ""
    end = entry.hunks[-1].text_end if entry.hunks else entry.head_text_end
    # the entry's lines are one run of the text: one slice (its piece itself when the entry is all of
    # it, as in git's own diff), and the note put before it
    own = text[entry.text_start : end]
    shift = len(note) - entry.text_start
    return FileDiff(
        path=path,
        old_path=old if old and old != path else None,
        change=_change(old, new, kind),
        text=note + own if note else own,
        head=entry.head_text_end + shift,
        spans=tuple((h.text_end + shift, h.added, h.removed) for h in entry.hunks),
        unread=_unread(shape),
    )


@no_cycle_collection()  # see core/heap.py
def parse_diff(diff: str | DiffText) -> list[FileDiff]:
    """Every file entry of a unified diff (git's, `diff -ruN`'s, any prefixes), sorted by path.

    `diff` is the text, or its pieces as decoded from the bytes (`DiffText.decode`), which the file
    texts share rather than copy.

    Parsed once; `sections_of` then applies the filters and the section budget. A diff that
    cannot be placed (a combined diff, a hunk that does not add up, text with no file entry)
    is one `DiffError` line naming the problem.
    """
    text = as_text(diff)
    if not text or text.isspace():  # not strip(): that copies the whole diff
        return []
    # read CRLF as LF so headers match, a window of lines at a time; the texts are slices of `text`
    entries = read_entries(Lines(text))
    if not entries:
        raise DiffError(f"{NOT_A_DIFF}no file header ('diff --git' or '---'/'+++') found")
    prefixes = diff_prefixes(entries)
    files = [_build(e, text, prefixes.get(id(e), GIT_PREFIXES)) for e in entries]
    _one_identity(entries, files)
    # stable sort: a path that occurs twice (a concatenated patch series) keeps input order
    return sorted(files, key=lambda f: f.path)


def _one_identity(entries: list[Entry], files: list[FileDiff]) -> None:
    """Refuse two entries that name one path holding replaced bytes: they may be two files, or one.

    A path named twice is otherwise a patch series touching one file again; with bytes that are
    not UTF-8 in it, it may as well be two files whose names decode alike, and the held check
    and the texts would read them as one.
    """
    first: dict[str, int] = {}
    for entry, f in zip(entries, files, strict=True):
        for path in {f.path, f.old_path} - {None}:
            if path is not None and REPLACED in path and first.setdefault(path, entry.start) != entry.start:
                where = f"the entries at lines {first[path] + 1} and {entry.start + 1}"
                raise DiffError(COLLAPSED.format(where=where, path=one_line(path)))
