"""The map of the whole pull request: every changed file, its change, its +/- counts and the definitions
it changes; one line each, nearest the section first when the budget cuts it. Pure.

The map's names come from the diff alone (definition lines among the changed lines, and the
function git names after each `@@`): a 2,000-file pull request must not parse 2,000 files for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence

from ..diff.files import FileDiff
from ..model import ContextPart
from ..text import one_line, plural
from ..texts import Hunk
from .parts import FileText, Form, Offer

MAX_NAMES = 6
# A definition line in a hunk, in the common languages: for the map when no file text is at hand.
_DEF_LINE = re.compile(r"^[-+]\s*(?:async\s+)?(?:def|class|func|function|fn)\s+(?:\([^)]*\)\s*)?([A-Za-z_$][\w$]*)")


def changed_names(new: FileText | None, old: FileText | None, hunks: Sequence[Hunk], diff_text: str) -> list[str]:
    """The definitions a file's change touches: innermost scopes of its changed lines where the text parses,
    else what the diff names."""
    names = _scoped(new, [n for h in hunks for n in h.added]) + _scoped(old, [n for h in hunks for n in h.removed])
    if not names and (new is None or new.outline.error):
        names = written_names(diff_text)
    return list(dict.fromkeys(names))


def _scoped(text: FileText | None, lines: Sequence[int]) -> list[str]:
    """The innermost definition around each line, where the text parses."""
    if text is None or text.outline.error:
        return []
    return [chain[-1].name for chain in text.outline.chains(lines) if chain]


def written_names(diff_text: str) -> list[str]:
    """Definitions a diff names: definition lines among its changed lines, and the function git writes after `@@`."""
    names: list[str] = []
    for row in diff_text.split("\n"):
        if row.startswith("@@"):
            row = row.split("@@", 2)[2].strip() if row.count("@@") >= 2 else ""
            m = _DEF_LINE.match("+" + row)
            names += [m.group(1)] if m else [row[:40]] if row else []
        elif m := _DEF_LINE.match(row):
            names.append(m.group(1))
    return list(dict.fromkeys(names))


def entry(f: FileDiff, names: Sequence[str]) -> str:
    """One file's line of the map."""
    added, removed = sum(h[1] for h in f.hunks), sum(h[2] for h in f.hunks)
    moved = f", from {one_line(f.old_path)}" if f.old_path else ""
    binary = ", binary" if f.unread is not None else ""
    shown = ", ".join(one_line(n) for n in names[:MAX_NAMES])
    more = f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else ""
    changes = f": changes {shown}{more}" if names else ""
    return f"{one_line(f.path)} ({f.change}{moved}{binary}, +{added} -{removed}){changes}"


def _nearest(count: int, own: int) -> Iterator[int]:
    """Indexes from `own` outwards, alternating after and before: the files beside it in path order first."""
    for step in range(1, count):
        yield from (i for i in (own + step, own - step) if 0 <= i < count)


def map_offer(count: int, own: int, line: Callable[[int], str], cap: int) -> Offer:
    """The map of `count` files as an offer the budget cuts by lines, at most `cap` characters, this
    section's own line (`own`) first; `line(i)` is the i-th file's line."""

    def fit(remaining: int) -> Form | None:
        room = min(remaining, cap)
        heading = f"## map of the pull request: {plural(count, 'changed file')}"
        mine = f"{line(own)}  <- this section"
        chosen = {own: mine}
        size = len(heading) + len(mine) + 80  # room for the heading's count of left-out files
        for i in _nearest(count, own):
            text = line(i)
            if size + len(text) + 1 > room:
                break
            chosen[i] = text
            size += len(text) + 1
        if size > room:
            return None
        left = count - len(chosen)
        heading += f" ({left} left out at the budget; the nearest by path are shown)" if left else ""
        text = "\n".join([heading, *(chosen[i] for i in sorted(chosen))])
        return Form(ContextPart("map", "", None, 0, 0, len(text), "diff"), text, ("", None, frozenset()))

    return Offer("map", "the map of the pull request", cut=fit)
