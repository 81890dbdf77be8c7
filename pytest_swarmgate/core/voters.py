"""The built-in caster: one Messages API call through the official `anthropic` SDK per vote.

Words, as in DESIGN.md: a *voter* (`model.Voter`, named by its `voter_id`) is one member of
the panel - a model and its settings; a *caster* (`CastVote`) is what asks the model for a
voter's vote on a section. `AnthropicCaster` is the built-in one, `batch.BatchCaster` sends
the same requests through Message Batches, and the `pytest_swarmgate_make_voter` hook may
return its own (the hook keeps the name it was published with).

`anthropic` is imported only inside functions here and this module is imported only when
a review runs, so pytest without `--swarm-review` never pays for it.

Temperatures, honestly: the SDK's current API version rejects sampling parameters, so a
voter's temperature goes through a ladder per model - the SDK's version with the
temperature, then the older API version with it, then no temperature - and the first rung
the endpoint accepts is remembered for the rest of the run. Every vote records the
settings it really ran with and a note for each one that was not applied. The verdict tool
goes out with `strict: true`; an endpoint that refuses it is asked again without, once per
model, the same way.

Time, honestly: `timeout` bounds a whole vote - the SDK's retries and the ladder's steps
included - not one HTTP attempt, and a vote that runs out says how many attempts it made and
how long they really took. Every vote records the model that answered (the reply's `model`),
which a gateway may have swapped for another.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import json
import os
import pathlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .choices import ErrorKind
from .faults import RATE_LIMIT_STATUS, classify, in_chain
from .model import Section, SectionResult, Settings, Synthesis, Usage, Vote, Voter
from .pacing import Pacer
from .preflight import Preflight
from .prompt import TOOL_NAME, messages, system_blocks, verdict_tool
from .redact import Redactor, credential_problem
from .synthesis import failed, parse_synthesis, synthesis_params
from .text import one_line
from .verdict import NoToolCall, VerdictError, parse_reply

if TYPE_CHECKING:
    import anthropic

# The newest API version that still takes `temperature` on models that accept it.
LEGACY_API_VERSION = "2023-06-01"
# Words of a refusal that mean the temperature (not the effort) is what the model refuses.
TEMPERATURE_WORDS = ("temperature", "top_p", "top_k", "sampling")
EFFORT_WORDS = ("effort", "output_config")
STRICT_WORDS = ("strict",)
DEFAULT_MAX_TOKENS = 4096

CastVote = Callable[[Section, Voter, str], Awaitable[Vote]]


class MissingCredentials(Exception):
    """The SDK found no credentials; the run cannot make a single call."""


class BadCredentials(MissingCredentials):
    """A credential that cannot be sent (whitespace, control characters); the message never shows it."""


@dataclass(frozen=True)
class Rung:
    """One way of sending a voter's settings: which API version, and what to include."""

    api_version: str | None
    temperature: bool
    effort: bool
    strict: bool = True


@dataclass
class Ladder:
    """Per-model memory of what the endpoint accepts, shared by every call of one run."""

    temperature_rung: dict[str, int] = field(default_factory=dict)
    effort_rejected: set[str] = field(default_factory=set)
    strict_rejected: set[str] = field(default_factory=set)
    reasons: dict[str, str] = field(default_factory=dict)

    # Rung 0: the SDK's own version; 1: the legacy version; 2: no temperature at all.
    VERSIONS = (None, LEGACY_API_VERSION, None)

    def rung(self, voter: Voter) -> Rung:
        index = self.temperature_rung.get(voter.model, 0) if voter.temperature is not None else 2
        return Rung(
            api_version=self.VERSIONS[index] if voter.temperature is not None else None,
            temperature=index < 2,
            effort=voter.effort is not None and voter.model not in self.effort_rejected,
            strict=voter.model not in self.strict_rejected,
        )

    def step_down(self, voter: Voter, used: Rung, message: str) -> bool:
        """Record a rejection of `used`; True when there is another rung to try."""
        lowered = message.lower()
        if used.strict and any(w in lowered for w in STRICT_WORDS):
            # Once per model: the verdict is validated on our side either way.
            self.strict_rejected.add(voter.model)
            self.reasons[f"strict:{voter.model}"] = message
            return True
        effort_refused = used.effort and any(w in lowered for w in EFFORT_WORDS)
        if effort_refused and used.api_version is None:
            self.effort_rejected.add(voter.model)
            self.reasons[f"effort:{voter.model}"] = message
            return True
        # Under the legacy version, a refused effort means that version is the problem: effort
        # works on the current one, temperature does not, so give up the legacy rung instead.
        if used.temperature and (effort_refused or any(w in lowered for w in TEMPERATURE_WORDS)):
            current = self.temperature_rung.get(voter.model, 0)
            used_index = self.VERSIONS.index(used.api_version) if used.api_version else 0
            # Concurrent calls may have stepped already: never step back up.
            self.temperature_rung[voter.model] = max(current, used_index + 1)
            return True
        return False


