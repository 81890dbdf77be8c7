"""Full text of a changed file before and after the diff, where the gate can know it. Pure but for git and reads.

The held check judges a change to pytest's configuration on what pytest would read, so it
needs the whole old and new file, not only the hunks. Two honest sources:

- git, when the gate made the diff itself (`--swarm-base`): `git cat-file` of the two commits;
- the working tree, when the patch applies to it (the base-checkout recipe: the tree is the
  old side, so the hunks applied in memory give the new text; or the PR's checkout, where the
  tree is the new side and the hunks reversed give the old).

Anything else is unknown, and the caller falls back to judging the hunks alone. Paths come
from the diff, so a working-tree read is only ever of a relative path inside the root, with
no `..`, resolved without leaving the root, read-only and size-capped.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from .model import Section

MAX_READ = 4 * 1024 * 1024
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class Unknown(Exception):
    """The text of this file on this side cannot be known."""


class Texts(Protocol):
    """The old and new text of a path: None when the file does not exist on that side; raises Unknown."""

    def old(self, path: str) -> str | None: ...

    def new(self, path: str) -> str | None: ...


class NoTexts:
    """Nothing known: every question is Unknown."""

    def old(self, path: str) -> str | None:
        raise Unknown(path)

    def new(self, path: str) -> str | None:
        raise Unknown(path)


class GitTexts:
    """Texts from two commits of a repository (the gate ran git, so both sides are at hand)."""

    def __init__(self, git_dir: str | os.PathLike[str], old_rev: str, new_rev: str) -> None:
        self.cwd, self.old_rev, self.new_rev = os.fspath(git_dir), old_rev, new_rev

    def old(self, path: str) -> str | None:
        return self._show(self.old_rev, path)

    def new(self, path: str) -> str | None:
        return self._show(self.new_rev, path)

    def _show(self, rev: str, path: str) -> str | None:
        if not path or "\n" in path or "\0" in path:
            raise Unknown(path)
        try:
            proc = subprocess.run(
                ["git", "cat-file", "--batch"], cwd=self.cwd, input=f"{rev}:{path}\n".encode(),
                capture_output=True, check=False,
            )  # fmt: skip
        except OSError as exc:
            raise Unknown(path) from exc
        head, _, body = proc.stdout.partition(b"\n")
        fields = head.split()
        if proc.returncode != 0 or not fields:
            raise Unknown(path)
        if fields[-1] == b"missing":
            # A missing path in a commit that exists is an absent file; a bad revision is unknown.
            if subprocess.run(["git", "rev-parse", "--verify", "-q", f"{rev}^{{commit}}"], cwd=self.cwd,
                              capture_output=True, check=False).returncode != 0:  # fmt: skip
                raise Unknown(path)
            return None
        if len(fields) != 3 or fields[1] != b"blob":
            raise Unknown(path)
        return body[: int(fields[2])].decode("utf-8", "replace")


def merge_base(cwd: str | os.PathLike[str], base: str) -> str | None:
    """The commit `git diff base...HEAD` compares against, or None when git cannot say."""
    try:
        proc = subprocess.run(["git", "merge-base", base, "HEAD"], cwd=cwd, capture_output=True, check=False)
    except OSError:
        return None
    out = proc.stdout.decode("ascii", "replace").strip()
    return out if proc.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", out) else None


Hunk = tuple[int, int, list[str], list[str]]  # (old start, new start, old-side lines, new-side lines), no "\n"


def hunks_of(sections: Iterable[Section]) -> dict[str, list[Hunk]]:
    """The hunks of every path, in order (a file split into several sections joined again)."""
    out: dict[str, list[Hunk]] = {}
    for section in sorted(sections, key=lambda s: (s.path, s.part)):
        hunks = out.setdefault(section.path, [])
        old: list[str] = []
        new: list[str] = []
        for line in section.text.split("\n"):
            m = _HUNK.match(line)
            if m:
                old, new = [], []
                hunks.append((int(m.group(1)), int(m.group(3)), old, new))
            elif hunks and line[:1] in (" ", "-", "+"):
                if line[:1] != "+":
                    old.append(line[1:])
                if line[:1] != "-":
                    new.append(line[1:])
    return out


def _apply(lines: list[str], hunks: Iterable[tuple[int, list[str], list[str]]]) -> list[str] | None:
    """Replace each hunk's `from` lines at its start with its `to` lines, or None if they do not match."""
    out: list[str] = []
    at = 0
    for start, before, after in hunks:
        i = max(start - 1, 0) if before else start  # a hunk with no old lines starts after line `start`
        if i < at or lines[i : i + len(before)] != before:
            return None
        out += lines[at:i] + after
        at = i + len(before)
    return out + lines[at:]


class PatchTexts:
    """Texts from the working tree, when the patch applies to it forwards (tree = old) or backwards (tree = new)."""

    def __init__(self, root: str | os.PathLike[str], sections: Iterable[Section], changes: dict[str, str]) -> None:
        """`changes` maps each path to its change kind ("added", "deleted", "modified", ...)."""
        self.root = Path(root).resolve()
        self.hunks = hunks_of(sections)
        self.changes = changes
        self.cache: dict[str, tuple[str | None, str | None]] = {}

    def old(self, path: str) -> str | None:
        return self._both(path)[0]

    def new(self, path: str) -> str | None:
        return self._both(path)[1]

    def _read(self, path: str) -> str | None:
        parts = path.split("/")
        if not path or path.startswith("/") or "\\" in path or "\0" in path or any(p in ("", ".", "..") for p in parts):
            raise Unknown(path)
        target = self.root.joinpath(*parts)
        try:
            real = target.resolve()
            if not real.is_relative_to(self.root):
                raise Unknown(path)
            if not real.exists():
                return None
            with open(real, "rb") as f:
                data = f.read(MAX_READ + 1)
        except OSError as exc:
            raise Unknown(path) from exc
        if len(data) > MAX_READ:
            raise Unknown(path)
        return data.decode("utf-8", "replace")

    def _both(self, path: str) -> tuple[str | None, str | None]:
        if path in self.cache:
            return self.cache[path]
        change = self.changes.get(path)
        if change not in ("added", "deleted", "modified"):
            raise Unknown(path)
        tree = self._read(path)
        hunks = self.hunks.get(path, [])
        result: tuple[str | None, str | None]
        if tree is None:
            # Absent in the tree: the tree is the old side of an added file, or the new side of a deleted one.
            if change == "added":
                result = (None, _join(_forward([], hunks)))
            elif change == "deleted":
                result = (_join(_backward([], hunks)), None)
            else:
                raise Unknown(path)
        else:
            lines = tree.split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            forward, backward = _forward(lines, hunks), _backward(lines, hunks)
            if change == "modified" and forward is not None and hunks:
                result = (tree, _join(forward))
            elif change == "modified" and backward is not None and hunks:
                result = (_join(backward), tree)
            elif change == "added" and lines == _forward([], hunks):
                result = (None, tree)
            elif change == "deleted" and lines == _backward([], hunks):
                result = (tree, None)
            else:
                raise Unknown(path)
        self.cache[path] = result
        return result


def _forward(lines: list[str], hunks: list[Hunk]) -> list[str] | None:
    return _apply(lines, ((h[0], h[2], h[3]) for h in hunks))


def _backward(lines: list[str], hunks: list[Hunk]) -> list[str] | None:
    return _apply(lines, ((h[1], h[3], h[2]) for h in hunks))


def _join(lines: list[str] | None) -> str | None:
    return None if lines is None else "".join(line + "\n" for line in lines)
