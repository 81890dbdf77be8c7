"""The context of each section, built once per run before any call, within a per-section budget. Pure
but for what the run's `FileSource` reads (core/texts.py, the one module that reads files).

In order, while the budget lasts: the content of a renamed or copied file with no hunk; each
hunk grown to its enclosing definitions in the new file (the whole new file instead when it fits
beside the map), and their headers in the old file for removed lines; the map of the pull request;
in the `repo` mode the definitions the changed lines use and the callers of the definitions the
section changes. A part that does not fit whole is given in a shorter form (a definition's header,
a scope's headers without bodies) or left out, and what was left out is named.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..choices import ContextMode, Side
from ..diff.files import FileDiff
from ..heap import no_cycle_collection
from ..model import Context, Section
from ..text import one_line, plural
from ..texts import FileSource, Hunk, NoSource, Unknown, diff_side, parse_hunks
from .parts import MAX_PARSE_CHARS, FileText, Form, Offer, excerpt, whole_chars
from .prmap import changed_names, entry, map_offer, written_names
from .repo import RepoIndex, caller_offers, definition_offers, prefetch_paths
from .scopes import PYTHON, Outline

Unread = FileText | str | None  # the text, why it is unknown, or None when the file is absent on that side


def added_lines(hunks: Sequence[Hunk]) -> set[int]:
    """New-file lines the hunks add."""
    return {n for h in hunks for n in h.added}


def new_lines(hunks: Sequence[Hunk]) -> set[int]:
    """New-file lines the hunks change: the added ones, and for a hunk that only removes, the lines around it."""
    out: set[int] = set()
    for h in hunks:
        out |= set(h.added) if h.added else set(range(h.new_start, h.new_start + len(h.new)))
    return out


def scope_ranges(outline: Outline, lines: set[int], bodies: bool) -> list[tuple[int, int]]:
    """The header of every definition around the lines; with `bodies`, the whole innermost one too."""
    ranges: list[tuple[int, int]] = []
    for chain in outline.chains(lines):
        ranges += [(s.start, s.header_end) for s in chain]
        if bodies and chain and chain[-1].kind != "class":
            ranges.append((chain[-1].start, chain[-1].end))
    return ranges


class ContextBuilder:
    """Builds every section's context of one run; each file is read and parsed once."""

    def __init__(self, files: Sequence[FileDiff], source: FileSource, mode: ContextMode, budget: int) -> None:
        if budget < 1:
            raise ValueError(f"context budget must be at least 1 character, got {budget}")
        self.files, self.source, self.mode, self.budget = list(files), source, mode, budget
        self.by_path = {f.path: f for f in reversed(self.files)}  # the first entry of a repeated path wins
        self.positions = {f.path: i for i, f in reversed(list(enumerate(self.files)))}
        self._read: dict[tuple[str, Side], Unread] = {}
        self._entries: dict[int, str] = {}
        self._index: RepoIndex | None = None

    # --- reading ------------------------------------------------------------------------

    def prefetch(self, sections: Sequence[Section]) -> None:
        """Read every text the run will want in a few batches, where the source can (git)."""
        batch = getattr(self.source, "prefetch", None)
        if batch is None or self.mode == "off":
            return
        batch([p for f in self.files for p in (f.path, f.old_path) if p])
        if self.mode == "repo":
            wanted: list[str] = []
            for s in sections:
                text = self.text(s.path, "new")
                if isinstance(text, FileText) and text.language == PYTHON and text.outline.facts is not None:
                    wanted += prefetch_paths(s.path, text.outline.facts, added_lines(parse_hunks(s.text)))
            batch(wanted)

    def text(self, path: str, side: Side) -> Unread:
        """One side of a file as read (once), or why it could not be read, or None when it is absent."""
        key = (path, side)
        if key not in self._read:
            self._read[key] = self._load(path, side)
        return self._read[key]

    def _load(self, path: str, side: Side) -> Unread:
        try:
            text = self.source.new(path) if side == "new" else self.source.old(path)
            where = self.source.describe(path, side)
        except Unknown as exc:
            text, where = self._from_diff(path, side), "diff"
            if text is None:
                # No repository at all is one note for the run, not one per file.
                return None if isinstance(exc, NoSource) else exc.reason
        if text is None:
            return None
        if len(text) > MAX_PARSE_CHARS:
            return f"over {MAX_PARSE_CHARS} characters, too large to parse for context"
        # What the lines use is only wanted of the changed files' new side in the `repo` mode (an imported
        # module gives its definitions only).
        facts = self.mode == "repo" and side == "new" and path in self.by_path
        return FileText(path, side, text, where, facts=facts)

    def _from_diff(self, path: str, side: Side) -> str | None:
        """An added file's new text or a deleted file's old text: the diff holds all of it."""
        f = self.by_path.get(path)
        wanted = "added" if side == "new" else "deleted"
        if f is None or f.change != wanted or f.old_path:
            return None
        return diff_side(parse_hunks("".join(h[0] for h in f.hunks)), side)

    def lookup(self, path: str) -> FileText | None:
        """A path's new text for the `repo` mode, or None when it is absent or unreadable."""
        text = self.text(path, "new")
        return text if isinstance(text, FileText) else None

    # --- one section --------------------------------------------------------------------

    def build(self, section: Section) -> Context | None:
        """The section's context (None with the mode off, or when there is nothing to give)."""
        if self.mode == "off":
            return None
        notes: list[str] = []
        new, broken_new = self._side(section.path, "new", notes) if section.change != "deleted" else (None, False)
        old_path = section.old_path or section.path
        has_old = section.change != "added" or section.old_path
        old, broken_old = self._side(old_path, "old", notes) if has_old else (None, False)
        if broken_new or broken_old:
            new = old = None  # a file that does not parse: nothing read from it is given
        hunks = parse_hunks(section.text)
        map_part = self._map(section)
        offers = [self._new_offer(section, hunks, new, map_part), self._old_offer(section, hunks, old), map_part]
        if self.mode == "repo" and new is not None and new.language == PYTHON:
            offers += self._repo(section, new, hunks, old)
        return self._fill([o for o in offers if o is not None], notes)

    def _side(self, path: str, side: Side, notes: list[str]) -> tuple[FileText | None, bool]:
        """One side's text (None when absent or unreadable) and whether it does not parse, each with a note."""
        text = self.text(path, side)
        if isinstance(text, str):
            notes.append(f"{one_line(path)} ({side}): {text}: diff-only context for it")
            return None, False
        if text is not None and text.error:
            notes.append(f"{text.where()} {text.error}: diff-only context for this section")
            return None, True
        return text, False

    def _new_offer(
        self, section: Section, hunks: list[Hunk], new: FileText | None, map_part: Offer | None
    ) -> Offer | None:
        """The new file's part: a rename's content, the whole file, or the scopes of the hunks."""
        if new is None or (section.change == "added" and not section.old_path):
            return None  # the diff holds all of a new file: its scopes or its whole text would only repeat it
        if not hunks:
            return self._content(new) if new.lines else None  # an empty file has no content to show
        return self._new_scopes(new, new_lines(hunks), map_part)

    def _old_offer(self, section: Section, hunks: list[Hunk], old: FileText | None) -> Offer | None:
        """The headers around the removed lines in the old file."""
        removed = {n for h in hunks for n in h.removed}
        if old is None or not removed or section.change == "deleted":
            return None
        form = excerpt("scope", old, scope_ranges(old.outline, removed, bodies=False), title="scope (old file)")
        return Offer("scope", f"old scope of {old.path}", (form,)) if form is not None else None

    def _content(self, new: FileText) -> Offer:
        """A renamed or copied file (or a mode change) shows no line: its content, cut to the budget if need be."""
        whole = excerpt("file", new, [(1, len(new.lines))], title="file content")

        def cut(remaining: int) -> Form | None:
            count = len(new.lines)
            title = f"file content (first {count} of {count} lines; the rest left out at the budget)"
            size, last = len(f"## {title}: {one_line(new.path)}, new lines 1-{count} ({new.source})"), 0
            for n, line in enumerate(new.lines, 1):
                size += len(line) + 9  # the line, its number and the newline
                if size > remaining:
                    break
                last = n
            title = f"file content (first {last} of {count} lines; the rest left out at the budget)"
            return excerpt("file", new, [(1, last)], title=title) if last else None

        return Offer("file", f"content of {new.path}", (whole,) if whole else (), cut)

    def _new_scopes(self, new: FileText, lines: set[int], map_part: Offer | None) -> Offer | None:
        if self.mode in ("file", "repo") and new.lines:
            reserve = map_part.pick(self.budget, {}) if map_part is not None else None
            room = self.budget - (reserve.part.chars if isinstance(reserve, Form) else 0)
            whole = (
                excerpt("file", new, [(1, len(new.lines))], title="whole file") if whole_chars(new) <= room else None
            )
            if whole is not None:
                # The first offer, so the budget takes it whole: the scopes it holds are not looked for.
                return Offer("file", f"whole file {new.path}", (whole,))
        forms: list[Form | None] = []
        # Every parser but Python's names itself: a scan says it is a fallback (its scopes are a guess),
        # tree-sitter names its grammar.
        how = "" if new.outline.parser == PYTHON else f", by {new.outline.parser}"
        forms.append(excerpt("scope", new, scope_ranges(new.outline, lines, bodies=True), title=f"scope{how}"))
        headers = scope_ranges(new.outline, lines, bodies=False)
        forms.append(excerpt("scope", new, headers, title=f"scope (headers){how}"))
        given = tuple(f for f in forms if f is not None)
        if not given:
            return None  # plain text, or hunks outside any definition
        return Offer("scope", f"scope of {new.path}", given)

    def _repo(self, section: Section, new: FileText, hunks: list[Hunk], old: FileText | None) -> list[Offer]:
        if self._index is None:
            self._index = RepoIndex(t for f in self.files if f.change != "deleted" if (t := self.lookup(f.path)))
        offers = definition_offers(new, added_lines(hunks), self._index, self.lookup)
        return offers + caller_offers(changed_names(new, old, hunks, section.text), self._index, section.path)

    def _map(self, section: Section) -> Offer | None:
        own = self.positions.get(section.path)
        if len(self.files) < 2 or own is None:
            return None  # a one-file pull request: the map would only repeat the section's header
        return map_offer(len(self.files), own, self.entry, max(self.budget // 4, 1))

    def entry(self, index: int) -> str:
        """One changed file's line of the map, made once per run when a map first shows it."""
        if index not in self._entries:
            f = self.files[index]
            self._entries[index] = entry(f, written_names(f.header + "".join(h[0] for h in f.hunks)))
        return self._entries[index]

    # --- the budget ---------------------------------------------------------------------

    def _fill(self, offers: Sequence[Offer], notes: list[str]) -> Context | None:
        """Take the offers in order while the budget lasts; name what was shortened or left out."""
        remaining = self.budget
        taken: list[Form] = []
        shown: dict[tuple[str, str | None], set[int]] = {}
        left: list[Offer] = []
        shortened: list[str] = []
        for offer in offers:
            form = offer.pick(remaining, shown)
            if form is True:
                continue  # what it shows is shown already (a definition inside the whole file)
            if not isinstance(form, Form):
                left.append(offer)
                continue
            if offer.forms and form is not offer.forms[0]:
                shortened.append(offer.what)
            taken.append(form)
            remaining -= form.part.chars
            shown.setdefault(form.shows[:2], set()).update(form.shows[2])
        notes += _cut_notes(self.budget, left, shortened)
        if not taken and not notes:
            return None
        text = "\n".join([*(f.text for f in taken), *(f"## note: {n}" for n in notes)])
        return Context(text, tuple(f.part for f in taken), tuple(notes))


def _cut_notes(budget: int, left: Sequence[Offer], shortened: Sequence[str]) -> list[str]:
    notes: list[str] = []
    if left:
        counts: dict[str, int] = {}
        for offer in left:
            counts[offer.kind] = counts.get(offer.kind, 0) + 1
        what = ", ".join(plural(n, kind) for kind, n in counts.items())
        named = "; ".join(one_line(o.what) for o in left[:5]) + ("; ..." if len(left) > 5 else "")
        notes.append(f"context cut at the budget of {budget} characters: {what} left out ({named})")
    if shortened:
        notes.append(f"shortened to fit the budget: {'; '.join(one_line(w) for w in shortened[:5])}")
    return notes


def build_contexts(
    sections: Sequence[Section], files: Sequence[FileDiff], source: FileSource, mode: ContextMode, budget: int
) -> list[Section]:
    """Every section with its context attached (unchanged with the mode off)."""
    if mode == "off":
        return list(sections)
    builder = ContextBuilder(files, source, mode, budget)
    with no_cycle_collection():  # a parsed tree is freed by its count: see core/heap.py
        builder.prefetch(sections)
        return [dataclasses.replace(s, context=builder.build(s)) for s in sections]
