"""The run-wide state of a review's calls: pacing, the deadline, a stop, and progress.

The engine sends every call through `RunControl.call`:
- the run's Pacer says when it may start (a rate limit slows every call, not just one);
- a `RateLimited` call goes again when the pacer allows, until the run's deadline; a call
  the deadline catches waiting is an ERROR vote, and the run stops (cause "deadline");
- a `RunFault` (a rejected key, an unknown model...) stops the run: the calls not yet sent
  become ERROR votes that say they were not sent, and the run reports the fault once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .choices import StopCause
from .faults import DeadlineReached, RateLimited, RunFault
from .model import Section, Settings, Stopped, Vote, Voter
from .pacing import Pacer

NOT_SENT = "not sent: the review stopped"


@dataclass(frozen=True)
class CallProgress:
    """Where the run's calls stand, for a progress line."""

    done: int
    total: int
    elapsed_s: float
    waiting: bool
    rate_limited: int

    @property
    def rate(self) -> float:
        """Calls finished per second so far."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far (None before the first call finished)."""
        return (self.total - self.done) / self.rate if self.rate > 0 else None


OnProgress = Callable[[CallProgress], None]
MakeError = Callable[[Section, Voter, Settings, str, float], Vote]


class RunControl:
    """Shared by every call of one run; single event loop, so no locks."""

    def __init__(
        self,
        pacer: Pacer | None = None,
        *,
        total: int = 0,
        deadline_s: float | None = None,
        on_progress: OnProgress | None = None,
    ) -> None:
        self.pacer = pacer if pacer is not None else Pacer()
        self.total = total
        self.deadline_s = deadline_s
        self.on_progress = on_progress
        self.started = time.monotonic()
        self.deadline = self.started + deadline_s if deadline_s is not None else None
        self.sent = 0
        self.done = 0
        self.stopped: str | None = None
        self.cause: StopCause = "fault"

    def progress(self) -> CallProgress:
        return CallProgress(
            self.done, self.total, time.monotonic() - self.started, self.pacer.is_waiting, self.pacer.rate_limited
        )

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress())

    def stop(self, reason: str, cause: StopCause = "fault") -> None:
        """Stop the run once: the first fault names the cause, later ones add nothing."""
        if self.stopped is None:
            self.stopped, self.cause = reason, cause

    def result(self) -> Stopped | None:
        """Why the run stopped, as the run's result carries it; None when it did not."""
        if self.stopped is None:
            return None
        return Stopped(self.cause, self.stopped, self.sent, self.total)

    async def call(self, send: Callable[[], Awaitable[Vote]], section: Section, voter: Voter, error: MakeError) -> Vote:
        """One vote through the pacer, again after each rate limit, never after a stop."""
        start = time.monotonic()
        first = True
        while True:
            if self.stopped is not None:
                return error(section, voter, Settings(), NOT_SENT, 0.0)
            try:
                await self.pacer.acquire(self.deadline)
            except DeadlineReached as exc:
                self.done += 1
                self._report()
                problem = f"rate limit: the run's deadline (--swarm-deadline={self.deadline_s:g}) came first ({exc})"
                self.stop(problem, "deadline")
                return error(section, voter, Settings(), problem, time.monotonic() - start)
            if self.stopped is not None:
                return error(section, voter, Settings(), NOT_SENT, 0.0)
            if first:
                self.sent += 1
                first = False
            try:
                vote = await send()
            except RateLimited as exc:
                self.pacer.limited(exc.retry_after)
                self._report()
                continue
            except RunFault as exc:
                self.stop(str(exc), "fault" if exc.retry else "config")
                self.done += 1
                self._report()
                return error(section, voter, Settings(), str(exc), time.monotonic() - start)
            self.pacer.succeeded()
            self.done += 1
            self._report()
            return vote
