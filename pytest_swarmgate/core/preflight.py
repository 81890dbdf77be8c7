"""The preflight: the key, the endpoint and each model of the panel checked with the cheapest call answered.

Many Anthropic-compatible endpoints (gateways, proxies, self-hosted servers) implement
`/v1/messages` and little else, so each model is checked down a ladder and a route the endpoint
does not have is a step down, not a failure: the model's own record (`GET /v1/models/{model}`),
the model list (`GET /v1/models`), the free token count (`POST /v1/messages/count_tokens`), and
last a one-token message. A 404 or 405 that does not name the model means the route is missing;
one that does, or a model list that lacks it while a later step refuses it, means the model is.

Every failure is a `RunFault` whose line names the check and the endpoint (never a password),
with `retry` set only when trying again later may help (unreachable, overloaded, timed out).
"""

from __future__ import annotations

import asyncio
import difflib
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .faults import RunFault

# Statuses a retry later may fix; every other failure needs a person (key, permission, model).
_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}
_PING = [{"role": "user", "content": "ping"}]
_MODEL_WORD = re.compile(r"\bmodel\b", re.IGNORECASE)


class _RouteMissing(Exception):
    """The endpoint does not implement this check's route."""


def public_url(url: str) -> str:
    """`url` without the user name and password its authority may carry: safe to print."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return url.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{host}{port}", parts.path, "", ""))


def base_url_hint(url: str) -> str:
    """A hint for a base URL that ends in /v1: the SDK adds /v1 to every path itself."""
    return (
        "; the base URL ends in /v1, which the SDK adds itself: set ANTHROPIC_BASE_URL without it"
        if url.rstrip("/").endswith("/v1")
        else ""
    )


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _names_model(exc: BaseException) -> bool:
    """Whether an error's JSON body says the model is what is missing (not the route)."""
    body = getattr(exc, "body", None)
    error = body.get("error") if isinstance(body, dict) else None
    message = str(error.get("message") or "") if isinstance(error, dict) else ""
    # The API says `model: NAME`; a missing route's message ("Not Found", a path) names no model.
    return _MODEL_WORD.search(message) is not None


class Preflight:
    """Checks one client's endpoint and models; `describe` turns an SDK error into one redacted line."""

    def __init__(self, client: Any, *, timeout: float, describe: Callable[[BaseException, float], str]) -> None:
        self.client = client
        self.timeout = timeout
        self.describe = describe
        self.where = public_url(str(getattr(client, "base_url", "") or ""))
        self.listed: list[str] | None = None

    async def check(self, models: list[str]) -> list[str]:
        """Check every model; for each, the check that passed (`claude-x answered GET /v1/models`).

        Raises RunFault naming the check and the endpoint."""
        return [await self._model(model) for model in dict.fromkeys(models)]

    async def _model(self, model: str) -> str:
        steps: list[tuple[str, Callable[[str], Awaitable[bool]]]] = [
            ("GET /v1/models/{model}", self._retrieve),
            ("GET /v1/models", self._list),
            ("POST /v1/messages/count_tokens", self._count),
            ("POST /v1/messages", self._message),
        ]
        missing: list[str] = []
        for route, step in steps:
            try:
                if await self._call(route, model, step):
                    absent = f" ({', '.join(missing)} not served)" if missing else ""
                    return f"{model} answered {route}{absent}"
            except _RouteMissing:
                missing.append(route)
                continue
        raise RunFault(
            f"the endpoint {self.where} answers none of the preflight's checks ({', '.join(missing)} not found)"
            f"{base_url_hint(self.where)}; if it serves messages some other way, pass --swarm-preflight=off",
            retry=False,
        )

    async def _call(self, route: str, model: str, step: Callable[[str], Awaitable[bool]]) -> bool:
        """One step: True when it shows the model is served, False to take the next step."""
        import anthropic

        limit = min(self.timeout, 30.0)
        try:
            return await asyncio.wait_for(step(model), limit)
        except TypeError:
            raise  # missing credentials: the caller turns it into a usage error
        except (anthropic.AnthropicError, asyncio.TimeoutError) as exc:
            status = _status(exc)
            if status in (404, 405) and not (status == 404 and _names_model(exc)):
                raise _RouteMissing from None
            text = self.describe(exc, limit)
            said = route.replace("{model}", model)
            if status == 404:
                raise RunFault(self._unknown(model, said, text), retry=False) from None
            retry = status is None or status in _RETRY_STATUS
            raise RunFault(f"{said} at {self.where}: {text}{base_url_hint(self.where)}", retry=retry) from None

    def _unknown(self, model: str, said: str, text: str) -> str:
        """The model is missing: named once, with the status (its message repeats the name) and close names listed."""
        close = difflib.get_close_matches(model, self.listed or [], n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return f"the endpoint {self.where} has no model {model} ({said}: {text.partition(':')[0]}){hint}"

    async def _retrieve(self, model: str) -> bool:
        await self.client.models.retrieve(model, timeout=min(self.timeout, 30.0))
        return True

    async def _list(self, model: str) -> bool:
        """The model list: served when it names the model; otherwise kept for a "did you mean" and passed on."""
        if self.listed is None:
            page = await self.client.models.list(limit=1000, timeout=min(self.timeout, 30.0))
            self.listed = [str(getattr(m, "id", "")) for m in getattr(page, "data", [])]
        return model in self.listed

    async def _count(self, model: str) -> bool:
        await self.client.messages.count_tokens(model=model, messages=_PING, timeout=min(self.timeout, 30.0))
        return True

    async def _message(self, model: str) -> bool:
        await self.client.messages.create(model=model, max_tokens=1, messages=_PING, timeout=min(self.timeout, 30.0))
        return True
