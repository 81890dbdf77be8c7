"""The run-wide state of a review's calls: pacing, the deadline, a stop, and progress.

The engine sends every call through `RunControl.call`:
- the run's Pacer says when it may start (a rate limit slows every call, not just one);
- the run's deadline (--swarm-deadline, from the first call) bounds its wall time: a call the
  deadline catches, waiting on the rate limit or still running (it is cancelled), is an ERROR
  vote, and the run stops (cause "deadline") with one line counting the votes cast;
- a `RateLimited` call goes again when the pacer allows, until the deadline;
- a `RunFault` (a rejected key, an unknown model...) stops the run: the calls not yet sent
  become ERROR votes that say they were not sent, and the run reports the fault once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from .choices import ErrorKind, StopCause
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
MakeError = Callable[[Section, Voter, Settings, str, float, ErrorKind], Vote]
T = TypeVar("T")


class Deadline:
    """--swarm-deadline: a bound on a review's wall time, from its first call (the preflight's, when it runs)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.at: float | None = None

    def start(self) -> float | None:
        """The moment it falls (monotonic), set by the first call that asks; None without a deadline."""
        if self.at is None and self.seconds is not None:
            self.at = time.monotonic() + self.seconds
        return self.at

    async def bound(self, work: Awaitable[T]) -> T:
        """Await `work`, cancelled when the deadline falls (DeadlineReached)."""
        at = self.start()
        if at is None:
            return await work
        try:
            return await asyncio.wait_for(work, max(0.0, at - time.monotonic()))
        except asyncio.TimeoutError:
            # The work itself never raises a timeout: the voter makes its own timeouts ERROR votes.
            raise DeadlineReached("calls still running were cancelled") from None


class RunControl:
    """Shared by every call of one run; single event loop, so no locks."""

    def __init__(
        self,
        pacer: Pacer | None = None,
        *,
        total: int = 0,
        deadline: Deadline | float | None = None,
        on_progress: OnProgress | None = None,
    ) -> None:
        self.pacer = pacer if pacer is not None else Pacer()
        self.total = total
        self.deadline = deadline if isinstance(deadline, Deadline) else Deadline(deadline)
        self.on_progress = on_progress
        self.started = time.monotonic()
        self.sent = 0
        self.done = 0
        self.cut = 0  # calls the deadline ended: finished, but no vote was cast
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

    def out_of_time(self, how: str) -> None:
        """Stop the run at its deadline: one line with what was cast by then."""
        cast = self.done - self.cut
        self.stop(
            f"--swarm-deadline={self.deadline.seconds:g} reached ({how}): {cast} of {self.total} votes cast", "deadline"
        )

    async def call(self, send: Callable[[], Awaitable[Vote]], section: Section, voter: Voter, error: MakeError) -> Vote:
        """One vote through the pacer, again after each rate limit, never after a stop or past the deadline."""
        start = time.monotonic()
        first = True
        while True:
            if self.stopped is not None:
                return error(section, voter, Settings(), NOT_SENT, 0.0, "not_sent")
            try:
                await self.pacer.acquire(self.deadline.start())
                if self.stopped is not None:
                    return error(section, voter, Settings(), NOT_SENT, 0.0, "not_sent")
                if first:
                    self.sent += 1
                    first = False
                vote = await self.deadline.bound(send())
            except DeadlineReached as exc:
                self.out_of_time(str(exc))
                self.done += 1
                self.cut += 1
                self._report()
                return error(
                    section, voter, Settings(), f"cut by --swarm-deadline: {exc}", time.monotonic() - start, "deadline"
                )
            except RateLimited as exc:
                self.pacer.limited(exc.retry_after)
                self._report()
                continue
            except RunFault as exc:
                self.stop(str(exc), "fault" if exc.retry else "config")
                self.done += 1
                self._report()
                return error(section, voter, Settings(), str(exc), time.monotonic() - start, "request")
            self.pacer.succeeded()
            self.done += 1
            self._report()
            return vote

    async def paced(self, send: Callable[[], Awaitable[T]]) -> T:
        """A call that casts no vote (the aggregator's): through the pacer and again after each rate limit,
        within the deadline (DeadlineReached); a run-wide fault is the caller's to note, not a stop."""
        while True:
            await self.pacer.acquire(self.deadline.start())
            try:
                answer = await self.deadline.bound(send())
            except RateLimited as exc:
                self.pacer.limited(exc.retry_after)
                continue
            self.pacer.succeeded()
            return answer