def effective_settings(voter: Voter, rung: Rung) -> Settings:
    """What a call on `rung` really sends, with a note for each requested setting it drops."""
    notes = []
    if voter.temperature is not None and not rung.temperature:
        notes.append(f"temperature {voter.temperature:g} requested, not applied: endpoint rejects sampling parameters")
    elif rung.temperature and rung.api_version:
        notes.append(
            f"temperature {voter.temperature:g} applied under anthropic-version {rung.api_version}: "
            "the current version rejects sampling parameters"
        )
    if voter.effort is not None and not rung.effort:
        notes.append(f"effort {voter.effort} requested, not applied: endpoint rejects it for {voter.model}")
    if not rung.strict:
        notes.append(f"strict tool schema not applied: endpoint rejects it for {voter.model}")
    return Settings(
        temperature=voter.temperature if rung.temperature else None,
        effort=voter.effort if rung.effort else None,
        lens=voter.lens,
        api_version=rung.api_version,
        notes=tuple(notes),
        strict=rung.strict,
    )


async def _pace_rate_limits(response: Any) -> None:
    """An httpx response hook: the SDK does not retry a 429 or 529 on its own.

    The SDK would retry each one per call after its own `retry-after`, so every call of a
    rate-limited run would go again at once. The run's pacer sends it again instead
    (`x-should-retry` is the SDK's documented switch; 5xx and connection errors keep its retries).
    """
    if response.status_code in RATE_LIMIT_STATUS:
        response.headers["x-should-retry"] = "false"


def make_client(*, timeout: float, max_retries: int) -> anthropic.AsyncAnthropic:
    """The standard client: the SDK resolves credentials and ANTHROPIC_BASE_URL itself.

    With nowhere the SDK could find a credential, says so before importing it (seconds saved).
    """
    problem = credential_problem(os.environ)
    if problem:
        raise BadCredentials(problem)
    if not credential_sources(os.environ):
        raise MissingCredentials("no api_key, auth_token or profile found")
    import anthropic

    try:
        http_client = anthropic.DefaultAsyncHttpxClient(event_hooks={"response": [_pace_rate_limits]})
        return anthropic.AsyncAnthropic(timeout=timeout, max_retries=max_retries, http_client=http_client)
    except anthropic.CredentialsError as exc:
        # A profile or config directory that is named but unusable: as good as no credentials.
        raise MissingCredentials(" ".join(str(exc).split())) from None


# Where the SDK's credential chain looks (anthropic.lib.credentials): the key and token, a named
# profile, workload identity federation; and its profile directory (below).
CREDENTIAL_SOURCE_ENVS = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_PROFILE",
    "ANTHROPIC_FEDERATION_RULE_ID",
    "ANTHROPIC_IDENTITY_TOKEN",
    "ANTHROPIC_IDENTITY_TOKEN_FILE",
)


def credential_sources(env: Mapping[str, str]) -> list[str]:
    """Where the SDK might find a credential: the variables set, and its profile directory if it holds anything.

    Errs towards the SDK: anything that might hold a credential counts, and the SDK decides.
    """
    found = [name for name in CREDENTIAL_SOURCE_ENVS if env.get(name)]
    profiles = profile_directory(env)
    return found if profiles is None else [*found, str(profiles)]


