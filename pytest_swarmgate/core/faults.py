"""Faults a voter raises when a call failed for the whole run, not for one vote.

A voter returns an ERROR vote for a per-call fault (one timeout, one 500, one malformed
reply). Two kinds of failure are not about one vote, and a voter raises them instead:

- `RunFault`: no retry and no other call will fix it (a rejected key, a missing permission,
  an unknown model, an exhausted credit balance, a request the endpoint refuses for a reason
  other than a sampling parameter). The engine stops sending the remaining calls.
- `RateLimited`: the endpoint asked the run to slow down (429, 529). The engine tells the
  run's pacer, which slows every call, and sends the call again until the run's deadline.

Custom voters may raise them too. Standard library only; `classify` reads the SDK's
exception by duck typing (status_code, body, response headers), so it needs no import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# 402 is not in the SDK's table; it comes from some Anthropic-compatible endpoints.
RUN_WIDE_STATUS = {401: "authentication", 402: "billing", 403: "permission"}
BILLING_WORDS = ("credit balance", "billing", "insufficient_quota", "quota exceeded", "payment")
SAMPLING_WORDS = ("temperature", "top_p", "top_k", "sampling", "effort", "output_config")
# A 400 about one request's size is that section's problem, not the run's.
SIZE_WORDS = ("too long", "too large", "too many tokens", "context window")
RATE_LIMIT_STATUS = (429, 529)


class RunFault(Exception):
    """A fault that stops the run's calls. `str()` is one redacted line.

    `retry`: whether trying again later may help (an unreachable endpoint); False for what only a
    person can fix (a rejected key, a permission, an unknown model, a refused request, credit).
    """

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


class RateLimited(Exception):
    """The endpoint asked to slow down; `retry_after` in seconds when it said."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineReached(Exception):
    """The run's deadline came before the rate limit let the call go."""


def in_chain(exc: BaseException, matches: Callable[[BaseException], bool]) -> bool:
    """Whether `exc`, or an exception it was raised from or while handling, matches.

    The SDK wraps what the HTTP layer raised (a refused connection, a timeout) in its own class.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if matches(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def unreachable(exc: BaseException) -> bool:
    """The endpoint refused the connection (or its name did not resolve), after the SDK's retries.

    Not one call's bad luck, as a dropped connection or a timeout can be: nothing answers at the
    endpoint's address, so no other call will reach it either.
    """
    return in_chain(exc, lambda e: type(e).__name__ == "ConnectError")


def _error_fields(exc: BaseException) -> tuple[str, str]:
    """(error type, message) of an API error body, lower-cased for matching."""
    body = getattr(exc, "body", None)
    err: Mapping[str, Any] = body.get("error", {}) if isinstance(body, Mapping) else {}
    if not isinstance(err, Mapping):
        err = {}
    return str(err.get("type") or ""), str(err.get("message") or exc).lower()


def retry_after(headers: Mapping[str, str] | Any) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds; an HTTP date is not used here)."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) * scale
        except (TypeError, ValueError):
            continue
        if value >= 0:
            return value
    return None


def classify(exc: BaseException, description: str) -> RunFault | RateLimited | None:
    """The run-wide fault an API error stands for, or None for a per-call fault.

    `description` is the redacted one-line text the caller would put in an ERROR vote; the
    raised fault carries it. An endpoint that refuses connections is run-wide. A 404 is
    run-wide: the one URL a vote calls exists, so a 404 means the model (or the endpoint's
    path) does not.
    """
    if unreachable(exc):
        return RunFault(description, retry=True)
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        return None
    if status in RATE_LIMIT_STATUS:
        response = getattr(exc, "response", None)
        return RateLimited(description, retry_after(getattr(response, "headers", None)))
    error_type, message = _error_fields(exc)
    if status in RUN_WIDE_STATUS or status == 404:
        return RunFault(description)
    if any(word in message for word in BILLING_WORDS) or error_type == "billing_error":
        return RunFault(description)
    if status == 400 and not any(word in message for word in (*SAMPLING_WORDS, *SIZE_WORDS)):
        return RunFault(description)
    return None
