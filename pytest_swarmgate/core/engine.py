"""The engine: every (section, voter) call of a run in one asyncio loop under one limit.

Wall time is about one call's latency when the limit allows, never the sum. A failing
call becomes an ERROR vote for that voter on that section and cancels nothing else, and so
does a voter that answers with anything but a valid Vote; a vote always belongs to the
section and voter it was cast for.

The engine waits for every vote even once the votes still pending could not change a section's outcome:
the report shows every voter's verdict and findings, dissent included, and calibration needs
every vote to score each K, so stopping early would save little and lose what they show.

Prewarming: a prompt-cache entry is readable only once the call that wrote it has begun
answering, so N voters sent together on a large section all pay to write it. With a
prewarm function, the engine first sends one output-less call per (section, model) that
several uncached voters share, then lets those voters go: they read the section from the
cache. One short extra round trip buys reads at a tenth of the input price.

Synthesis: with an `Aggregation`, each section it wants (one that fails the gate) gets one more
call as soon as its last vote is in - the aggregator's review for the author - under the same
limit, pacer and deadline, overlapping the votes still running. The outcome is judged before it is
asked and never changes: a synthesis that fails or is cut carries its error, and the run a note.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .cache import VoteCache, implementation_name, vote_key
from .choices import VERDICTS
from .control import RunControl
from .faults import DeadlineReached, RateLimited, RunFault
from .gate import Gate
from .model import Section, SectionResult, Settings, Synthesis, Usage, Vote, Voter
from .prompt import new_fence
from .synthesis import Aggregation, failed, failure_note, synthesis_key
from .text import one_line
from .voters import CastVote, MissingCredentials, error_vote
from .voting import check_voter_ids, judge

T = TypeVar("T")
OnSection = Callable[[SectionResult], None]
Prewarm = Callable[[Section, Voter, str], Awaitable[Usage]]
# The aggregator's call: a judged section, the run's fence and the model -> its synthesis.
Synthesize = Callable[[SectionResult, str, str], Awaitable[Synthesis]]


@dataclass
class ReviewStats:
    """What a review spent outside the votes themselves."""

    prewarm_calls: int = 0
    prewarm_usage: Usage = field(default_factory=Usage)
    notes: list[str] = field(default_factory=list)
    # Live while the run waits, for the progress line: calls sent and not yet answered, and
    # the voter's retries so far (read from its `retries` attribute, where it keeps one).
    in_flight: int = 0
    retry_source: Any = None

    @property
    def retries(self) -> int:
        value = getattr(self.retry_source, "retries", 0)
        return value if isinstance(value, int) else 0


async def review(
    sections: Sequence[Section],
    panel: Sequence[Voter],
    k: int,
    cast: CastVote,
    *,
    concurrency: int,
    cache: VoteCache | None = None,
    endpoint: str = "",
    on_section: OnSection | None = None,
    prewarm: Prewarm | None = None,
    prewarm_min_chars: int = 0,
    stats: ReviewStats | None = None,
    control: RunControl | None = None,
    policy: str = "",
    aggregation: Aggregation | None = None,
    synthesize: Synthesize | None = None,
) -> list[SectionResult]:
    """Judge every section by every voter; results come back in section order.

    Every call goes through `control` (pacing, the deadline, a stop on a run-wide fault);
    without one, the run gets its own, sharing the voter's `pacer` when it has one.

    `policy`: the sha256 of the team's guidance the voters read, part of every vote's cache key.
    `aggregation` and `synthesize`: which sections get a synthesis, and the call that writes one
    (both, or no synthesis).

    Sections are told apart by position, not id: a calibration run reviews many diffs
    whose sections may share a path. Voters are told apart by id, so ids must not repeat.
    """
    check_voter_ids(panel)
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    run = _Run(
        sections,
        panel,
        Gate(len(panel), k),  # only judges outcomes here: the policy is the caller's
        cast,
        asyncio.Semaphore(concurrency),
        cache,
        endpoint,
        on_section,
        stats if stats is not None else ReviewStats(),
        control if control is not None else RunControl(getattr(cast, "pacer", None)),
        policy,
        (aggregation, synthesize) if aggregation is not None and synthesize is not None else None,
    )
    return await run.all(prewarm, prewarm_min_chars)


class _Run:
    """One review's state: what the cache already holds, the votes so far, the results."""

    def __init__(
        self,
        sections: Sequence[Section],
        panel: Sequence[Voter],
        gate: Gate,
        cast: CastVote,
        limit: asyncio.Semaphore,
        cache: VoteCache | None,
        endpoint: str,
        on_section: OnSection | None,
        stats: ReviewStats,
        control: RunControl,
        policy: str,
        aggregator: tuple[Aggregation, Synthesize] | None = None,
    ) -> None:
        self.sections, self.panel, self.gate, self.cast, self.limit = sections, panel, gate, cast, limit
        self.cache, self.on_section, self.stats, self.control = cache, on_section, stats, control
        self.aggregator, self.endpoint, self.impl = aggregator, endpoint, implementation_name(cast)
        self.writing: list[asyncio.Future[None]] = []  # the syntheses under way
        self.fence = new_fence(sections)
        stats.retry_source = cast
        self.votes: list[list[Vote]] = [[] for _ in sections]
        self.results: dict[int, SectionResult] = {}
        self.order = {v.id: i for i, v in enumerate(panel)}
        self.keys = (
            {(i, v.id): vote_key(s, v, endpoint, self.impl, policy) for i, s in enumerate(sections) for v in panel}
            if cache
            else {}
        )
        self.hits = {
            (i, voter.id): vote
            for i, section in enumerate(sections)
            for voter in panel
            if cache and (vote := cache.get(self.keys[(i, voter.id)], section, voter)) is not None
        }
        control.total = len(sections) * len(panel) - len(self.hits)
        self.warming: dict[tuple[int, str], asyncio.Future[None]] = {}

    async def all(self, prewarm: Prewarm | None, prewarm_min_chars: int) -> list[SectionResult]:
        if prewarm is not None:
            self.start_warming(prewarm, prewarm_min_chars)
        # Voter-major order: under a tight limit every section's first call goes out before any
        # second one, so the section prefix is already in the prompt cache for the later voters.
        tasks = [asyncio.ensure_future(self.one(i, v)) for v in self.panel for i in range(len(self.sections))]
        try:
            await asyncio.gather(*tasks, *self.warming.values())
            # Every section is judged by now, so every synthesis has begun.
            await asyncio.gather(*self.writing)
        finally:
            for t in [*tasks, *self.warming.values(), *self.writing]:
                t.cancel()
            # The votes cast so far, made durable once for the run (even when it stopped).
            problem = self.cache.flush() if self.cache else None
            if problem and problem not in self.stats.notes:
                self.stats.notes.append(problem)
        self.stats.notes.extend(swap_notes(v for row in self.votes for v in row))
        results = [self.results[i] for i in range(len(self.sections))]
        self.stats.notes.extend(filter(None, [failure_note(results)]))
        return results

    def start_warming(self, prewarm: Prewarm, min_chars: int) -> None:
        """One prewarm per (section, model) that two or more uncached voters share."""
        for i, section in enumerate(self.sections):
            if section.prompt_chars < min_chars:
                continue
            waiting = [v for v in self.panel if (i, v.id) not in self.hits]
            for model in dict.fromkeys(v.model for v in waiting):
                sharing = [v for v in waiting if v.model == model]
                if len(sharing) >= 2:
                    self.warming[(i, model)] = asyncio.ensure_future(self.warm(prewarm, i, sharing[0]))

    async def warm(self, write: Prewarm, index: int, voter: Voter) -> None:
        section, stats = self.sections[index], self.stats
        async with self.limit:
            stats.in_flight += 1
            try:
                stats.prewarm_usage = stats.prewarm_usage + await self.control.deadline.bound(
                    write(section, voter, self.fence)
                )
                stats.prewarm_calls += 1
            except MissingCredentials:
                raise
            except DeadlineReached:
                self.control.out_of_time("a prewarm call was still running")
            except Exception as exc:
                stats.notes.append(f"prewarm of {section.id} for {voter.model} failed: {type(exc).__name__}: {exc}")
            finally:
                stats.in_flight -= 1

    async def one(self, index: int, voter: Voter) -> None:
        vote = self.hits.get((index, voter.id))
        self.record(
            index, dataclasses.replace(vote, cached=True) if vote is not None else await self.call(index, voter)
        )

    async def call(self, index: int, voter: Voter) -> Vote:
        """Ask one voter about one section (after its prewarm), and keep the answer in the cache."""
        section = self.sections[index]
        if (index, voter.model) in self.warming:
            await self.warming[(index, voter.model)]
        async with self.limit:
            self.stats.in_flight += 1
            try:
                vote = await self.control.call(
                    lambda: _isolated(self.cast, section, voter, self.fence), section, voter, error_vote
                )
            finally:
                self.stats.in_flight -= 1
        if self.cache:
            problem = self.cache.put(self.keys[(index, voter.id)], vote, section, voter)
            if problem and problem not in self.stats.notes:
                self.stats.notes.append(problem)
        return vote

    def record(self, index: int, vote: Vote) -> None:
        """Add a vote; the section's last vote judges it, in panel order."""
        cast_votes = self.votes[index]
        cast_votes.append(vote)
        if len(cast_votes) == len(self.panel):
            ordered = sorted(cast_votes, key=lambda v: self.order.get(v.voter_id, len(self.order)))
            self.results[index] = result = judge(self.sections[index], ordered, self.gate.n, self.gate.k)
            if self.on_section:
                self.on_section(result)
            if self.aggregator and self.control.stopped is None and self.aggregator[0].wants(result):
                self.writing.append(asyncio.ensure_future(self.synthesis(index, result, *self.aggregator)))

    async def synthesis(self, index: int, result: SectionResult, aggregation: Aggregation, write: Synthesize) -> None:
        """The section's synthesis, from the cache or one call; the outcome is already judged and stays."""
        model = aggregation.model
        keys = [self.keys[(index, v.voter_id)] for v in result.votes] if self.cache else []
        key = synthesis_key(result, keys, model, self.endpoint, self.impl) if self.cache else ""
        found = self.cache.get_synthesis(key, result) if self.cache else None
        if found is not None:
            synthesis = dataclasses.replace(found, cached=True)
        else:
            synthesis = await self.write_synthesis(result, model, write)
            problem = self.cache.put_synthesis(key, synthesis, result) if self.cache else None
            if problem and problem not in self.stats.notes:
                self.stats.notes.append(problem)
        self.results[index] = dataclasses.replace(self.results[index], synthesis=synthesis)

    async def write_synthesis(self, result: SectionResult, model: str, write: Synthesize) -> Synthesis:
        """One aggregator call under the run's limit, pacer and deadline; any failure is the synthesis's error."""
        start = time.monotonic()
        async with self.limit:
            self.stats.in_flight += 1
            try:
                return await self.control.paced(lambda: write(result, self.fence, model))
            except MissingCredentials:
                raise
            except DeadlineReached as exc:
                return failed(model, f"cut by --swarm-deadline: {exc}", time.monotonic() - start)
            except Exception as exc:  # a RunFault included: the votes are cast, so it stops nothing
                return failed(model, f"{type(exc).__name__}: {exc}", time.monotonic() - start)
            finally:
                self.stats.in_flight -= 1


