"""The map of the whole pull request: every changed file, its change, its +/- counts and the definitions
it changes; one line each, nearest the section first when the budget cuts it. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence

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
    else the definition lines in its hunks and git's hunk-header trailers."""
    names = _scoped(new, [n for h in hunks for n in h.added]) + _scoped(old, [n for h in hunks for n in h.removed])
    if not names and (new is None or new.outline.error):
        names = _written(diff_text)
    return list(dict.fromkeys(names))


def _scoped(text: FileText | None, lines: Sequence[int]) -> list[str]:
    """The innermost definition around each line, where the text parses."""
    if text is None or text.outline.error:
        return []
    chains = (text.outline.enclosing(line) for line in lines)
    return [chain[-1].name for chain in chains if chain]


def _written(diff_text: str) -> list[str]:
    """Definition lines among the hunks' lines, and the function names git writes after `@@`."""
    names: list[str] = []
    for row in diff_text.split("\n"):
        m = _DEF_LINE.match(row)
        if m:
            names.append(m.group(1))
        elif row.startswith("@@") and row.count("@@") >= 2 and row.split("@@", 2)[2].strip():
            names.append(row.split("@@", 2)[2].strip()[:60])
    return names


def entry(f: FileDiff, names: Sequence[str]) -> str:
    """One file's line of the map."""
    added, removed = sum(h[1] for h in f.hunks), sum(h[2] for h in f.hunks)
    moved = f", from {one_line(f.old_path)}" if f.old_path else ""
    binary = ", binary" if f.unread is not None else ""
    shown = ", ".join(one_line(n) for n in names[:MAX_NAMES])
    more = f" and {len(names) - MAX_NAMES} more" if len(names) > MAX_NAMES else ""
    changes = f": changes {shown}{more}" if names else ""
    return f"{one_line(f.path)} ({f.change}{moved}{binary}, +{added} -{removed}){changes}"


def _nearest(count: int, own: int) -> list[int]:
    """Indexes from `own` outwards, alternating after and before: the files beside it in path order first."""
    order = [own]
    for step in range(1, count):
        order += [i for i in (own + step, own - step) if 0 <= i < count]
    return order


def map_offer(entries: Sequence[str], own: int, cap: int) -> Offer:
    """The map as an offer the budget cuts by lines, at most `cap` characters, this section's own line first."""

    def fit(remaining: int) -> Form | None:
        room = min(remaining, cap)
        heading = f"## map of the pull request: {plural(len(entries), 'changed file')}"
        mine = f"{entries[own]}  <- this section"
        chosen = {own}
        size = len(heading) + len(mine) + 80  # room for the heading's count of left-out files
        for i in _nearest(len(entries), own)[1:]:
            if size + len(entries[i]) + 1 > room:
                break
            chosen.add(i)
            size += len(entries[i]) + 1
        if size > room:
            return None
        left = len(entries) - len(chosen)
        heading += f" ({left} left out at the budget; the nearest by path are shown)" if left else ""
        text = "\n".join([heading, *(mine if i == own else entries[i] for i in sorted(chosen))])
        return Form(ContextPart("map", "", None, 0, 0, len(text), "diff"), text, ("", None, frozenset()))

    return Offer("map", "the map of the pull request", cut=fit)
