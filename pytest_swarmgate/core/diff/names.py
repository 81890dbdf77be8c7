"""An entry's two file names, as written and as repository paths: telling names with spaces apart, and prefixes.

A `diff --git` line writes two names with no separator that a name cannot also hold, so the
names are split where the entry's other lines (`---`/`+++`, `rename from`/`to`) say, or else
where one path shows under two prefixes. Every search is capped, so a hostile line stays cheap.
"""

from __future__ import annotations

from .entries import NOT_A_DIFF, QUOTED, DiffError, Entry, unquote

DEV_NULL = "/dev/null"
GIT_PREFIXES = ("a/", "b/")
# caps the ways a `diff --git` line with spaces is tried, so a hostile line stays cheap
_MAX_TRIES = 32

Moved = tuple[str, str]


def moved(entry: Entry) -> tuple[Moved | None, str | None]:
    """((old path, new path), "rename" or "copy") from git's own lines, which carry no prefix; else (None, None)."""
    for kind in ("rename", "copy"):
        if f"{kind} from" in entry.info and f"{kind} to" in entry.info:
            return (unquote(entry.info[f"{kind} from"]), unquote(entry.info[f"{kind} to"])), kind
    return None, None


def _tail(left: str, right: str) -> str | None:
    """The longest path both names end with at a component boundary (left = P + X, right = Q + X)."""
    if left == right:
        return left
    j, tries = 0, 0
    while j != -1 and tries < _MAX_TRIES:
        x = right[j:]
        if x and left.endswith(x) and (len(left) == len(x) or left[-len(x) - 1] == "/"):
            return x
        j = right.find("/", j) + 1 or -1
        tries += 1
    return None


def _best_split(text: str, sep: str) -> tuple[str, str] | None:
    """Split `text` at one `sep` into two names of one path under two prefixes, preferring the longest path."""
    middle = (len(text) - len(sep)) // 2
    if text[middle : middle + len(sep)] == sep and _tail(text[:middle], text[middle + len(sep) :]) is not None:
        return text[:middle], text[middle + len(sep) :]  # equal prefixes (a/ b/, none): the usual case
    best: tuple[int, str, str] | None = None
    k, tries = text.find(sep), 0
    while k != -1 and tries < _MAX_TRIES:
        left, right = text[:k], text[k + len(sep) :]
        x = _tail(left, right)
        if x is not None and (best is None or len(x) > best[0]):
            best = (len(x), left, right)
        k, tries = text.find(sep, k + 1), tries + 1
    return (best[1], best[2]) if best else None


def _split_moved(s: str, old: str, new: str) -> tuple[str, str] | None:
    """Split a `diff --git` line of a rename or copy where its names end with the paths git's lines give."""
    k = s.find(f"{old} ")
    while k != -1 and s.endswith(new):
        left, right = s[: k + len(old)], s[k + len(old) + 1 :]
        if _tail(left, old) == old and _tail(right, new) == new:
            return left, right
        k = s.find(f"{old} ", k + 1)
    return None


def _git_names(entry: Entry, move: Moved | None) -> tuple[str, str] | None:
    """The old and new names of a `diff --git` line, prefixes included; None when they cannot be told apart."""
    s = entry.git or ""
    if s.startswith('"'):
        m = QUOTED.match(s)
        if m is None or s[m.end() : m.end() + 1] != " ":
            # git quotes a whole name or none of it (`"a/"x` is neither)
            raise DiffError(f"{NOT_A_DIFF}the 'diff --git' line {entry.start + 1} quotes only part of a file name")
        return unquote(m.group()), unquote(s[m.end() + 1 :])
    if s.endswith('"') and (k := s.find(' "')) != -1:
        return s[:k], unquote(s[k + 1 :])
    # unquoted names may hold spaces (and " b/"): split where the known names say
    if entry.plus not in (None, DEV_NULL) and s.endswith(f" {entry.plus}"):
        return s[: -len(entry.plus) - 1], entry.plus
    if entry.minus not in (None, DEV_NULL) and s.startswith(f"{entry.minus} "):
        return entry.minus, s[len(entry.minus) + 1 :]
    if move is not None:
        return _split_moved(s, *move)
    return _best_split(s, " ")


def written_names(entry: Entry, move: Moved | None) -> tuple[str | None, str | None]:
    """The entry's old and new names as written, prefixes included ("/dev/null" kept); split once per entry."""
    if entry.written is None:
        if entry.git is not None:
            entry.written = _written_git_names(entry, move)
        else:
            entry.written = _binary_names(entry) if entry.binary is not None else (entry.minus, entry.plus)
    return entry.written


