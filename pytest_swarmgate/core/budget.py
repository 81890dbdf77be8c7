"""Cost ceilings a pull request cannot blow, checked before any call. Pure.

The pull request decides how large its files are and how many it touches. Two ceilings hold
whatever it does: a section larger than `max_section_chars` (a single hunk no split can cut,
such as a 10 MB one-line file) is never sent, and a run whose estimated input exceeds
`max_input_tokens` makes no call at all.

The estimate is deliberately high: one token per CHARS_PER_TOKEN ASCII characters and one per
BYTES_PER_TOKEN bytes of other text (UTF-8) of everything a call sends (policy, section block,
the longest voter block), times the panel size, plus the prewarm calls, for every section -
before the vote cache is read and without counting prompt-cache discounts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .model import Section, Voter
from .prompt import section_block, system_blocks, voter_block

# Real code and prose run at 3.5-4 characters per token; 3 over-estimates, which is what a ceiling wants.
CHARS_PER_TOKEN = 3
# Other scripts do not: CJK runs at about 1-2 tokens a character, emoji at 2 or more. Two UTF-8
# bytes a token is at least one token per character (none is shorter than two bytes), 1.5 for
# CJK (three bytes) and 2 for emoji (four).
BYTES_PER_TOKEN = 2
ESTIMATE = f"1 token per {CHARS_PER_TOKEN} ASCII characters and per {BYTES_PER_TOKEN} bytes of other text"
# A fence of the length `prompt.new_fence` draws, so the estimate counts its characters too.
_FENCE = "=" * len("=====SWARMGATE-" + "0" * 24 + "=====")


def estimate_input_tokens(
    sections: Sequence[Section], panel: Sequence[Voter], prewarm_min_chars: int | None = None
) -> int:
    """Input tokens every call of the run would send, over-estimated (see the module docstring).

    With `prewarm_min_chars` (None: prewarming off), a section at least that long also counts one
    prewarm call (policy and section) per model that two or more voters share, as the engine sends.
    """
    if not panel:
        return 0
    policy = _units(system_blocks()[0]["text"])
    per_voter = max(_units(voter_block(v, v.lens)) for v in panel)
    models = [v.model for v in panel]
    shared = sum(models.count(m) >= 2 for m in dict.fromkeys(models))
    tokens = 0
    for s in sections:
        prefix = policy + _units(section_block(s, _FENCE))
        tokens += math.ceil((prefix + per_voter) / _UNIT) * len(panel)
        if prewarm_min_chars is not None and s.prompt_chars >= prewarm_min_chars:
            tokens += math.ceil(prefix / _UNIT) * shared
    return tokens


# Text is counted in units of 1/_UNIT token, so both rates add up in whole numbers.
_UNIT = CHARS_PER_TOKEN * BYTES_PER_TOKEN


def _units(text: str) -> int:
    """The text's size in 1/_UNIT tokens: ASCII at CHARS_PER_TOKEN a token, other text at BYTES_PER_TOKEN bytes."""
    if text.isascii():
        return len(text) * BYTES_PER_TOKEN
    ascii_chars = len(text.encode("ascii", "ignore"))
    # surrogatepass: a lone surrogate (never from decode, but from a hook) still counts, as 3 bytes
    other_bytes = len(text.encode("utf-8", "surrogatepass")) - ascii_chars
    return ascii_chars * BYTES_PER_TOKEN + other_bytes * CHARS_PER_TOKEN


def oversized_reason(section: Section, max_chars: int) -> str | None:
    """Why `section` is too large to send, else None."""
    if len(section.text) <= max_chars:
        return None
    return (
        f"a section of {len(section.text)} characters, over --swarm-max-section-chars={max_chars}: "
        "not sent to the panel"
    )
