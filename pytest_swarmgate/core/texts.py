"""Full text of a file before and after the diff, where the gate can know it: the one module that reads
repository files, for the held check and for the voters' context (core/context/).

The held check judges a change to pytest's configuration on what pytest would read, and a voter
judges a hunk better beside its enclosing function, so both need whole files, not only hunks.
The honest sources:

- git objects (`GitFiles`, one commit; `GitTexts`, two: the merge base and HEAD under
  `--swarm-base`), read with `git ls-tree` and `git cat-file` (list arguments, never a shell,
  never the working tree);
- one side read from a source and the other made by applying the diff's hunks to it in memory
  (`PatchTexts`): the base checkout is the old side, so the hunks give the new text; in the
  PR's checkout the tree is the new side and the hunks reversed give the old. A file whose
  hunks apply neither way is unknown.

Anything else is `Unknown`, with the reason, and the caller falls back to the hunks alone.
Paths come from the diff, so every read refuses what could leave the repository or read more
than a text file: an absolute path, `..`, `.` or empty components, a backslash, NUL or newline,
a `.git` component (a checkout's `.git/config` can hold a CI token); anything but a regular
file (in git a symbolic link, a submodule, a directory; in a tree a FIFO, a device, a link that
resolves outside the root); a file over `MAX_READ` bytes, never read whole; binary (a NUL byte)
or non-UTF-8 content. Nothing read is ever executed or imported.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .choices import Side
from .model import Section

MAX_READ = 4 * 1024 * 1024
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_SIGNS = frozenset(" -+")  # the lines of a hunk; any other (`\\ No newline at end of file`) is not one
_GIT_BATCH = 500  # paths per git call: well inside any command-line limit


class Unknown(Exception):
    """The text of this file on this side cannot be known; `reason` says why, in a few words."""

    def __init__(self, path: str, reason: str = "not known here") -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


class NoSource(Unknown):
    """Nothing can be known: there is no repository to read from (the run says so once)."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "no repository to read it from")


class Texts(Protocol):
    """The old and new text of a path: None when the file does not exist on that side; raises Unknown."""

    def old(self, path: str) -> str | None: ...

    def new(self, path: str) -> str | None: ...


class FileSource(Texts, Protocol):
    """Texts that also say where each came from, so a part of the context can name its source."""

    def describe(self, path: str, side: Side) -> str: ...


class Reader(Protocol):
    """One tree of files: a path's text, None when it does not exist there; raises Unknown."""

    label: str

    def read(self, path: str) -> str | None: ...


def check_path(path: str) -> list[str]:
    """The components of a repository path that may be read, or Unknown naming what is wrong with it."""
    parts = path.split("/")
    if not path or path.startswith("/") or any(c in path for c in "\\\0\n\r\ufffd"):
        raise Unknown(path, "not a plain relative path")
    if any(p in ("", ".", "..") for p in parts):
        raise Unknown(path, "a path with an empty, '.' or '..' component")
    if any(p.casefold() == ".git" for p in parts):
        raise Unknown(path, "inside .git")
    return parts


def decode_text(data: bytes, path: str) -> str:
    """Bytes of a text file as str; binary or non-UTF-8 content is Unknown (never decoded by guesswork)."""
    if b"\0" in data:
        raise Unknown(path, "binary content")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Unknown(path, "not UTF-8 text") from None


class NoTexts:
    """Nothing known: every question is Unknown."""

    def old(self, path: str) -> str | None:
        raise NoSource(path)

    def new(self, path: str) -> str | None:
        raise NoSource(path)

    def describe(self, path: str, side: Side) -> str:
        return "none"


@dataclass(frozen=True)
class _Entry:
    """One `git ls-tree -l` line."""

    mode: str
    kind: str
    oid: str
    size: int


