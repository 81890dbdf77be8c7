"""The review's progress on the terminal, without repeating the report that follows it.

A section that is not SAFE gets a line as its last vote arrives (the news first); a SAFE one
gets none, since the summary counts them. Between those lines: on a terminal one status line
updated in place; in a CI log (no TTY) a line on the calls at most every few seconds, and only
once a tenth of the calls more have finished (or after a long silence, so a slow run shows life).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any

from ..core.control import CallProgress
from ..core.engine import ReviewStats
from ..core.model import SectionResult
from .escape import terminal


class Progress:
    """Progress of the session's own review only: reviews a test makes through the `swarm_review`
    fixture are not shown. Under pytest-xdist the review runs before pytest prints its session
    header, so the lines are held (`held`) and printed under the header instead of above it, and
    nothing is updated in place.
    """

    # A CI log's calls line: at least PERIOD_S apart and a tenth of the calls on, or after QUIET_S
    # of silence; a rate-limit line at most every LIMIT_NOTE_S.
    PERIOD_S, QUIET_S, LIMIT_NOTE_S = 5.0, 30.0, 5.0

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
        self.last_done = 0
        self.limits_told = 0
        # On a terminal, one status line is rewritten in place (never while lines are held).
        self.in_place = bool(getattr(reporter, "isatty", False)) and not hold
        self.status_shown = False

    def line(self, text: str) -> None:
        """A line that stays."""
        if self.reporter is None or not self.total:
            return
        if self.held is not None:
            self.held.append(text)
            return
        if self.status_shown:
            self.reporter.rewrite(text, erase=True)
            self.reporter.write("\n")
            self.status_shown = False
        else:
            self.reporter.write_line(text)
        self.last_line = self.clock()
        if self.latest is not None:
            self.last_done = self.latest.done

    def status(self, text: str) -> None:
        """The line a terminal updates in place, cut to its width: a wrapped line cannot be redrawn."""
        if self.reporter is not None and self.total and self.in_place:
            width = shutil.get_terminal_size().columns - 1
            self.reporter.rewrite(text if len(text) <= width else text[: width - 3] + "...", erase=True)
            self.status_shown = True

    def release(self) -> list[str]:
        """The lines held so far (once)."""
        lines, self.held = self.held or [], None
        return lines

    def section(self, result: SectionResult) -> None:
        if self.done >= self.total:
            return
        self.done += 1
        calls = f" - {describe_calls(self.latest)}" if self.latest is not None else ""
        where = f"[{self.done}/{self.total}]"
        if result.outcome != "SAFE":
            self.line(f"swarmgate: {where} {terminal(result.section.id)}: {result.tally()}{calls}{self.waiting()}")
        else:
            self.status(f"swarmgate: {where} sections{calls}{self.waiting()}")

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
        """Between sections: say when the run waits on the rate limit, and how the calls go."""
        self.latest = progress
        now = self.clock()
        told = progress.rate_limited <= self.limits_told
        if progress.waiting and not told and now - self.last_limit_line >= self.LIMIT_NOTE_S:
            self.limits_told, self.last_limit_line = progress.rate_limited, now
            self.line(
                f"swarmgate: waiting on the rate limit ({progress.rate_limited} rate-limited answers so far) - "
                + describe_calls(progress, waiting=False)
            )
        elif self.in_place:
            self.status(f"swarmgate: [{self.done}/{self.total}] sections - {describe_calls(progress)}")
        elif progress.done < progress.total and self._due(progress, now):
            self.line(f"swarmgate: {describe_calls(progress)}")

    def _due(self, progress: CallProgress, now: float) -> bool:
        """A CI log's calls line: a tenth of the calls on and a few seconds later, or a long silence."""
        quiet = now - self.last_line
        tenth = progress.done - self.last_done >= max(1, progress.total // 10)
        return quiet >= self.QUIET_S or (quiet >= self.PERIOD_S and tenth)

    def stop(self) -> None:
        if self.status_shown and self.reporter is not None:
            self.reporter.rewrite("", erase=True)  # the report follows: the status line leaves no trace
            self.reporter.write("\r")
            self.status_shown = False
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
