"""Untrusted text made one printable line: the data-level clean-up every channel starts from.

Paths, git messages and model text come from the pull request or from a model that read it.
Each output channel escapes for its own format in `output/escape.py`; this is the common
first step, and the form the prompt's metadata lines and error messages use. Also the few
wording helpers that core's own sentences and the output layer's tables share.
"""

from __future__ import annotations

import re


def one_line(text: str, limit: int | None = None) -> str:
    """Text stripped, cut to `limit` characters, with every control character shown escaped."""
    text = text.strip()
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable() and not _HIDDEN.search(text):
        return text  # the common case, without a pass over every character
    # Characters a reader cannot see first (some are printable letters, such as U+3164), as `<U+XXXX>`.
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in show_hidden(text))


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 section`, `2 sections` (`many` for an irregular plural)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def percent(rate: float | None) -> str:
    """`12.5%`, or `-` for a rate with nothing to measure."""
    return "-" if rate is None else f"{rate:.1%}"


# Characters that change how text reads without being seen (Trojan Source, CVE-2021-42574):
# bidirectional controls, zero-width characters, the word joiner and invisible operators, a
# byte-order mark inside text, invisible fillers, and the tag characters that can spell out an
# instruction no reviewer sees. Models do not reliably perceive them either.
_HIDDEN = re.compile(
    "[\u061c\u115f\u1160\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\u3164\ufeff\uffa0"
    "\U000e0000-\U000e007f]"
)


def hidden_characters(text: str) -> list[str]:
    """The distinct characters of `text` a reader cannot see, as `U+202E`, in order of first appearance."""
    return list(dict.fromkeys(f"U+{ord(c):04X}" for c in _HIDDEN.findall(text)))


def show_hidden(text: str) -> str:
    """`text` with each character a reader cannot see shown as `<U+202E>`."""
    return _HIDDEN.sub(lambda m: f"<U+{ord(m.group()):04X}>", text)