def profile_directory(env: Mapping[str, str]) -> pathlib.Path | None:
    """The SDK's profile directory when it holds anything (a profile may hold a key and a base URL), else None."""
    if env.get("ANTHROPIC_CONFIG_DIR"):
        profiles = pathlib.Path(env["ANTHROPIC_CONFIG_DIR"])
    elif env.get("APPDATA"):
        profiles = pathlib.Path(env["APPDATA"]) / "Anthropic"
    else:
        try:
            profiles = (pathlib.Path(env["HOME"]) if env.get("HOME") else pathlib.Path.home()) / ".config" / "anthropic"
        except RuntimeError:  # no home directory to look in
            return None
    try:
        return profiles if any(profiles.iterdir()) else None
    except OSError:  # absent or unreadable: no profile the SDK could load
        return None


def redact(text: str, client: Any) -> str:
    """Keep secrets, in every form, out of error text, which ends up in reports."""
    return Redactor.from_env(os.environ, client)(text)


def missing_credentials(exc: TypeError) -> MissingCredentials | None:
    """The SDK raises TypeError before sending when it can resolve no credentials."""
    if "authentication method" in str(exc):
        return MissingCredentials("no api_key, auth_token or profile found")
    return None


def _usage(message: Any) -> Usage:
    u = getattr(message, "usage", None)
    if u is None:
        return Usage()
    return Usage(
        input_tokens=int(getattr(u, "input_tokens", 0) or 0),
        output_tokens=int(getattr(u, "output_tokens", 0) or 0),
        cache_read_tokens=int(getattr(u, "cache_read_input_tokens", 0) or 0),
        cache_write_tokens=int(getattr(u, "cache_creation_input_tokens", 0) or 0),
    )


def request_params(
    section: Section, voter: Voter, fence: str, rung: Rung, max_tokens: int, cache_ttl: str = "5m", guidance: str = ""
) -> dict[str, Any]:
    """The keyword arguments of `messages.create` for one vote (also the body of a batch request)."""
    params: dict[str, Any] = {
        "model": voter.model,
        "max_tokens": max_tokens,
        "system": system_blocks(cache_ttl, guidance),
        "messages": messages(section, voter, fence),
        "tools": [verdict_tool(rung.strict)],
        "tool_choice": {"type": "tool", "name": TOOL_NAME},
    }
    if rung.effort:
        params["output_config"] = {"effort": voter.effort}
    extra_body: dict[str, Any] = {}
    if rung.temperature:
        # The SDK dropped the parameter; the body still carries it where the endpoint takes it.
        extra_body["temperature"] = voter.temperature
    if extra_body:
        params["extra_body"] = extra_body
    if rung.api_version:
        params["extra_headers"] = {"anthropic-version": rung.api_version}
    return params


def vote_from_message(section: Section, voter: Voter, settings: Settings, message: Any, latency: float) -> Vote:
    """Validate a reply into a Vote; anything unusable is an ERROR vote with the reason."""
    stop_reason = getattr(message, "stop_reason", None)
    answered = getattr(message, "model", None)
    answered = answered if isinstance(answered, str) and answered else None
    if answered is not None and answered != voter.model:
        note = f"answered by model {one_line(answered, 100)}, not {voter.model} as requested"
        settings = dataclasses.replace(settings, notes=(*settings.notes, note))
    vote = dataclasses.replace(
        error_vote(section, voter, settings, None, latency, "unusable"),
        stop_reason=stop_reason,
        usage=_usage(message),
        answered_model=answered,
    )
    try:
        content = [block.model_dump() if hasattr(block, "model_dump") else dict(block) for block in message.content]
        parsed = parse_reply(stop_reason, content, section)
    except (VerdictError, TypeError, AttributeError, ValueError) as exc:
        kind: ErrorKind = "no_tool_call" if isinstance(exc, NoToolCall) else "unusable"
        return dataclasses.replace(vote, error=f"unusable reply: {exc}", error_kind=kind)
    return dataclasses.replace(
        vote,
        verdict=parsed.verdict,
        error_kind=None,
        confidence=parsed.confidence,
        findings=parsed.findings,
        summary=parsed.summary,
    )


