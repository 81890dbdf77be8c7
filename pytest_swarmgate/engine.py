"""The engine: every (section, voter) call of a run in one asyncio loop under one limit.

Wall time is about one call's latency when the limit allows, never the sum. A failing
call becomes an ERROR vote for that voter on that section and cancels nothing else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from typing import Any, Callable, Coroutine, Sequence, TypeVar

from .cache import VoteCache, vote_key
from .model import Section, SectionResult, Vote, Voter
from .prompt import new_fence
from .voters import CastVote, MissingCredentials
from .voting import check_threshold, judge

T = TypeVar("T")
OnSection = Callable[[SectionResult], None]


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
) -> list[SectionResult]:
    """Judge every section by every voter; results come back in section order.

    Sections are told apart by position, not id: a calibration run reviews many diffs
    whose sections may share a path.
    """
    check_threshold(len(panel), k)
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    fence = new_fence(sections)
    limit = asyncio.Semaphore(concurrency)
    votes: list[list[Vote]] = [[] for _ in sections]
    results: dict[int, SectionResult] = {}
    order = {v.id: i for i, v in enumerate(panel)}

    async def one(index: int, voter: Voter) -> None:
        section = sections[index]
        key = vote_key(section, voter, endpoint) if cache else ""
        vote = cache.get(key) if cache else None
        if vote is not None:
            vote = dataclasses.replace(vote, cached=True)
        else:
            async with limit:
                vote = await _isolated(cast, section, voter, fence)
            if cache:
                cache.put(key, vote)
        cast_votes = votes[index]
        cast_votes.append(vote)
        if len(cast_votes) == len(panel):
            ordered = sorted(cast_votes, key=lambda v: order.get(v.voter_id, len(order)))
            results[index] = judge(section, ordered, len(panel), k)
            if on_section:
                on_section(results[index])

    # Voter-major order: under a tight limit every section's first call goes out before any
    # second one, so the section prefix is already in the prompt cache for the later voters.
    tasks = [asyncio.ensure_future(one(i, v)) for v in panel for i in range(len(sections))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
    return [results[i] for i in range(len(sections))]


async def _isolated(cast: CastVote, section: Section, voter: Voter, fence: str) -> Vote:
    """Run one call; any failure but missing credentials is that voter's ERROR vote."""
    start = time.monotonic()
    try:
        return await cast(section, voter, fence)
    except MissingCredentials:
        raise
    except Exception as exc:  # noqa: BLE001 - isolation is the point: one bad call is one ERROR vote
        return Vote(
            section_id=section.id,
            voter_id=voter.id,
            model=voter.model,
            verdict="ERROR",
            error=f"{type(exc).__name__}: {exc}",
            latency_s=time.monotonic() - start,
        )


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
