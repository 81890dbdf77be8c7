"""Sectioning: the parsed files, filtered by the run's globs, cut into the sections the panel judges."""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..heap import no_cycle_collection
from ..model import NotReviewed, Section
from .files import FileDiff, parse_diff

_Spans = list[tuple[int, int, int]]  # each hunk's end in the file's text, added, removed


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


def _split(head: int, spans: _Spans, budget: int) -> list[_Spans]:
    """Greedy packing of whole hunks into slices of at most budget characters with the header."""
    slices: list[_Spans] = [[]]
    size, start = head, head
    for span in spans:
        length = span[0] - start
        if slices[-1] and size + length > budget:
            slices.append([])
            size = head
        slices[-1].append(span)
        size += length
        start = span[0]
    return slices


def _not_reviewed(f: FileDiff, include: Sequence[str], exclude: Sequence[str]) -> NotReviewed | None:
    """Why the file is not sent to the panel (the run's globs, media, binary), or None when it is."""
    # Both ends of a rename: moving a security check into an excluded folder is a change to review.
    paths = [p for p in (f.path, f.old_path) if p]
    excluded = next((p for p in exclude if all(glob_match(each, p) for each in paths)), None)
    if excluded is not None:
        return NotReviewed(f.path, f"excluded by exclude glob '{excluded}'", f.old_path, "excluded", f.change)
    if include and not any(glob_match(each, p) for each in paths for p in include):
        return NotReviewed(f.path, "not matched by any include glob", f.old_path, "excluded", f.change)
    if f.unread is not None:
        kind, reason = f.unread
        return NotReviewed(f.path, reason, f.old_path, kind, f.change)
    return None


def _sections(f: FileDiff, budget: int | None) -> list[Section]:
    """The file's sections: the whole file, or slices of whole hunks within the budget."""
    slices = _split(f.head, list(f.spans), budget) if budget is not None else [list(f.spans)]
    if len(slices) == 1:  # the file's own text, shared by every view of the plan
        added, removed = sum(h[1] for h in f.spans), sum(h[2] for h in f.spans)
        return [Section(f.path, f.path, f.old_path, f.change, f.text, added=added, removed=removed)]
    header, sections, start = f.header, [], f.head
    for part, chunk in enumerate(slices, 1):
        end = chunk[-1][0]
        sections.append(
            Section(
                id=f"{f.path}#{part}",
                path=f.path,
                old_path=f.old_path,
                change=f.change,
                text=header + f.text[start:end],
                part=part,
                parts=len(slices),
                added=sum(h[1] for h in chunk),
                removed=sum(h[2] for h in chunk),
            )
        )
        start = end
    return sections


def _check_budget(budget: int | None) -> None:
    if budget is not None and budget < 1:
        raise ValueError(f"section budget must be at least 1 character, got {budget}")