class GitFiles:
    """The files of one commit, from git objects: never the working tree, never a link followed.

    Reads are batched (`prefetch`): one `ls-tree` and one `cat-file --batch` per few hundred paths;
    for more, one listing of the whole tree, kept (git matches every pathspec at every entry it
    visits, so a thousand paths cost more than the tree), and one `cat-file --batch` for them all.
    """

    def __init__(
        self, cwd: str | os.PathLike[str], rev: str, max_bytes: int = MAX_READ, label: str | None = None
    ) -> None:
        self.cwd, self.rev, self.max_bytes = os.fspath(cwd), rev, max_bytes
        short = rev[:12] if re.fullmatch(r"[0-9a-f]{40,64}", rev) else rev
        self.label = label or f"git {short}"
        self._known: dict[str, str | Unknown | None] = {}
        self._tree: dict[str, _Entry] | None = None  # every entry of the commit, once listed

    def read(self, path: str) -> str | None:
        if path not in self._known:
            self.prefetch([path])
        value = self._known[path]
        if isinstance(value, Unknown):
            raise value
        return value

    def prefetch(self, paths: Iterable[str]) -> None:
        """Read every path not read yet, a few git calls for all of them."""
        todo: list[str] = []
        for path in dict.fromkeys(paths):
            if path in self._known:
                continue
            try:
                check_path(path)
                todo.append(path)
            except Unknown as exc:
                self._known[path] = exc
        if self._tree is None and len(todo) > _GIT_BATCH:
            self._tree = self._entries(None)
        if self._tree is not None:
            self._load(todo, self._tree)
            return
        for i in range(0, len(todo), _GIT_BATCH):
            batch = todo[i : i + _GIT_BATCH]
            self._load(batch, self._entries(batch))

    def _git(self, args: list[str], stdin: bytes | None = None) -> bytes | None:
        try:
            proc = subprocess.run(["git", *args], cwd=self.cwd, input=stdin, capture_output=True, check=False)
        except OSError:
            return None
        return proc.stdout if proc.returncode == 0 else None

    def _entries(self, paths: list[str] | None) -> dict[str, _Entry] | None:
        """Each path's tree entry in the commit (absent paths left out), or with None every entry (trees
        too, so a directory is named one); None when git cannot read the commit."""
        if self.rev.startswith("-"):
            return None
        which = ["-r", "-t", self.rev] if paths is None else [self.rev, "--", *paths]
        out = self._git(["--literal-pathspecs", "ls-tree", "-z", "-l", "--full-tree", *which])
        if out is None:
            return None
        entries: dict[str, _Entry] = {}
        for record in out.split(b"\0"):
            meta, tab, name = record.partition(b"\t")
            fields = meta.split()
            if tab and len(fields) == 4:
                size = int(fields[3]) if fields[3].isdigit() else 0
                entries[name.decode("utf-8", "surrogateescape")] = _Entry(
                    fields[0].decode(), fields[1].decode(), fields[2].decode(), size
                )
        return entries

    def _refusal(self, path: str, entry: _Entry) -> Unknown | None:
        if entry.mode == "120000":
            return Unknown(path, "a symbolic link (not followed)")
        if entry.kind != "blob":
            return Unknown(path, "a submodule" if entry.kind == "commit" else "a directory")
        if entry.size > self.max_bytes:
            return Unknown(path, f"over {self.max_bytes} bytes (not read)")
        return None

    def _load(self, paths: list[str], entries: dict[str, _Entry] | None) -> None:
        if entries is None:
            for path in paths:
                self._known[path] = Unknown(path, f"git cannot read {self.label}")
            return
        wanted: dict[str, str] = {}
        for path in paths:
            entry = entries.get(path)
            refused = self._refusal(path, entry) if entry is not None else None
            self._known[path] = refused
            if entry is not None and refused is None:
                wanted[path] = entry.oid
        blobs = self._blobs(list(dict.fromkeys(wanted.values())))
        for path, oid in wanted.items():
            data = blobs.get(oid)
            try:
                self._known[path] = decode_text(data, path) if data is not None else Unknown(path, "git read failed")
            except Unknown as exc:
                self._known[path] = exc

    def _blobs(self, oids: list[str]) -> dict[str, bytes]:
        """The content of each blob, by object id (the sizes were checked before)."""
        if not oids:
            return {}
        out = self._git(["cat-file", "--batch"], "".join(o + "\n" for o in oids).encode())
        blobs: dict[str, bytes] = {}
        at = 0
        while out is not None and at < len(out):
            end = out.find(b"\n", at)
            fields = out[at:end].split() if end != -1 else []
            if len(fields) != 3 or not fields[2].isdigit():
                break
            size = int(fields[2])
            blobs[fields[0].decode()] = out[end + 1 : end + 1 + size]
            at = end + 1 + size + 1
        return blobs


