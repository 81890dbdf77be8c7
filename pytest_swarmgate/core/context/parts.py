"""The pieces a context is made of: a file's text as read, excerpts of its lines, offers to the budget. Pure."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..choices import ContextKind, Side
from ..model import ContextPart
from ..text import one_line
from .scopes import SCANS, Outline, language, outline

# A file larger than this is not parsed for context: its scopes would cost more than they show.
MAX_PARSE_CHARS = 1_000_000


class FileText:
    """One side of one file as read, its parser chosen at once and its outline parsed once on first use."""

    def __init__(self, path: str, side: Side, text: str, source: str, facts: bool = False) -> None:
        self.path, self.side, self.text, self.source, self.facts = path, side, text, source, facts
        self.lines = text.split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.language = language(path, self.lines[0] if self.lines else "")
        self._outline: Outline | None = None

    @property
    def outline(self) -> Outline:
        if self._outline is None:
            self._outline = outline(self.path, self.text, self.facts)
        return self._outline

    @property
    def error(self) -> str | None:
        """Why the text does not parse (None: it does); a scan never fails, so none is run to say so."""
        return None if self.language in SCANS else self.outline.error

    def where(self) -> str:
        return f"{one_line(self.path)} ({self.side}, {self.source})"


@dataclass(frozen=True)
class Form:
    """One way to give a part: its record, its text, and the lines of (path, side) it shows."""

    part: ContextPart
    text: str
    shows: tuple[str, str | None, frozenset[int]]


Ranges = Sequence[tuple[int, int]]


def merged(ranges: Iterable[tuple[int, int]], last: int) -> list[tuple[int, int]]:
    """Line ranges clipped to 1..last, sorted, with overlapping and adjacent ones joined."""
    out: list[tuple[int, int]] = []
    for a, b in sorted((max(a, 1), min(b, last)) for a, b in ranges):
        if a > b:
            continue
        if out and a <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def excerpt(kind: ContextKind, text: FileText, ranges: Ranges, name: str = "", title: str = "") -> Form | None:
    """Numbered lines of a file, `...` between ranges, under a heading that names the source."""
    spans = merged(ranges, len(text.lines))
    if not spans:
        return None
    start, end = spans[0][0], spans[-1][1]
    label = title or f"{kind}{' ' + one_line(name) if name else ''}"
    body: list[str] = [_heading(label, text, start, end)]
    for i, (a, b) in enumerate(spans):
        if i:
            body.append("  ...")
        body += [f"{n:>5} | {text.lines[n - 1]}" for n in range(a, b + 1)]
    rendered = "\n".join(body)
    part = ContextPart(kind, text.path, text.side, start, end, len(rendered), text.source, name)
    shown = frozenset(n for a, b in spans for n in range(a, b + 1))
    return Form(part, rendered, (text.path, text.side, shown))


def _heading(label: str, text: FileText, start: int, end: int) -> str:
    return f"## {label}: {one_line(text.path)}, {text.side} lines {start}-{end} ({text.source})"


def whole_chars(text: FileText, title: str = "whole file") -> int:
    """The characters of `excerpt` of the whole file under `title`, counted without rendering it (a file
    too large for the budget is most of a large diff's text)."""
    count = len(text.lines)
    if not count:
        return 0
    # Each line is its number (at least 5 wide), " | ", the line and a newline after the heading's.
    numbers, low, width = 0, 1, 1
    while low <= count:  # the lines numbered with `width` digits, from `low`
        numbers += max(5, width) * (min(count, low * 10 - 1) - low + 1)
        low, width = low * 10, width + 1
    return len(_heading(title, text, 1, count)) + numbers + sum(map(len, text.lines)) + 4 * count


Fit = Callable[[int], "Form | None"]


@dataclass(frozen=True)
class Offer:
    """A part the budget may take: its forms, richest first, and a last resort cut to what is left.

    `what` names it when it does not fit ("definition helper (app/util.py)").
    """

    kind: ContextKind
    what: str
    forms: tuple[Form, ...] = ()
    cut: Fit | None = None

    def pick(self, remaining: int, shown: dict[tuple[str, str | None], set[int]]) -> Form | bool | None:
        """The richest form that fits; True when what it shows is shown already; None when nothing fits."""
        forms = [f for f in self.forms if not f.shows[2] <= shown.get(f.shows[:2], set())]
        if self.forms and not forms:
            return True
        fitting = next((f for f in forms if f.part.chars <= remaining), None)
        if fitting is None and self.cut is not None:
            return self.cut(remaining)
        return fitting
