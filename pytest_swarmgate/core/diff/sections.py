"""Sectioning: the parsed files, filtered by the run's globs, cut into the sections the panel judges."""

from __future__ import annotations

import dataclasses
import fnmatch
from collections import Counter
from collections.abc import Iterable, Sequence

from ..model import NotReviewed, Section
from .files import FileDiff, parse_diff

_Hunks = list[tuple[str, int, int]]


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


def _split(header: str, hunks: _Hunks, budget: int) -> list[_Hunks]:
    """Greedy packing of whole hunks into slices of at most budget characters with the header."""
    slices: list[_Hunks] = [[]]
    size = len(header)
    for hunk in hunks:
        if slices[-1] and size + len(hunk[0]) > budget:
            slices.append([])
            size = len(header)
        slices[-1].append(hunk)
        size += len(hunk[0])
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
    slices = _split(f.header, list(f.hunks), budget) if budget is not None else [list(f.hunks)]
    return [
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
    ]


def _check_budget(budget: int | None) -> None:
    if budget is not None and budget < 1:
        raise ValueError(f"section budget must be at least 1 character, got {budget}")


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
