"""The stub's rate limit: token buckets for requests and input tokens, and the
`anthropic-ratelimit-*` headers they report."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class RateLimit:
    """The stub's rate limit: token buckets refilled continuously, as the Anthropic API's are.

    `requests_per_s` requests and `input_tokens_per_s` input tokens (None: no token limit)
    per second; each bucket holds `burst_s` seconds of its rate (at least one request, and
    at least the largest request for tokens). Input tokens are the prompt's characters / 4.
    """

    requests_per_s: float
    input_tokens_per_s: float | None = None
    burst_s: float = 1.0

    def __post_init__(self) -> None:
        if self.requests_per_s <= 0 or (self.input_tokens_per_s is not None and self.input_tokens_per_s <= 0):
            raise ValueError("rate limits must be above 0")
        if self.burst_s <= 0:
            raise ValueError("burst_s must be above 0")


class _Bucket:
    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity, self.level, self.at = rate, capacity, capacity, time.monotonic()

    def refill(self, now: float) -> None:
        self.level, self.at = min(self.capacity, self.level + self.rate * (now - self.at)), now

    def wait_for(self, amount: float) -> float:
        return max(0.0, (min(amount, self.capacity) - self.level) / self.rate)

    def headers(self, stem: str, now_wall: float) -> dict[str, str]:
        reset = now_wall + (self.capacity - self.level) / self.rate
        return {
            f"anthropic-ratelimit-{stem}-limit": f"{self.capacity:.0f}",
            f"anthropic-ratelimit-{stem}-remaining": str(max(0, math.floor(self.level))),  # whole ones
            f"anthropic-ratelimit-{stem}-reset": rfc3339(datetime.fromtimestamp(reset, timezone.utc)),
        }


class Limiter:
    """Admits a request when every bucket holds its share, else says how long until it would."""

    def __init__(self, limit: RateLimit) -> None:
        self.requests = _Bucket(limit.requests_per_s, max(1.0, limit.requests_per_s * limit.burst_s))
        self.tokens = (
            _Bucket(limit.input_tokens_per_s, limit.input_tokens_per_s * limit.burst_s)
            if limit.input_tokens_per_s is not None
            else None
        )

    def admit(self, tokens: int) -> tuple[float, dict[str, str]]:
        """(0, headers) and the buckets charged, or (seconds to wait, headers) and nothing charged."""
        now = time.monotonic()
        buckets = [(self.requests, 1.0, "requests")]
        if self.tokens is not None:
            buckets.append((self.tokens, float(tokens), "input-tokens"))
        for bucket, _, _ in buckets:
            bucket.refill(now)
        wait = max(bucket.wait_for(amount) for bucket, amount, _ in buckets)
        if wait <= 0:
            for bucket, amount, _ in buckets:
                bucket.level -= amount
        headers: dict[str, str] = {}
        for bucket, _, stem in buckets:
            headers.update(bucket.headers(stem, time.time()))
        return wait, headers
