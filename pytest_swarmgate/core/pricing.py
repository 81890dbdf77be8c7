"""What a calibration's votes cost: their summed token usage, priced per model in USD.

Cost from `PRICES` (list prices, overridable), halved for the Message Batches API. A model
with no price makes the cost None, with a note. Votes from the vote cache are priced too:
the figure is what the run would cost uncached, and the note says how many were cached.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .model import Usage, Vote
from .text import plural

Price = tuple[float, float, float, float]

# USD per million tokens: (input, output, cache write, cache read). List prices at the time
# of writing (5-minute cache writes); they change, so callers can pass their own mapping as
# `prices=`. A key matches when it is a substring of the model name; the longest match wins,
# so the legacy entries override their family.
PRICES: dict[str, Price] = {
    "haiku": (1.00, 5.00, 1.25, 0.10),
    "sonnet": (3.00, 15.00, 3.75, 0.30),
    "opus": (5.00, 25.00, 6.25, 0.50),
    "claude-3-haiku": (0.25, 1.25, 0.30, 0.03),
    "claude-3-5-haiku": (0.80, 4.00, 1.00, 0.08),
    "claude-3-opus": (15.00, 75.00, 18.75, 1.50),
    "claude-opus-4-0": (15.00, 75.00, 18.75, 1.50),
    "claude-opus-4-1": (15.00, 75.00, 18.75, 1.50),
    "claude-opus-4-2025": (15.00, 75.00, 18.75, 1.50),
}
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class Cost:
    """Tokens used by every vote and what they cost in USD (None when a model has no price)."""

    usage: Usage
    usd: float | None
    batch: bool
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {"usage": self.usage.to_dict(), "usd": self.usd, "batch": self.batch, "note": self.note}


def cost_of(votes: Sequence[Vote], prices: Mapping[str, Price] | None, batch: bool) -> Cost:
    """Summed usage and its USD cost; None with a note when some model has no price."""
    table = PRICES if prices is None else prices
    usage = Usage.sum(v.usage for v in votes)
    usd = 0.0
    unknown: set[str] = set()
    for v in votes:
        price = price_for(v.credited_model, table)
        if price is None:
            unknown.add(v.credited_model)
        else:
            usd += usage_cost(v.usage, price)
    usd *= BATCH_DISCOUNT if batch else 1.0
    notes = ["list prices" + (" with the 50% batch discount" if batch else "")]
    if unknown:
        # No advice to pass prices=: only the Python API can, and a command-line user has the tokens.
        notes.append(f"no list price known for model {', '.join(sorted(unknown))}, so no cost is given (tokens are)")
    cached = sum(v.cached for v in votes)
    if cached:
        notes.append(
            f"{plural(cached, 'vote')} came from the cache and cost nothing in this run; the figure is the uncached "
            "cost"
        )
    return Cost(usage=usage, usd=None if unknown else usd, batch=batch, note="; ".join(notes))


def price_for(model: str, prices: Mapping[str, Price] = PRICES) -> Price | None:
    """The price of the longest key that is a substring of the model name, or None."""
    name = model.lower()
    matches = [key for key in prices if key.lower() in name]
    return prices[max(matches, key=len)] if matches else None


def usage_cost(usage: Usage, price: Price) -> float:
    """USD for one vote's usage at a (input, output, cache write, cache read) price per MTok."""
    p_in, p_out, p_write, p_read = price
    return (
        usage.input_tokens * p_in
        + usage.output_tokens * p_out
        + usage.cache_write_tokens * p_write
        + usage.cache_read_tokens * p_read
    ) / 1_000_000