@no_cycle_collection()  # see core/heap.py
def sections_of(
    files: Iterable[FileDiff], *, budget: int | None = None, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[list[Section], list[NotReviewed]]:
    """The sections to review and the files not reviewed, each sorted by path.

    `budget` (characters) splits a large file along hunk boundaries; None keeps each file whole.
    """
    _check_budget(budget)
    sections: list[Section] = []
    skipped: list[NotReviewed] = []
    for f in files:
        why = _not_reviewed(f, include, exclude)
        if why is not None:
            skipped.append(why)
        else:
            sections.extend(_sections(f, budget))
    sections.sort(key=lambda s: s.path)
    skipped.sort(key=lambda n: n.path)
    return _unique_ids(sections), skipped


def parse_sections(
    text: str, *, budget: int = 60_000, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[list[Section], list[NotReviewed]]:
    """Split a unified diff into sections to review and files not reviewed, each sorted by path."""
    _check_budget(budget)
    return sections_of(parse_diff(text), budget=budget, include=include, exclude=exclude)


def _unique_ids(sections: list[Section]) -> list[Section]:
    """Make section ids unique: a repeated path, or a file named `x#1`, must not share an id.

    Linear: each id remembers the last suffix it was given, so the 16,000th copy of one name
    does not try the 15,999 suffixes before it.
    """
    seen: set[str] = set()
    last: dict[str, int] = {}
    out: list[Section] = []
    for s in sections:
        sid, n = s.id, last.get(s.id, 1)
        while sid in seen:
            n += 1
            sid = f"{s.id}~{n}"
        last[s.id] = n
        seen.add(sid)
        out.append(s if sid == s.id else dataclasses.replace(s, id=sid))
    return out


@dataclass
class _Directories:
    """Every directory of a set of paths, numbered in preorder: its name, paths held and subtree.

    Built in one pass over the sorted paths, each component hashed once, so a path of 8,000
    levels costs its length, not its length squared. The numbering is preorder because the
    paths are sorted, which makes "is an ancestor" two comparisons and ties fall in name order.
    """

    paths: list[str] = field(default_factory=list)
    ends: list[tuple[int, int]] = field(default_factory=list)  # (a path holding it, where its name ends)
    counts: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)  # directories in its subtree, itself included
    # the subdirectory holding the most paths (the first on a tie), and how many
    largest: dict[int, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, paths: Iterable[str]) -> _Directories:
        tree = cls(sorted(paths))
        ids: dict[tuple[int, str], int] = {}  # (parent, name of the component) -> directory
        parents: list[int] = []
        for index, path in enumerate(tree.paths):
            node, k = -1, path.find("/")
            while k != -1:
                key = (node, path[path.rfind("/", 0, k) + 1 : k])
                child = ids.get(key)
                if child is None:
                    child = ids[key] = len(parents)
                    parents.append(node)
                    tree.ends.append((index, k + 1))
                    tree.counts.append(0)
                tree.counts[child] += 1
                node, k = child, path.find("/", k + 1)
        tree.sizes = [1] * len(parents)
        for child in range(len(parents) - 1, -1, -1):
            parent = parents[child]
            if parent != -1:
                tree.sizes[parent] += tree.sizes[child]
                if tree.counts[child] >= tree.largest.get(parent, (child, -1))[1]:
                    tree.largest[parent] = (child, tree.counts[child])  # walking back: the first wins a tie
        return tree

    def name(self, directory: int) -> str:
        index, end = self.ends[directory]
        return self.paths[index][:end]

    def related(self, a: int, b: int) -> bool:
        """Whether one of the two directories holds the other (or they are one)."""
        return a <= b < a + self.sizes[a] or b <= a < b + self.sizes[b]

    def narrowest(self, directory: int) -> int:
        """The subdirectory that holds most of the directory's paths while its siblings hold a tenth or more.

        Each step keeps at most nine tenths of the paths, so it ends within a few dozen steps.
        """
        while True:
            best = self.largest.get(directory)
            # Narrow when the subdirectory holds most of the paths but its siblings are a real
            # share (10%+): excluding the parent would also drop those, likely the project's code.
            total = self.counts[directory]
            if best is None or best[1] * 4 < total * 3 or (total - best[1]) * 10 < total:
                return directory
            directory = best[0]


def crowded_directories(paths: Sequence[str], most: int = 3) -> list[tuple[str, int]]:
    """The directories holding the most of `paths`, as (`dir/`, count), for a hint on what to exclude.

    A directory whose one subdirectory holds at least three quarters of its paths, with a
    tenth or more elsewhere, gives way to that subdirectory (`mypy/typeshed/`, not `mypy/`);
    no directory is listed with one of its ancestors, and only directories holding at least
    two paths are named. Linear in the paths' length but for two sorts.
    """
    tree = _Directories.of(paths)
    chosen: list[int] = []
    for directory in sorted(range(len(tree.counts)), key=lambda d: -tree.counts[d]):
        if len(chosen) == most or tree.counts[directory] < 2:
            break  # sorted by count: no later directory (nor its narrowing) holds two paths
        directory = tree.narrowest(directory)
        if tree.counts[directory] >= 2 and not any(tree.related(directory, c) for c in chosen):
            chosen.append(directory)
    return [(tree.name(d), tree.counts[d]) for d in chosen]