def _written_git_names(entry: Entry, move: Moved | None) -> tuple[str | None, str | None]:
    names = _git_names(entry, move)
    if names is not None:
        for side, said in zip(names, (entry.minus, entry.plus), strict=True):
            if said not in (None, DEV_NULL) and said != side:
                raise DiffError(
                    f"{NOT_A_DIFF}the '---'/'+++' names of the entry at line {entry.start + 1}"
                    " do not match its 'diff --git' line"
                )
        return names
    if entry.minus is None and move is None:
        line = entry.start + 1
        raise DiffError(f"{NOT_A_DIFF}cannot tell the two file names of the 'diff --git' line {line} apart")
    return entry.minus, entry.plus


def _binary_names(entry: Entry) -> tuple[str, str]:
    """The names of a plain diff's `Binary files A and B differ` (or hg's `Binary file A has changed`) line."""
    line = entry.binary or ""
    body = line[len("Binary files ") : -len(" differ")] if line.endswith(" differ") else ""
    if not body:  # hg: "Binary file NAME has changed"
        name = line[len("Binary file ") : -len(" has changed")]
        return name, name
    first, _, second = body.partition(" and ")
    if not (first and second) or "\t" in body:
        # diff and git never write such a line (git quotes a tab in a name): a change it hides is not passed
        raise DiffError(f"{NOT_A_DIFF}cannot read the two file names of the binary file line {entry.start + 1}")
    return _best_split(body, " and ") or (first, second)


def _prefixes(old: str | None, new: str | None, move: Moved | None) -> tuple[str, str] | None:
    """The (old, new) prefixes one entry shows, when both its names are known."""
    if old in (None, DEV_NULL) or new in (None, DEV_NULL):
        return None
    if move is not None:
        if _tail(old, move[0]) == move[0] and _tail(new, move[1]) == move[1]:
            return old[: len(old) - len(move[0])], new[: len(new) - len(move[1])]
        return None
    x = _tail(old, new)
    return None if x is None else (old[: len(old) - len(x)], new[: len(new) - len(x)])


def strip_prefix(name: str | None, prefix: str) -> str | None:
    """The repository path of a written name: its prefix off; None for /dev/null."""
    if name is None or name == DEV_NULL:
        return None
    return name[len(prefix) :] if prefix and name.startswith(prefix) and len(name) > len(prefix) else name


def _sides(entry: Entry) -> tuple[bool, bool]:
    """Whether the entry's old and new sides exist, by git's header lines and /dev/null."""
    return (
        "new file mode" not in entry.info and entry.minus != DEV_NULL,
        "deleted file mode" not in entry.info and entry.plus != DEV_NULL,
    )


def _fits(names: tuple[str | None, str | None], sides: tuple[bool, bool], pair: tuple[str, str]) -> bool:
    """Whether every existing side's name lies under the prefix `pair` gives for its side."""
    return all(
        name.startswith(prefix)
        for name, prefix, exists in zip(names, pair, sides, strict=True)
        if exists and name not in (None, DEV_NULL)
    )


def diff_prefixes(entries: list[Entry]) -> dict[int, tuple[str, str]]:
    """The prefixes to strip from each entry's names: one pair for the whole diff when its entries agree.

    Every entry that shows both names of one path gives the pair of prefixes in front of it
    (git's `a/` `b/`, none for --no-prefix, `old/` `new/` for --src-prefix/--dst-prefix or a
    `diff -ruN old/ new/` tree). The entries of a file on both sides decide: when they agree,
    that pair applies to every entry whose names lie under it, added and deleted files
    included (`git diff --no-index old new` writes an added file as `a/new/x b/new/x`, which
    alone reads as the pair `a/` `b/`). With no such entry, the added and deleted files'
    pairs decide the same way. When they disagree (diffs made different ways, pasted
    together) each entry uses its own pair, and `a/` `b/` where it shows none.
    """
    both: dict[int, tuple[str, str]] = {}
    one: dict[int, tuple[str, str]] = {}
    names: dict[int, tuple[str | None, str | None]] = {}
    for e in entries:
        move, _ = moved(e)
        try:
            names[id(e)] = written_names(e, move)
        except DiffError:
            continue  # reported when the entry is built
        pair = _prefixes(*names[id(e)], move)
        if pair is not None:
            (both if all(_sides(e)) else one)[id(e)] = pair
    own = {**one, **both}
    pairs = set(both.values()) or set(one.values())
    if len(pairs) != 1:
        return own
    (shared,) = pairs
    return {id(e): shared if _takes(e, own.get(id(e)), names.get(id(e)), shared) else own[id(e)] for e in entries}


def _takes(
    entry: Entry, own: tuple[str, str] | None, names: tuple[str | None, str | None] | None, shared: tuple[str, str]
) -> bool:
    """Whether the entry takes the diff's shared prefixes: its own agree, it has none, or its names lie under them."""
    return own is None or own == shared or names is None or _fits(names, _sides(entry), shared)
