"""One view of the endpoint's rate limit, shared by every call of a run.

Many CI jobs share one organisation's limit, so a run cannot know its budget in advance;
it learns it from what the endpoint says:

- the `anthropic-ratelimit-{requests,input-tokens,tokens}-{limit,remaining,reset}` headers on
  every response: the Pacer keeps a mirror of each of those token buckets (the refill rate
  is `(limit - remaining) / (reset - now)`), and a call starts only when the mirror holds a
  request and the tokens a call spends on average;
- a 429 or 529 with `retry-after`: no call of the run starts before it has passed.

So one call's 429 slows every call, and the run speeds back up as the buckets refill. A
call waits at most until the run's deadline (`DeadlineReached`). Pure apart from the
clocks and `asyncio.sleep`, both of which a test may replace.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .faults import DeadlineReached

HEADER = "anthropic-ratelimit-"
# (bucket, header stem): requests per call, and the input tokens a call spends.
BUCKETS = (("requests", "requests"), ("input_tokens", "input-tokens"), ("tokens", "tokens"))
# Without retry-after, a 429 pauses the run for this long, doubling up to the cap.
BACKOFF_START, BACKOFF_CAP = 0.5, 30.0
# Waits shorter than this are none: a refill computed in floating point can fall short of a
# whole request by 1e-16 forever.
EPSILON_S = 1e-6
# The share of a bucket's measured refill rate the run spends: less after each 429 (a header
# is one reply old, and other clients spend from the same limit), back up a little per success.
SHARE_MIN, SHARE_DOWN, SHARE_UP = 0.5, 0.9, 0.002


@dataclass
class Bucket:
    """A mirror of one of the endpoint's token buckets: `level` at time `at`, refilled at `rate`/s."""

    limit: float
    rate: float
    level: float
    at: float

    def level_at(self, now: float) -> float:
        return min(self.limit, self.level + self.rate * max(0.0, now - self.at))

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until the bucket holds `amount` (never more than the bucket can hold)."""
        need = min(amount, self.limit) - self.level_at(now)
        if need <= 0:
            return 0.0
        return need / self.rate if self.rate > 0 else BACKOFF_CAP

    def take(self, amount: float, now: float) -> None:
        self.level, self.at = self.level_at(now) - amount, now


def _number(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _seconds_until(raw: str | None, wall_now: float) -> float | None:
    """Seconds from `wall_now` to an RFC 3339 reset time (None when absent or unreadable)."""
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - wall_now)


class Pacer:
    """Decides when each call of a run may start; every response's headers feed it."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.clock, self.wall, self.sleep = clock, wall, sleep
        self.buckets: dict[str, Bucket] = {}
        self.paused_until = 0.0
        self.backoff = BACKOFF_START
        self.tokens_per_call = 0.0
        self.token_samples = 0
        self.waiting = 0
        self.rate_limited = 0
        self.share = 1.0

    # ---- what the endpoint says

    def observe(self, headers: Mapping[str, str] | Any) -> None:
        """Update the bucket mirrors from one response's rate-limit headers (any status)."""
        if headers is None:
            return
        now, wall_now = self.clock(), self.wall()
        for name, stem in BUCKETS:
            limit = _number(headers, f"{HEADER}{stem}-limit")
            remaining = _number(headers, f"{HEADER}{stem}-remaining")
            if limit is None or remaining is None or limit <= 0:
                continue
            until_full = _seconds_until(headers.get(f"{HEADER}{stem}-reset"), wall_now)
            known = self.buckets.get(name)
            if until_full and remaining < limit:
                rate = (limit - remaining) / until_full * self.share
            else:
                # Full, or no reset time: keep what we knew; Anthropic's limits are per minute.
                rate = known.rate if known is not None else limit / 60.0
            if known is None:
                self.buckets[name] = Bucket(limit, rate, remaining, now)
            else:
                # Never above our own count: calls we started may not have reached the endpoint
                # yet. Below it when other clients (other CI jobs) spent from the same limit.
                known.level, known.at = min(known.level_at(now), remaining), now
                known.limit, known.rate = limit, rate

    def spent(self, input_tokens: int) -> None:
        """Record the input tokens one call spent (a running mean sizes the token bucket's take)."""
        self.token_samples += 1
        self.tokens_per_call += (input_tokens - self.tokens_per_call) / self.token_samples

    def limited(self, retry_after: float | None) -> float:
        """A 429 or 529: no call starts until `retry_after` has passed; returns the pause in seconds."""
        self.rate_limited += 1
        self.share = max(SHARE_MIN, self.share * SHARE_DOWN)
        if retry_after is None:
            pause, self.backoff = self.backoff, min(self.backoff * 2, BACKOFF_CAP)
        else:
            pause = retry_after
        self.paused_until = max(self.paused_until, self.clock() + pause)
        requests = self.buckets.get("requests")
        if requests is not None:
            requests.level = min(requests.level, 0.0)
        return pause

    def succeeded(self) -> None:
        self.backoff = BACKOFF_START
        self.share = min(1.0, self.share + SHARE_UP)

    # ---- when a call may start

    def _cost(self, name: str) -> float:
        return 1.0 if name == "requests" else self.tokens_per_call

    def wait_time(self, now: float) -> float:
        """Seconds until one more call fits every known bucket and any pause has passed."""
        wait = max(0.0, self.paused_until - now)
        for name, bucket in self.buckets.items():
            wait = max(wait, bucket.wait_for(self._cost(name), now))
        return wait

    async def acquire(self, deadline: float | None = None) -> None:
        """Wait until this call may start, then take its share of every bucket.

        Raises DeadlineReached, without waiting, when the wait would run past `deadline`.
        """
        while True:
            now = self.clock()
            wait = self.wait_time(now)
            if wait <= EPSILON_S:
                for name, bucket in self.buckets.items():
                    bucket.take(self._cost(name), now)
                return
            if deadline is not None and now + wait > deadline:
                raise DeadlineReached(f"the rate limit needed {wait:.1f} s more")
            self.waiting += 1
            try:
                await self.sleep(wait)
            finally:
                self.waiting -= 1

    @property
    def is_waiting(self) -> bool:
        """True while a call waits on the limit or a 429's pause."""
        return self.waiting > 0 or self.paused_until > self.clock()