class GitTexts:
    """Texts from two commits of a repository (the gate ran git, so both sides are at hand)."""

    def __init__(self, git_dir: str | os.PathLike[str], old_rev: str, new_rev: str) -> None:
        self.sides = {"old": GitFiles(git_dir, old_rev), "new": GitFiles(git_dir, new_rev)}

    def old(self, path: str) -> str | None:
        return self.sides["old"].read(path)

    def new(self, path: str) -> str | None:
        return self.sides["new"].read(path)

    def describe(self, path: str, side: Side) -> str:
        return self.sides[side].label

    def prefetch(self, paths: Iterable[str]) -> None:
        wanted = list(paths)
        for files in self.sides.values():
            files.prefetch(wanted)


class TreeFiles:
    """A directory's files, read-only, confined to it: regular files only, size-capped, no link out of it."""

    def __init__(self, root: str | os.PathLike[str], max_bytes: int = MAX_READ, label: str = "checkout") -> None:
        self.root, self.max_bytes, self.label = Path(root).resolve(), max_bytes, label

    def read(self, path: str) -> str | None:
        real = self._inside(path)
        try:
            st = os.stat(real)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise Unknown(path, exc.strerror or "cannot stat") from None
        if not stat.S_ISREG(st.st_mode):
            raise Unknown(path, "not a regular file")
        if st.st_size > self.max_bytes:
            raise Unknown(path, f"over {self.max_bytes} bytes (not read)")
        return decode_text(self._bytes(path, real), path)

    def _inside(self, path: str) -> Path:
        """The resolved file a path names, refused when it leaves the root or enters .git."""
        try:
            real = self.root.joinpath(*check_path(path)).resolve()
        except (OSError, RuntimeError):
            raise Unknown(path, "cannot resolve (a link loop?)") from None
        if not real.is_relative_to(self.root):
            raise Unknown(path, "resolves outside the repository")
        if any(p.casefold() == ".git" for p in real.relative_to(self.root).parts):
            raise Unknown(path, "resolves into .git")
        return real

    def _bytes(self, path: str, real: Path) -> bytes:
        # Non-blocking and no link followed: the file may have been swapped since it was checked.
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(real, flags)
        except OSError as exc:
            raise Unknown(path, exc.strerror or "cannot open") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise Unknown(path, "not a regular file")
            chunks: list[bytes] = []
            size = 0
            while size <= self.max_bytes:
                chunk = os.read(fd, min(1 << 20, self.max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError as exc:
            raise Unknown(path, exc.strerror or "cannot read") from None
        finally:
            os.close(fd)
        if size > self.max_bytes:
            raise Unknown(path, f"over {self.max_bytes} bytes (not read)")
        return b"".join(chunks)


def merge_base(cwd: str | os.PathLike[str], base: str) -> str | None:
    """The commit `git diff base...HEAD` compares against, or None when git cannot say."""
    if base.startswith("-"):
        return None
    try:
        proc = subprocess.run(["git", "merge-base", base, "HEAD"], cwd=cwd, capture_output=True, check=False)
    except OSError:
        return None
    out = proc.stdout.decode("ascii", "replace").strip()
    return out if proc.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", out) else None


def work_tree(cwd: str | os.PathLike[str]) -> str | None:
    """The top of the git work tree `cwd` is in, or None when it is in none."""
    try:
        proc = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True, check=False)
    except OSError:
        return None
    top = proc.stdout.decode("utf-8", "surrogateescape").strip()
    return top if proc.returncode == 0 and top and os.path.isdir(top) else None


@dataclass(frozen=True)
class Hunk:
    """One hunk of a file's diff: both sides' lines, and the line numbers its `-` and `+` lines have."""

    old_start: int
    new_start: int
    old: tuple[str, ...]  # the old side's lines (context and removed), no "\n"
    new: tuple[str, ...]  # the new side's lines (context and added)
    removed: tuple[int, ...]  # lines of the old file this hunk removes
    added: tuple[int, ...]  # lines of the new file this hunk adds


def parse_hunks(text: str) -> list[Hunk]:
    """The hunks of one file's diff text (a section's text), in order (one loop, no call per line: a
    2,000-file diff has a million lines)."""
    out: list[Hunk] = []
    start = (0, 0)
    old: list[str] | None = None
    new: list[str] = []
    removed: list[int] = []
    added: list[int] = []
    at_old = at_new = 0
    for line in text.split("\n"):
        sign = line[:1]
        if sign == "@" and (m := _HUNK.match(line)):
            if old is not None:
                out.append(Hunk(*start, tuple(old), tuple(new), tuple(removed), tuple(added)))
            start = (int(m.group(1)), int(m.group(3)))
            # Line numbers count from the first line the hunk shows (an empty side starts at 0).
            at_old, at_new = max(start[0], 1), max(start[1], 1)
            old, new, removed, added = [], [], [], []
        elif old is not None and sign in _SIGNS:
            body = line[1:]
            if sign != "+":
                old.append(body)
                if sign == "-":
                    removed.append(at_old)
                at_old += 1
            if sign != "-":
                new.append(body)
                if sign == "+":
                    added.append(at_new)
                at_new += 1
    if old is not None:
        out.append(Hunk(*start, tuple(old), tuple(new), tuple(removed), tuple(added)))
    return out


def hunks_of(sections: Iterable[Section]) -> dict[str, list[Hunk]]:
    """The hunks of every path, in order (a file split into several sections joined again)."""
    out: dict[str, list[Hunk]] = {}
    for section in sorted(sections, key=lambda s: (s.path, s.part)):
        out.setdefault(section.path, []).extend(parse_hunks(section.text))
    return out


def _apply(lines: list[str], hunks: Iterable[tuple[int, tuple[str, ...], tuple[str, ...]]]) -> list[str] | None:
    """Replace each hunk's `from` lines at its start with its `to` lines, or None if they do not match."""
    out: list[str] = []
    at = 0
    for start, before, after in hunks:
        i = max(start - 1, 0) if before else start  # a hunk with no old lines starts after line `start`
        if i < at or list(lines[i : i + len(before)]) != list(before):
            return None
        out += lines[at:i] + list(after)
        at = i + len(before)
    return out + lines[at:]


Apply = Callable[[list[str], list[Hunk]], "list[str] | None"]


def _forward(lines: list[str], hunks: list[Hunk]) -> list[str] | None:
    return _apply(lines, ((h.old_start, h.old, h.new) for h in hunks))


def _backward(lines: list[str], hunks: list[Hunk]) -> list[str] | None:
    return _apply(lines, ((h.new_start, h.new, h.old) for h in hunks))


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


Pair = tuple[str | None, str | None, str, str]  # old text, new text, and where each came from


class PatchTexts:
    """Texts from one tree of files and the diff's hunks: the tree is the old side (the hunks applied
    forwards give the new text) or the new side (applied backwards they give the old).

    `changes` maps each path the hunks change to its change kind; `moves` maps a renamed file's new
    path to its old one. With `diff_paths` (every path the diff names), a path outside it is
    unchanged: the same text on both sides. Without it, any other path is Unknown.
    """

    def __init__(
        self,
        files: Reader | str | os.PathLike[str],
        sections: Iterable[Section],
        changes: Mapping[str, str],
        *,
        moves: Mapping[str, str] | None = None,
        diff_paths: Iterable[str] | None = None,
    ) -> None:
        self.files: Reader = TreeFiles(files) if isinstance(files, (str, os.PathLike)) else files
        self.hunks = hunks_of(sections)
        self.changes = changes
        self.moves = dict(moves or {})
        self.moved_from = {old: new for new, old in self.moves.items()}
        self.diff_paths = None if diff_paths is None else frozenset(diff_paths) | set(changes) | set(self.moved_from)
        self.cache: dict[str, Pair] = {}

    def old(self, path: str) -> str | None:
        if path in self.moved_from:
            return self._both(self.moved_from[path])[0]
        if path in self.moves:
            raise Unknown(path, "renamed: its old text is under its old path")
        return self._both(path)[0]

    def new(self, path: str) -> str | None:
        if path in self.moved_from:
            raise Unknown(path, "renamed: its new text is under its new path")
        return self._both(path)[1]

    def prefetch(self, paths: Iterable[str]) -> None:
        batch = getattr(self.files, "prefetch", None)
        if batch is not None:
            batch(list(paths))

    def describe(self, path: str, side: Side) -> str:
        try:
            pair = self._both(self.moved_from.get(path, path))
        except Unknown:
            return self.files.label
        return pair[2] if side == "old" else pair[3]

    def _both(self, path: str) -> Pair:
        if path not in self.cache:
            self.cache[path] = self._pair(path)
        return self.cache[path]

    def _pair(self, path: str) -> Pair:
        label = self.files.label
        change = self.changes.get(path)
        source = self.moves.get(path)  # a rename's or copy's old path
        if change is None:
            if self.diff_paths is None or path in self.diff_paths:
                raise Unknown(path, "not a file whose text the diff changes")
            text = self.files.read(path)
            return text, text, label, label
        if change not in ("added", "deleted", "modified", "renamed") or (change == "renamed" and source is None):
            raise Unknown(path, f"a {change} file")
        hunks = self.hunks.get(path, [])
        if change in ("added", "deleted") and source is None:
            return self._whole(path, hunks, change == "added")
        forward = self._side(source or path, hunks, _forward)
        if forward is not None and (hunks or source):
            tree, made = forward
            return (None if change == "added" else tree), made, label, f"{label} + hunks"
        backward = self._side(path, hunks, _backward)
        if backward is not None and (hunks or source):
            tree, made = backward
            return (None if change == "added" else made), tree, f"{label} - hunks", label
        raise Unknown(path, f"the hunks do not apply to the {label}")

    def _side(self, path: str, hunks: list[Hunk], apply: Apply) -> tuple[str, str] | None:
        """The tree's text of `path` and the other side made from it, or None when it is absent or they do not apply."""
        tree = self.files.read(path)
        made = apply(_lines(tree), hunks) if tree is not None else None
        return None if tree is None or made is None else (tree, "".join(line + "\n" for line in made))

    def _whole(self, path: str, hunks: list[Hunk], added: bool) -> Pair:
        """An added or deleted file: its whole text is in the diff, and the tree holds that text or nothing."""
        made = (_forward if added else _backward)([], hunks)
        tree = self.files.read(path)
        if made is None or (tree is not None and _lines(tree) != made):
            raise Unknown(path, f"the {self.files.label} holds another text under this path")
        text = "".join(line + "\n" for line in made)
        label = self.files.label if tree is not None else "diff"
        return (None, text, "none", label) if added else (text, None, label, "none")


def diff_side(hunks: list[Hunk], side: Side) -> str | None:
    """An added file's new text or a deleted file's old text, from its hunks alone (None if they do not add up)."""
    made = _forward([], hunks) if side == "new" else _backward([], hunks)
    return None if made is None else "".join(line + "\n" for line in made)
