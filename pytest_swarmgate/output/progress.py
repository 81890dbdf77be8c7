"""The review's progress on the terminal: a line per section as its last vote arrives, and a
line on the calls while the run waits."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..core.control import CallProgress
from ..core.engine import ReviewStats
from ..core.model import SectionResult
from .escape import terminal


class Progress:
    """A line per section as its last vote arrives, during the session's own review only.

    A real review takes as long as the slowest call; silence for a minute looks like a hang.
    Reviews a test makes through the `swarm_review` fixture are not shown. Under pytest-xdist
    the review runs before pytest prints its session header, so the lines are held (`held`)
    and printed under the header instead of above it.
    """

    # Seconds of silence before a line on the calls alone, and between two rate-limit lines.
    QUIET_S, LIMIT_NOTE_S = 10.0, 5.0

    def __init__(
        self,
        reporter: Any,
        total: int,
        stats: ReviewStats | None = None,
        *,
        hold: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reporter, self.total, self.done = reporter, total, 0
        self.stats = stats
        self.held: list[str] | None = [] if hold else None
        self.clock = clock
        self.latest: CallProgress | None = None
        self.last_line = self.last_limit_line = clock()
        self.limits_told = 0

    def line(self, text: str) -> None:
        if self.reporter is None or not self.total:
            return
        if self.held is not None:
            self.held.append(text)
        else:
            self.reporter.write_line(text)
            self.last_line = self.clock()

    def release(self) -> list[str]:
        """The lines held so far (once)."""
        lines, self.held = self.held or [], None
        return lines

    def section(self, result: SectionResult) -> None:
        if self.done < self.total:
            self.done += 1
            where = f"[{self.done}/{self.total}] {terminal(result.section.id)}"
            calls = f" - {describe_calls(self.latest)}" if self.latest is not None else ""
            self.line(f"swarmgate: {where}: {result.tally()}{calls}{self.waiting()}")

    def waiting(self) -> str:
        """`; 3 calls in flight, 1 retry`: what the run still waits for, while it waits."""
        if self.stats is None or self.done >= self.total:
            return ""
        retries = self.stats.retries
        in_flight = self.stats.in_flight
        return (
            f"; {in_flight} {'call' if in_flight == 1 else 'calls'} in flight, "
            f"{retries} {'retry' if retries == 1 else 'retries'}"
        )

    def calls(self, progress: CallProgress) -> None:
        """Between sections: say when the run waits on the rate limit, and speak up after a silence."""
        self.latest = progress
        now = self.clock()
        told = progress.rate_limited <= self.limits_told
        if progress.waiting and not told and now - self.last_limit_line >= self.LIMIT_NOTE_S:
            self.limits_told, self.last_limit_line = progress.rate_limited, now
            self.line(
                f"swarmgate: waiting on the rate limit ({progress.rate_limited} rate-limited answers so far) - "
                + describe_calls(progress, waiting=False)
            )
        elif now - self.last_line >= self.QUIET_S and progress.done < progress.total:
            self.line(f"swarmgate: {describe_calls(progress)}")

    def stop(self) -> None:
        self.total = 0


def describe_calls(progress: CallProgress, *, waiting: bool = True) -> str:
    """`calls 120/500, 19.8/s, about 19 s left (waiting on the rate limit, 3 rate-limited answers)`."""
    text = f"calls {progress.done}/{progress.total}, {progress.rate:.1f}/s"
    eta = progress.eta_s
    if eta is not None and progress.done < progress.total:
        text += f", about {eta:.0f} s left"
    if waiting and progress.waiting:
        text += f" (waiting on the rate limit, {progress.rate_limited} rate-limited answers so far)"
    return text
