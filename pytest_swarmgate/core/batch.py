"""`--swarm-batch`: the built-in caster's calls sent through the Message Batches API (half price).

`BatchCaster` is a CastVote, like `voters.AnthropicCaster`, so the engine, the vote cache and
`runner.execute` work unchanged: cached votes are served before any request is made, and every
vote is judged and reported as in a direct run. Only the transport differs. Each call parks
its request; once a pass of the event loop adds no new request (the engine starts every call
of a run in the same pass when its concurrency limit allows it, and the calibration run sets
the limit to the number of calls), the parked requests go out as one batch per API version,
the batch is polled until it has ended, and each result answers its call.

Requests are the direct ones (`voters.request_params`: same prompt, tools and cache
breakpoints). `extra_body` and `extra_headers` are options of an SDK call, not Messages
parameters, so the body's extra fields are merged into the params and the API version
becomes the header of the batch that carries them: requests on different rungs of the
temperature ladder go in different batches, each under its own version. An `errored` result
that rejects a setting (temperature, effort) steps the shared `voters.Ladder` down exactly as
a 400 does for a direct call, and the call is parked again for the next batch: so a voter's
temperature is applied only where the endpoint accepts it, and its vote's settings and notes
say what really ran. Any other errored, canceled, expired or missing result is that voter's
ERROR vote with the reason; a batch that cannot be created or read makes every vote in it an
ERROR vote. A vote's latency is its request's turnaround, batch wait included.

Progress: one line per poll (`swarmgate: batch msgbatch_... in_progress: 12/40 done`), every
$SWARMGATE_BATCH_POLL_SECONDS seconds (default 30).

`anthropic` is imported only inside functions, as in `voters`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .choices import ErrorKind
from .model import Section, Vote, Voter
from .voters import (
    AnthropicCaster,
    Rung,
    describe_error,
    effective_settings,
    error_vote,
    missing_credentials,
    redact,
    request_params,
    vote_from_message,
)

POLL_ENV = "SWARMGATE_BATCH_POLL_SECONDS"
# Batches take minutes to hours; a poll every 30 s keeps a CI log readable (one line per poll).
DEFAULT_POLL_SECONDS = 30.0
Progress = Callable[[str], None]


def poll_seconds(environ: Mapping[str, str] = os.environ) -> float:
    """Seconds between two status polls of a batch: $SWARMGATE_BATCH_POLL_SECONDS, else 30."""
    raw = environ.get(POLL_ENV, "").strip()
    if not raw:
        return DEFAULT_POLL_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < float("inf"):
        raise ValueError(f"{POLL_ENV}: expected a number of seconds, 0 or more, got {raw!r}")
    return value


@dataclass(frozen=True)
class _Answer:
    """What a batch said about one request: a Message, or why there is none."""

    message: Any = None
    error: str = ""
    rejected: bool = False  # an invalid_request_error: the ladder may know a setting to drop
    kind: ErrorKind = "request"


@dataclass
class _Parked:
    """One call waiting for the next batch."""

    params: dict[str, Any]
    api_version: str | None
    answer: asyncio.Future[_Answer]


class BatchCaster:
    """Casts votes through Message Batches with the client, limits and Ladder of an AnthropicCaster."""

    def __init__(self, direct: AnthropicCaster, *, poll_seconds: float, progress: Progress) -> None:
        self.client = direct.client
        self.timeout = direct.timeout
        self.max_tokens = direct.max_tokens
        self.cache_ttl, self.guidance = direct.cache_ttl, direct.guidance
        self.ladder = direct.ladder
        self.poll_seconds = poll_seconds
        self.progress = progress
        self._parked: list[_Parked] = []
        self._flushing: asyncio.Task[None] | None = None
        self._sent = 0  # requests sent so far: the source of unique custom ids

    async def __call__(self, section: Section, voter: Voter, fence: str) -> Vote:
        start = time.monotonic()
        while True:
            rung = self.ladder.rung(voter)
            settings = effective_settings(voter, rung)
            params = request_params(section, voter, fence, rung, self.max_tokens, self.cache_ttl, self.guidance)
            answer = await self._park(batch_params(params), rung)
            if answer.message is not None:
                return vote_from_message(section, voter, settings, answer.message, time.monotonic() - start)
            if answer.rejected and self.ladder.step_down(voter, rung, answer.error):
                continue
            return error_vote(section, voter, settings, answer.error, time.monotonic() - start, answer.kind)

    async def _park(self, params: dict[str, Any], rung: Rung) -> _Answer:
        parked = _Parked(params, rung.api_version, asyncio.get_running_loop().create_future())
        self._parked.append(parked)
        if self._flushing is None:
            self._flushing = asyncio.ensure_future(self._flush_when_quiet())
        return await parked.answer

    async def _flush_when_quiet(self) -> None:
        """Wait until a pass of the event loop parks nothing new, then send what is parked."""
        seen = -1
        while seen != len(self._parked):
            seen = len(self._parked)
            await asyncio.sleep(0)
        parked, self._parked, self._flushing = self._parked, [], None
        by_version: dict[str | None, list[_Parked]] = {}
        for p in parked:
            by_version.setdefault(p.api_version, []).append(p)
        await asyncio.gather(*(self._settle(version, group) for version, group in by_version.items()))

    async def _settle(self, version: str | None, parked: list[_Parked]) -> None:
        """Run one batch and answer every parked call in it, whatever happens."""
        ids = [f"swarmgate-{self._sent + i}" for i in range(len(parked))]
        self._sent += len(parked)
        try:
            answers = await self._run_batch(version, dict(zip(ids, (p.params for p in parked), strict=True)))
        except Exception as exc:
            # The engine re-raises MissingCredentials and makes anything else each call's ERROR vote.
            for p in parked:
                if not p.answer.done():
                    p.answer.set_exception(exc)
            return
        for custom_id, p in zip(ids, parked, strict=True):
            if not p.answer.done():
                p.answer.set_result(answers[custom_id])

    async def _run_batch(self, version: str | None, requests: dict[str, dict[str, Any]]) -> dict[str, _Answer]:
        """Create, poll and read one batch: an answer for every custom id."""
        import anthropic

        headers = {"anthropic-version": version} if version else None
        batches = self.client.messages.batches
        try:
            batch = await batches.create(
                requests=[{"custom_id": cid, "params": params} for cid, params in requests.items()],
                extra_headers=headers,
                timeout=self.timeout,
            )
            under = f" under anthropic-version {version}" if version else ""
            self.progress(f"swarmgate: batch {batch.id} created: {len(requests)} requests{under}")
            while batch.processing_status != "ended":
                await asyncio.sleep(self.poll_seconds)
                batch = await batches.retrieve(batch.id, extra_headers=headers, timeout=self.timeout)
                self.progress(progress_line(batch))
            answers: dict[str, _Answer] = {}
            async for line in await batches.results(batch.id, extra_headers=headers, timeout=self.timeout):
                answers[line.custom_id] = self._answer(line.result)
        except TypeError as exc:
            raise (missing_credentials(exc) or exc) from None
        except (anthropic.AnthropicError, asyncio.TimeoutError) as exc:
            failed = _Answer(error="batch failed: " + redact(describe_error(exc, self.timeout), self.client))
            return dict.fromkeys(requests, failed)
        missing = _Answer(error=f"batch {batch.id} has no result for this request")
        return {cid: answers.get(cid, missing) for cid in requests}

    def _answer(self, result: Any) -> _Answer:
        """One batch result as an _Answer; the error text reads like a direct call's."""
        kind = getattr(result, "type", None)
        if kind == "succeeded":
            return _Answer(message=result.message)
        if kind == "errored":
            error = getattr(getattr(result, "error", None), "error", None)
            error_type = getattr(error, "type", "error")
            message = redact(str(getattr(error, "message", "") or "no message"), self.client)
            return _Answer(
                error=f"batch errored: {error_type}: {message}", rejected=error_type == "invalid_request_error"
            )
        if kind == "canceled":
            return _Answer(error="batch request canceled before it was processed")
        if kind == "expired":
            return _Answer(error="batch request expired before it was processed", kind="timeout")
        return _Answer(error=f"batch result of unknown type {kind!r}")


def batch_params(params: dict[str, Any]) -> dict[str, Any]:
    """`messages.create` keyword arguments as the `params` of a batch request.

    extra_body is merged in: its fields belong in the body. extra_headers is dropped: the
    batch's own header carries the API version (the caller groups requests by version).
    """
    params = dict(params)
    params.pop("extra_headers", None)
    params.update(params.pop("extra_body", None) or {})
    return params


def progress_line(batch: Any) -> str:
    """`swarmgate: batch msgbatch_... in_progress: 12/40 done` (with the result kinds once ended)."""
    counts = batch.request_counts
    done = counts.succeeded + counts.errored + counts.canceled + counts.expired
    line = f"swarmgate: batch {batch.id} {batch.processing_status}: {done}/{done + counts.processing} done"
    if batch.processing_status == "ended":
        line += (
            f" ({counts.succeeded} succeeded, {counts.errored} errored, {counts.canceled} canceled,"
            f" {counts.expired} expired)"
        )
    return line