def error_vote(
    section: Section, voter: Voter, settings: Settings, error: str | None, latency: float, kind: ErrorKind
) -> Vote:
    return Vote(
        section_id=section.id,
        voter_id=voter.id,
        model=voter.model,
        verdict="ERROR",
        error=error,
        latency_s=latency,
        settings=settings,
        error_kind=kind,
    )


def _is_timeout(exc: BaseException) -> bool:
    """A timeout anywhere in the exception chain, whatever class the HTTP layer wrapped it in."""
    return in_chain(exc, lambda e: "timeout" in type(e).__name__.lower())


@dataclass
class Attempts:
    """The HTTP attempts of one vote so far, counted by the SDK middleware, and its clock."""

    count: int = 0
    started: float = field(default_factory=time.monotonic)
    last_error: str | None = None  # what the last failed attempt got, for a vote that then ran out

    @property
    def spent(self) -> float:
        return time.monotonic() - self.started

    def describe(self) -> str:
        if not self.count:
            return f"{self.spent:.1f}s spent"  # a client without SDK middleware: attempts unseen
        noun = "attempt" if self.count == 1 else "attempts"
        last = f"; last attempt: {self.last_error}" if self.last_error else ""
        return f"{self.count} {noun}, {self.spent:.1f}s spent{last}"


# The vote a middleware call belongs to: each vote runs in its own task, which copies the context.
_ATTEMPTS: contextvars.ContextVar[Attempts | None] = contextvars.ContextVar("swarmgate_attempts", default=None)


def describe_error(exc: BaseException, timeout: float) -> str:
    """One line for an SDK exception, after the SDK's own retries gave up."""
    import anthropic

    if _is_timeout(exc):
        attempts = _ATTEMPTS.get()
        spent = f" ({attempts.describe()})" if attempts is not None else ""
        return f"timeout: no reply within {timeout:g}s, the vote's whole budget{spent}"
    if isinstance(exc, anthropic.APIStatusError):
        body: dict[str, Any] = exc.body if isinstance(exc.body, dict) else {}
        err: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else {}
        kind = err.get("type", "error")
        msg = err.get("message") or str(exc)
        return f"HTTP {exc.status_code} {kind}: {msg}"
    if isinstance(exc, anthropic.APIConnectionError):
        cause = exc.__cause__ or exc
        return f"connection error: {type(cause).__name__}: {cause}".rstrip(": ")
    if isinstance(exc, anthropic.APIResponseValidationError):
        return f"malformed reply: {exc}"
    return f"{type(exc).__name__}: {exc}"