def swap_notes(votes: Iterable[Vote]) -> list[str]:
    """One line per distinct (requested, answering) model pair where the reply named another model."""
    swaps = Counter((v.model, v.answered_model) for v in votes if v.swapped)
    return [
        f"model swap: {requested} was requested and {one_line(str(answered), 100)} answered ({times} votes, "
        "credited to the model that answered)"
        for (requested, answered), times in sorted(swaps.items())
    ]


async def _isolated(cast: CastVote, section: Section, voter: Voter, fence: str) -> Vote:
    """Run one call; any failure but missing credentials is that voter's ERROR vote.

    So is an answer that is not a Vote, or a Vote whose verdict is not SAFE, UNSAFE or ERROR
    (the tally would count it as an error while the report counted nothing). A valid vote is
    bound to the section and voter the call was for: a custom voter cannot vote for another.
    """
    start = time.monotonic()
    try:
        vote: object = await cast(section, voter, fence)
    except (MissingCredentials, RunFault, RateLimited):
        raise  # run-wide: the run stops, or its pacer sends the call again
    except Exception as exc:
        return error_vote(section, voter, Settings(), f"{type(exc).__name__}: {exc}", time.monotonic() - start, "voter")
    if not isinstance(vote, Vote):
        problem = f"the voter returned {type(vote).__name__}, not a Vote"
        return error_vote(section, voter, Settings(), problem, time.monotonic() - start, "voter")
    if vote.verdict not in VERDICTS:
        problem = f"the voter returned verdict {vote.verdict!r:.60}, not one of {', '.join(VERDICTS)}"
        return error_vote(section, voter, Settings(), problem, time.monotonic() - start, "voter")
    return dataclasses.replace(vote, section_id=section.id, voter_id=voter.id, model=voter.model, cached=False)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion, also from code that already runs inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=target, name="swarmgate-review")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value
