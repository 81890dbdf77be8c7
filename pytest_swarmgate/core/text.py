"""Untrusted text made one printable line: the data-level clean-up every channel starts from.

Paths, git messages and model text come from the pull request or from a model that read it.
Each output channel escapes for its own format in `output/escape.py`; this is the common
first step, and the form the prompt's metadata lines and error messages use. Also the few
wording helpers that core's own sentences and the output layer's tables share.
"""

from __future__ import annotations


def one_line(text: str, limit: int | None = None) -> str:
    """Text stripped, cut to `limit` characters, with every control character shown escaped."""
    text = text.strip()
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text  # the common case, without a pass over every character
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 section`, `2 sections` (`many` for an irregular plural)."""
    return f"{count} {word if count == 1 else many or word + 's'}"


def percent(rate: float | None) -> str:
    """`12.5%`, or `-` for a rate with nothing to measure."""
    return "-" if rate is None else f"{rate:.1%}"