class AnthropicCaster:
    """Casts votes with one shared AsyncAnthropic client and one shared Ladder.

    `timeout` is the budget of one vote, every attempt and step included. `retries` counts the
    SDK's retries so far over all votes, for the progress line.
    """

    def __init__(
        self,
        client: Any,
        *,
        timeout: float,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        cache_ttl: str = "5m",
        guidance: str = "",
    ) -> None:
        self.client = _counting(client, self._count_attempt)
        # Built once: the job's secrets and the client's credentials, for every error text.
        self._redact = Redactor.from_env(os.environ, client)
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.cache_ttl = cache_ttl
        self.guidance = guidance  # the team's policy block (core/policy.py), the same for every call
        self.ladder = Ladder()
        self.retries = 0
        # The engine paces every call of the run with it; the responses' headers feed it.
        self.pacer = Pacer()

    async def _count_attempt(self, request: Any, call_next: Any) -> Any:
        """SDK middleware: runs once per HTTP attempt, inside the SDK's retry loop."""
        attempts = _ATTEMPTS.get()
        if attempts is not None:
            attempts.count += 1
        if getattr(request, "retries_taken", 0):
            self.retries += 1
        try:
            response = await call_next(request)
        except Exception as exc:
            if attempts is not None:
                attempts.last_error = "timed out" if _is_timeout(exc) else self._error(exc, 0)
            raise
        if attempts is not None and getattr(response, "status_code", 200) >= 400:
            attempts.last_error = await _status_line(response)
        return response

    async def _create(self, params: dict[str, Any], attempts: Attempts) -> Any:
        """One `messages.create`, bounded by what is left of the vote's budget, retries included."""
        remaining = self.timeout - attempts.spent
        if remaining <= 0:
            raise asyncio.TimeoutError
        # The SDK's own per-attempt timeout as well: an attempt never outlives the budget. The raw
        # response's rate-limit headers feed the run's pacer.
        raw = await asyncio.wait_for(
            self.client.messages.with_raw_response.create(timeout=remaining, **params), remaining
        )
        self.pacer.observe(raw.headers)
        return await raw.parse()

    def _error(self, exc: BaseException, timeout: float | None = None) -> str:
        """The redacted one-line description of an SDK error."""
        return self._redact(describe_error(exc, self.timeout if timeout is None else timeout))

    def _failed(self, section: Section, voter: Voter, settings: Settings, exc: Exception, attempts: Attempts) -> Vote:
        """An ERROR vote for a per-call fault; a run-wide fault or a rate limit is raised for the engine."""
        text = self._failure(exc)
        return error_vote(section, voter, settings, text, attempts.spent, "timeout" if _is_timeout(exc) else "request")

    def _failure(self, exc: Exception) -> str:
        """The redacted line of a per-call fault; a run-wide fault or a rate limit is raised for the engine."""
        text = self._error(exc)
        self.pacer.observe(getattr(getattr(exc, "response", None), "headers", None))
        if (fault := classify(exc, text)) is not None:
            raise fault from None  # from None: the SDK's exception holds unredacted text
        return text

    async def preflight(self, models: list[str]) -> list[str]:
        """Check the key, the endpoint and every model (`core/preflight.py`); the check each model passed.

        Empty for a client without a Models API (some Bedrock or Vertex clients). Raises RunFault
        with one redacted line naming the check and the endpoint; missing credentials stay
        MissingCredentials.
        """
        if getattr(self.client, "models", None) is None:
            return []
        try:
            return await Preflight(self.client, timeout=self.timeout, describe=self._error).check(models)
        except TypeError as exc:
            raise (missing_credentials(exc) or exc) from None

    async def prewarm(self, section: Section, voter: Voter, fence: str) -> Usage:
        """Write the section's prompt prefix into the cache with a call that generates nothing.

        A failure is a RuntimeError with the same redacted one-line description a vote's
        error gets: the engine puts its text in the run's notes, which reach every report.
        """
        import anthropic

        attempts = Attempts()
        token = _ATTEMPTS.set(attempts)
        try:
            message = await self._prewarm_call(section, voter, fence, attempts)
        except TypeError as exc:
            raise (missing_credentials(exc) or exc) from None
        except (anthropic.AnthropicError, asyncio.TimeoutError) as exc:
            # from None: the chained SDK exception still holds the unredacted text.
            raise RuntimeError(self._error(exc)) from None
        finally:
            _ATTEMPTS.reset(token)
        return _usage(message)

    async def _prewarm_call(self, section: Section, voter: Voter, fence: str, attempts: Attempts) -> Any:
        """The prewarm request, with the tool as the voters will send it (strict where it is taken)."""
        import anthropic

        while True:
            rung = dataclasses.replace(self.ladder.rung(voter), api_version=None, temperature=False, effort=False)
            params = request_params(section, voter, fence, rung, 0, self.cache_ttl, self.guidance)
            # Everything up to the section's cache breakpoint, nothing voter-specific after it.
            params["messages"][0]["content"] = params["messages"][0]["content"][:1]
            try:
                return await self._create(params, attempts)
            except anthropic.BadRequestError as exc:
                # Only a strict refusal is worth a second try: the tools are part of the cached prefix.
                if not (rung.strict and self.ladder.step_down(voter, rung, describe_error(exc, self.timeout))):
                    raise

    async def synthesize(self, result: SectionResult, fence: str, model: str) -> Synthesis:
        """The aggregator's review of a judged section (core/synthesis.py), within one vote's budget.

        Never raises for a bad reply or a per-call fault: the synthesis carries the error. A rate
        limit or a run-wide fault is raised, as for a vote, for the engine's pacing.
        """
        import anthropic

        attempts = Attempts()
        token = _ATTEMPTS.set(attempts)
        # The strict-schema memory is the voters': a model that refuses it refuses it for both tools.
        voter = Voter("aggregator", model)
        try:
            while True:
                rung = Rung(None, temperature=False, effort=False, strict=model not in self.ladder.strict_rejected)
                params = synthesis_params(
                    result, fence, model, self.max_tokens, self.cache_ttl, self.guidance, rung.strict
                )
                try:
                    message = await self._create(params, attempts)
                except anthropic.BadRequestError as exc:
                    if rung.strict and self.ladder.step_down(voter, rung, describe_error(exc, self.timeout)):
                        continue
                    return failed(model, self._failure(exc), attempts.spent)
                except TypeError as exc:
                    raise (missing_credentials(exc) or exc) from None
                except (anthropic.AnthropicError, asyncio.TimeoutError) as exc:
                    return failed(model, self._failure(exc), attempts.spent)
                except ValueError as exc:
                    return failed(model, self._redact(f"malformed reply: {type(exc).__name__}: {exc}"), attempts.spent)
                return self._synthesis(result, model, message, attempts.spent)
        finally:
            _ATTEMPTS.reset(token)

    def _synthesis(self, result: SectionResult, model: str, message: Any, latency: float) -> Synthesis:
        usage = _usage(message)
        self.pacer.spent(usage.input_tokens + usage.cache_write_tokens)
        try:
            content = [block.model_dump() if hasattr(block, "model_dump") else dict(block) for block in message.content]
            synthesis = parse_synthesis(getattr(message, "stop_reason", None), content, result, model)
        except (VerdictError, TypeError, AttributeError, ValueError) as exc:
            return failed(model, f"unusable reply: {exc}", latency, usage)
        return dataclasses.replace(synthesis, usage=usage, latency_s=latency)

    async def __call__(self, section: Section, voter: Voter, fence: str) -> Vote:
        attempts = Attempts()
        token = _ATTEMPTS.set(attempts)
        try:
            return await self._vote(section, voter, fence, attempts)
        finally:
            _ATTEMPTS.reset(token)

    async def _vote(self, section: Section, voter: Voter, fence: str, attempts: Attempts) -> Vote:
        import anthropic

        while True:
            rung = self.ladder.rung(voter)
            settings = effective_settings(voter, rung)
            params = request_params(section, voter, fence, rung, self.max_tokens, self.cache_ttl, self.guidance)
            try:
                message = await self._create(params, attempts)
            except anthropic.BadRequestError as exc:
                if self.ladder.step_down(voter, rung, describe_error(exc, self.timeout)):
                    continue
                return self._failed(section, voter, settings, exc, attempts)
            except TypeError as exc:
                raise (missing_credentials(exc) or exc) from None
            except (anthropic.AnthropicError, asyncio.TimeoutError) as exc:
                return self._failed(section, voter, settings, exc, attempts)
            except ValueError as exc:
                # The SDK lets a 200 whose body is not JSON through as a bare JSONDecodeError.
                error = f"malformed reply: {type(exc).__name__}: {exc}"
                return error_vote(section, voter, settings, self._redact(error), attempts.spent, "unusable")
            vote = vote_from_message(section, voter, settings, message, attempts.spent)
            self.pacer.spent(vote.usage.input_tokens + vote.usage.cache_write_tokens)
            return vote


async def _status_line(response: Any) -> str:
    """`HTTP 529 overloaded_error: busy` from an error response (the body stays readable for the SDK)."""
    line = f"HTTP {response.status_code}"
    http = getattr(response, "http_response", None)
    if http is None:
        return line
    try:
        body = json.loads(await http.aread())
    except ValueError:
        return line  # not JSON: the status says enough
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        line += f" {one_line(str(error.get('type', 'error')), 60)}: {one_line(str(error.get('message', '')), 200)}"
    return line


def _counting(client: Any, middleware: Any) -> Any:
    """The client with a middleware that sees every HTTP attempt, where the SDK offers middleware."""
    # Looked up on the type: a stand-in client (a mock, a test double) has no SDK middleware.
    if not callable(getattr(type(client), "with_middleware", None)):
        return client
    return client.with_middleware(middleware)
