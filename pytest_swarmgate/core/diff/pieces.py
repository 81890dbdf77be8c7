"""The diff's text as pieces, one a file entry, each decoded alone: one emoji widens its own file, not the diff.

CPython stores a str at 1, 2 or 4 bytes a character, by its widest character: decoded whole,
an 80 MB diff with one emoji anywhere is a 320 MB str. Cut before each `diff --git` line and
decoded a piece at a time, only the files holding such a character cost 4 bytes a character,
and a file entry that is exactly its piece is shared, not copied, by every text made of it.

The cut is exact: it falls right after a newline byte, which no UTF-8 sequence holds and every
ill-formed one ends at, so the pieces decoded with the same error handler are, joined, the
characters the whole would decode to.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections.abc import Iterable, Iterator

BOM = b"\xef\xbb\xbf"
_CUT = b"\ndiff --git "


class DiffText:
    """The diff's characters as a sequence of str pieces, read as one text: its length, slices, newlines."""

    __slots__ = ("_sha256", "_starts", "pieces")

    def __init__(self, pieces: Iterable[str], sha256: str | None = None) -> None:
        self.pieces = tuple(p for p in pieces if p)
        # the character each piece starts at, then the text's length
        self._starts = list(itertools.accumulate(map(len, self.pieces), initial=0))
        self._sha256 = sha256

    @property
    def sha256(self) -> str:
        """Hex sha256 of the text as UTF-8 (`source.diff_sha256`), known from the bytes when decoded from them."""
        if self._sha256 is None:
            digest = hashlib.sha256()
            for piece in self.pieces:
                # surrogatepass: hashing must never fail, even on text that did not come from decode
                digest.update(piece.encode("utf-8", "surrogatepass"))
            self._sha256 = digest.hexdigest()
        return self._sha256

    @classmethod
    def decode(cls, data: bytes) -> DiffText:
        """Decode diff bytes as `source.decode` does (UTF-8, bad bytes replaced, a leading BOM dropped), by piece."""
        digest = hashlib.sha256()
        pieces = []
        for start, end in _cuts(data):
            raw = data[start:end]
            piece = raw.decode("utf-8-sig" if start == 0 else "utf-8", errors="replace")
            # the hash is of the decoded text's UTF-8, which is the bytes themselves when nothing was replaced
            lossless = "\ufffd" not in piece
            digest.update(raw.removeprefix(BOM if start == 0 else b"") if lossless else piece.encode("utf-8"))
            pieces.append(piece)
        return cls(pieces, digest.hexdigest())

    def __len__(self) -> int:
        return self._starts[-1]

    def __str__(self) -> str:
        return "".join(self.pieces)

    def __getitem__(self, key: slice) -> str:
        """The characters of a slice (step 1): a piece's own str when the slice is exactly one piece."""
        start, stop, _ = key.indices(len(self))
        if start >= stop:
            return ""
        k = bisect.bisect_right(self._starts, start) - 1
        first = start - self._starts[k]
        if stop <= self._starts[k + 1]:
            return self.pieces[k][first : stop - self._starts[k]]
        last = bisect.bisect_left(self._starts, stop) - 1
        middle = self.pieces[k + 1 : last]
        return "".join((self.pieces[k][first:], *middle, self.pieces[last][: stop - self._starts[last]]))

    def find(self, char: str, start: int) -> int:
        """Where `char` (one character) first occurs at or after `start`, as str.find; -1 when it does not."""
        for k in range(max(0, bisect.bisect_right(self._starts, start) - 1), len(self.pieces)):
            found = self.pieces[k].find(char, max(0, start - self._starts[k]))
            if found != -1:
                return self._starts[k] + found
        return -1

    def count(self, char: str) -> int:
        return sum(p.count(char) for p in self.pieces)

    def endswith(self, suffix: str) -> bool:
        """Whether the last piece ends with `suffix` (at most a piece long: a newline)."""
        return bool(self.pieces) and self.pieces[-1].endswith(suffix)

    def isspace(self) -> bool:
        """As str.isspace: not empty, and every character whitespace."""
        return bool(self.pieces) and all(p.isspace() for p in self.pieces)


def as_text(text: str | DiffText) -> DiffText:
    """The text as pieces: a str is one piece (held whole already, so cutting it would only copy it)."""
    return text if isinstance(text, DiffText) else DiffText((text,))


def _cuts(data: bytes) -> Iterator[tuple[int, int]]:
    """Where each piece starts and ends: right after each newline that a `diff --git ` line follows."""
    start = 0
    while (cut := data.find(_CUT, start)) != -1:
        yield start, cut + 1
        start = cut + 1
    yield start, len(data)
