"""An Anthropic-compatible stub server on 127.0.0.1, scripted per section and voter.

The real `anthropic` SDK talks to it over real HTTP (set ANTHROPIC_BASE_URL to `.url`),
so retries, error mapping and response parsing are the SDK's own. Standard library
only: it ships in the package and starts in milliseconds.

Endpoints
    POST /v1/messages                        one Message (or a scripted fault)
    POST /v1/messages/batches                create a Message Batch (every request scripted)
    GET  /v1/messages/batches                list batches
    GET  /v1/messages/batches/{id}           status: in_progress for the first
                                             `batch_polls_before_done` polls, then ended
    GET  /v1/messages/batches/{id}/results   JSONL, one line per request
    GET  /v1/models/{model}                  the model, or 404 when `models` is given and lacks it
    GET  /v1/models                          the `models` given (none when any model is taken)
    POST /v1/messages/count_tokens           the prompt's tokens (characters / 4)

`routes` names the optional routes served (default all of OPTIONAL_ROUTES: "model",
"models", "count_tokens"); one left out answers a plain-text 404 `File Not Found`, as a
gateway that implements `/v1/messages` and little else does.

Faults of the whole endpoint, beside the script's per-call ones: `require_key` (401 unless
that key comes), `revoke_key_after=N` (the key is rejected with 401 after N message calls),
`models` (a message call for another model is a 404 not_found_error), and `rate_limit`
(`RateLimit`: token buckets for requests and input tokens; a request that finds a bucket
short is answered 429 with an honest `retry-after` - the seconds until the bucket holds
it - and every response carries the `anthropic-ratelimit-*` headers). The request log keeps
the last `log_limit` requests (default 10,000).

Routing: the section is the first `^section: (.+)$` line and its file the first
`^path: (.+)$` line of the user content; the voter is the first `^voter: (\\S+)$` line of
the LAST text block of the user content. A `Script` maps (section, path, voter, body,
attempt) to a `Reply`; the attempt counts calls per (section, voter) pair from 1.

Every batched request goes through the same script when the batch is created (its
attempt counts like a direct call); a fault reply becomes an `errored` result (a status
keeps its error type, drop/malformed become api_error) and `slow` delays are not applied.

Usage simulates the prompt cache, breakpoint by breakpoint as the real API does (see
`pytest_swarmgate.testing.usage`); tokens are characters / 4.

`answer_model` makes every reply name that model instead of the one requested (a gateway that
swaps models); `strict="reject"` answers 400 to a tool sent with `strict: true`, as an endpoint
that does not offer strict tool use does; `plain_text=True` answers every call in plain text
with no tool call (a server whose model cannot call tools).

The JSON script format (the CLI's `--script`) is documented in `pytest_swarmgate.testing.script`.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from .batches import Batch, Batches, requests_problem, result_line
from .checks import SAMPLING_MODES, STRICT_MODES, Sampling, Strict, request_problem, sampling_problem, strict_problem
from .httpd import Handler, Response, StubHTTPServer, error_payload, json_response
from .ratelimit import Limiter, RateLimit
from .replies import REVIEW_TOOL, CallContext, Rendered, Reply, new_id, reply_kind, route, tool_name
from .script import Script
from .usage import PromptCache, block_tokens, prompt_blocks, tokens

REDACTED = "<redacted>"
PLAIN_TEXT_ANSWER = "I think this change looks fine, but I cannot call tools."
DEFAULT_LOG_LIMIT = 10_000
_REDACTED_HEADERS = frozenset({"authorization", "x-api-key"})


# --------------------------------------------------------------------------- request log


@dataclass(frozen=True)
class LoggedRequest:
    """One request the stub received (a batch also logs one entry per batched request,
    with `custom_id` set). Secrets in `headers` are redacted."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    time: float
    status: int | None
    reply: str = ""
    section: str | None = None
    section_path: str | None = None
    voter: str | None = None
    attempt: int | None = None
    custom_id: str | None = None
    api_version: str | None = None
    temperature_received: bool = False
    temperature: Any = None
    tool: str | None = None  # the tool the call forced: a voter's submit_verdict, the aggregator's submit_review

    @property
    def is_call(self) -> bool:
        """True for a voter's message call the script answered (directly or inside a batch)."""
        return self.attempt is not None and self.tool != REVIEW_TOOL

    @property
    def is_synthesis(self) -> bool:
        """True for an aggregator's call the script answered."""
        return self.attempt is not None and self.tool == REVIEW_TOOL


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class _Request:
    """An authenticated request as its route handler sees it."""

    body: Any  # the JSON object of a POST, None otherwise
    api_version: str | None
    match: re.Match[str]


_Routed = tuple[Response, dict[str, Any]]  # the response and what the request log adds for it

# Every endpoint: the first route whose method and whole path match answers the request.
# Routes an endpoint may leave out (`StubServer(routes=...)`): a gateway often serves messages only.
OPTIONAL_ROUTES = ("model", "models", "count_tokens")

_ROUTES: tuple[tuple[str, re.Pattern[str], Callable[[StubServer, _Request], _Routed]], ...] = (
    ("GET", re.compile(r"/v1/models/([^/]+)"), lambda stub, req: (stub._model(req.match[1]), {})),
    ("GET", re.compile(r"/v1/models"), lambda stub, req: (stub._list_models(), {})),
    ("POST", re.compile(r"/v1/messages/count_tokens"), lambda stub, req: (stub._count_tokens(req.body), {})),
    ("POST", re.compile(r"/v1/messages"), lambda stub, req: stub._messages(req.body, req.api_version)),
    (
        "POST",
        re.compile(r"/v1/messages/batches"),
        lambda stub, req: (stub._create_batch(req.body, req.api_version), {}),
    ),
    ("GET", re.compile(r"/v1/messages/batches"), lambda stub, req: (stub._list_batches(), {})),
    (
        "GET",
        re.compile(r"/v1/messages/batches/([A-Za-z0-9_-]+)"),
        lambda stub, req: (stub._retrieve_batch(req.match[1]), {}),
    ),
    (
        "GET",
        re.compile(r"/v1/messages/batches/([A-Za-z0-9_-]+)/results"),
        lambda stub, req: (stub._batch_results(req.match[1]), {}),
    ),
)


# --------------------------------------------------------------------------- the server


class StubServer:
    """An Anthropic-compatible server on 127.0.0.1 in a daemon thread; a context manager.

    `url` is "http://127.0.0.1:PORT"; `requests` is a snapshot of the request log.
    `sampling`: "accept" takes temperature/top_p/top_k under any API version, "reject"
    answers 400 to them, "legacy" accepts them only under an anthropic-version older than
    CURRENT_API_VERSION. `require_key`: answer 401 unless that key comes as a Bearer token
    or x-api-key. `script` may be replaced at any time.
    """

    def __init__(
        self,
        script: Script | None = None,
        *,
        port: int = 0,
        latency: float = 0.0,
        sampling: Sampling = "accept",
        require_key: str | None = None,
        batch_polls_before_done: int = 1,
        answer_model: str | None = None,
        strict: Strict = "accept",
        plain_text: bool = False,
        models: Sequence[str] | None = None,
        revoke_key_after: int | None = None,
        rate_limit: RateLimit | None = None,
        log_limit: int = DEFAULT_LOG_LIMIT,
        routes: Sequence[str] = OPTIONAL_ROUTES,
    ) -> None:
        if sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLING_MODES)}, not {sampling!r}")
        self.script = script if script is not None else Script()
        self.port = port
        self.latency = latency
        self.sampling: Sampling = sampling
        self.require_key = require_key
        self.batch_polls_before_done = batch_polls_before_done
        if strict not in STRICT_MODES:
            raise ValueError(f"strict must be one of {', '.join(STRICT_MODES)}, not {strict!r}")
        self.answer_model = answer_model
        self.strict: Strict = strict
        self.plain_text = plain_text
        self._lock = threading.Lock()
        self.models = frozenset(models) if models is not None else None
        unknown = set(routes) - set(OPTIONAL_ROUTES)
        if unknown:
            raise ValueError(f"routes must be among {', '.join(OPTIONAL_ROUTES)}, not {', '.join(sorted(unknown))}")
        self.routes = frozenset(routes)
        self.revoke_key_after = revoke_key_after
        self.rate_limit = rate_limit
        self._limiter = Limiter(rate_limit) if rate_limit is not None else None
        self._message_calls = 0
        # Bounded: a long load test must not grow the stub without limit.
        self._log: deque[LoggedRequest] = deque(maxlen=log_limit)
        self._attempts: dict[tuple[str | None, str | None], int] = {}
        self._prompt_cache = PromptCache()
        self._batches = Batches()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: StubHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle

    def start(self) -> StubServer:
        if self._httpd is not None:
            raise RuntimeError("StubServer is already running")
        self._stopping.clear()
        self._httpd = StubHTTPServer(("127.0.0.1", self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"swarmgate-stub:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping replies and close every open connection."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by the client: nothing to do
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("StubServer is not running: call start() or use it as a context manager")
        return f"http://127.0.0.1:{self.port}"

    # ---- the request log

    @property
    def requests(self) -> list[LoggedRequest]:
        """A snapshot of every request so far, oldest first."""
        with self._lock:
            return list(self._log)

    def calls(self, section: str | None = None, voter: str | None = None) -> list[LoggedRequest]:
        """Message calls the script answered, optionally for one section id and/or voter id."""
        return [
            r
            for r in self.requests
            if r.is_call and (section is None or r.section == section) and (voter is None or r.voter == voter)
        ]

    def syntheses(self, section: str | None = None) -> list[LoggedRequest]:
        """The aggregator's calls the script answered, optionally for one section id."""
        return [r for r in self.requests if r.is_synthesis and (section is None or r.section == section)]

    def clear_log(self) -> None:
        """Forget the request log and the attempt counters (the prompt cache is kept)."""
        with self._lock:
            self._log.clear()
            self._attempts.clear()

    def _record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._log.append(entry)

    def _track(self, conn: socket.socket, *, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # ---- HTTP entry point

    def _serve(self, handler: Handler, method: str) -> None:
        received = time.time()
        headers = {k.lower(): v for k, v in handler.headers.items()}
        raw = handler.read_body(headers)
        path = urlsplit(handler.path).path.rstrip("/") or "/"
        body: Any = None
        entry: dict[str, Any] = {}
        if raw is None:
            response = self._error(400, "invalid_request_error", "invalid Content-Length header")
        else:
            # Work first, then wait out the rest of the latency: latency is receipt to reply,
            # as with a real API, and replies are not all computed in one burst at the end.
            started = time.monotonic()
            body, response, entry = self._dispatch(method, path, headers, raw)
            self._stopping.wait(max(0.0, started + self.latency - time.monotonic()))
        if response.delay > 0:
            self._stopping.wait(response.delay)
        if self._stopping.is_set():
            response = Response(0, drop=True)
        redacted = {k: (REDACTED if k in _REDACTED_HEADERS else v) for k, v in headers.items()}
        self._record(
            LoggedRequest(method, path, redacted, body, received, None if response.drop else response.status, **entry)
        )
        handler.answer(response)

    def _error(self, status: int, error_type: str, message: str, retry_after: float | None = None) -> Response:
        request_id = new_id("req")
        headers = {"request-id": request_id}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        return json_response(status, error_payload(error_type, message, request_id), **headers)

    def _dispatch(
        self, method: str, path: str, headers: Mapping[str, str], raw: bytes
    ) -> tuple[Any, Response, dict[str, Any]]:
        """Authenticate, parse and route one request: (parsed body, response, log extras)."""
        body: Any = None
        if method == "POST":
            try:
                body = json.loads(raw) if raw else None
            except (UnicodeDecodeError, json.JSONDecodeError):
                return (
                    raw.decode("utf-8", "replace"),
                    self._error(400, "invalid_request_error", "request body is not valid JSON"),
                    {},
                )
        if not self._authorized(headers) or self._revoked(method, path):
            return body, self._error(401, "authentication_error", "invalid x-api-key"), {}
        if method == "POST" and not isinstance(body, dict):
            return body, self._error(400, "invalid_request_error", "request body must be a JSON object"), {}
        for route_method, pattern, handle in _ROUTES:
            if route_method == method and (match := pattern.fullmatch(path)):
                response, extras = handle(self, _Request(body, headers.get("anthropic-version"), match))
                return body, response, extras
        return body, self._error(404, "not_found_error", f"{method} {path}: not found"), {}

    def _revoked(self, method: str, path: str) -> bool:
        """After `revoke_key_after` message calls the key is rejected (a key revoked mid-run)."""
        if self.revoke_key_after is None or not (method == "POST" and path == "/v1/messages"):
            return False
        with self._lock:
            self._message_calls += 1
            return self._message_calls > self.revoke_key_after

    @staticmethod
    def _not_served() -> Response:
        """A route this endpoint lacks: a plain-text 404 that names no model, as llama.cpp's server sends."""
        return Response(404, b"File Not Found", content_type="text/plain")

    def _list_models(self) -> Response:
        if "models" not in self.routes:
            return self._not_served()
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2026-01-01T00:00:00Z"}
            for m in sorted(self.models or ())
        ]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        page = {"data": data, "has_more": False, "first_id": first, "last_id": last}
        return json_response(200, page, **{"request-id": new_id("req")})

    def _count_tokens(self, body: Mapping[str, Any]) -> Response:
        if "count_tokens" not in self.routes:
            return self._not_served()
        if self.models is not None and body.get("model") not in self.models:
            return self._error(404, "not_found_error", f"model: {body.get('model')}")
        count = sum(block_tokens(b) for b in prompt_blocks(body))
        return json_response(200, {"input_tokens": count}, **{"request-id": new_id("req")})

    def _model(self, model: str) -> Response:
        if "model" not in self.routes:
            return self._not_served()
        if self.models is not None and model not in self.models:
            return self._error(404, "not_found_error", f"model: {model}")
        info = {"type": "model", "id": model, "display_name": model, "created_at": "2026-01-01T00:00:00Z"}
        return json_response(200, info, **{"request-id": new_id("req")})

    def _rate_limited(self, body: Mapping[str, Any]) -> tuple[Response | None, dict[str, str]]:
        """(None, rate-limit headers) when the request is admitted, else (a 429, headers)."""
        if self._limiter is None:
            return None, {}
        tokens = sum(block_tokens(b) for b in prompt_blocks(body))
        with self._lock:
            wait, headers = self._limiter.admit(tokens)
        if wait <= 0:
            return None, headers
        # Honest: the seconds until the bucket holds this request, rounded up to the millisecond.
        response = self._error(429, "rate_limit_error", "stub: rate limit exceeded", math.ceil(wait * 1000) / 1000)
        response.headers.update(headers)
        return response, headers

    def _authorized(self, headers: Mapping[str, str]) -> bool:
        if self.require_key is None:
            return True
        bearer = headers.get("authorization", "")
        token = bearer[7:].strip() if bearer[:7].lower() == "bearer " else None
        return self.require_key in (token, headers.get("x-api-key"))

    # ---- messages

    def _messages(self, body: Mapping[str, Any], api_version: str | None) -> _Routed:
        """One message call: the model must exist and the rate limit admit it before the script answers."""
        if self.models is not None and body.get("model") not in self.models:
            return self._error(404, "not_found_error", f"model: {body.get('model')}"), {}
        limited, limit_headers = self._rate_limited(body)
        if limited is not None:
            return limited, {"reply": "rate_limited"}
        outcome = self._call(body, api_version)
        if outcome.message is not None:
            response = json_response(200, outcome.message, **{"request-id": new_id("req")})
        elif outcome.rendered.kind == "drop":
            response = Response(0, drop=True)
        elif outcome.rendered.kind == "raw":
            response = Response(200, outcome.rendered.raw, headers={"request-id": new_id("req")})
        else:
            r = outcome.rendered
            response = self._error(r.status, r.error_type, r.error_message, r.retry_after)
        response.delay = outcome.rendered.delay
        response.headers.update(limit_headers)
        return response, outcome.entry

    def _call(self, body: Mapping[str, Any], api_version: str | None, custom_id: str | None = None) -> _CallOutcome:
        """Validate one message request, ask the script, and render its reply."""
        routing = route(body)
        entry: dict[str, Any] = {
            "section": routing.section,
            "section_path": routing.path,
            "voter": routing.voter,
            "custom_id": custom_id,
            "api_version": api_version,
            "temperature_received": "temperature" in body,
            "temperature": body.get("temperature"),
            "tool": tool_name(body),
        }
        problem = (
            request_problem(body)
            or sampling_problem(body, api_version, self.sampling)
            or strict_problem(body, self.strict)
        )
        if problem:
            entry["reply"] = "rejected"
            return _CallOutcome(
                Rendered("error", status=400, error_type="invalid_request_error", error_message=problem), None, entry
            )
        with self._lock:
            key = (routing.section, routing.voter)
            attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
        ctx = CallContext(
            section=routing.section,
            path=routing.path,
            voter=routing.voter,
            body=body,
            attempt=attempt,
            model=str(body.get("model", "")),
            text=routing.text,
            tool_name=tool_name(body),
            api_version=api_version,
            custom_id=custom_id,
        )
        reply = Reply.text(PLAIN_TEXT_ANSWER) if self.plain_text else self.script.reply_for(ctx)
        rendered = reply.render(ctx)
        entry.update(attempt=attempt, reply=reply_kind(reply, ctx))
        message = self._message_json(body, rendered) if rendered.kind == "message" else None
        if message is not None and body.get("max_tokens") == 0:
            # max_tokens 0 only populates the prompt cache: no content, nothing generated.
            message.update(content=[], stop_reason="max_tokens")
            message["usage"]["output_tokens"] = 0
            entry["reply"] = "prewarm"
        return _CallOutcome(rendered, message, entry)

    def _message_json(self, body: Mapping[str, Any], rendered: Rendered) -> dict[str, Any]:
        content = [dict(block) for block in rendered.content]
        usage = self._prompt_cache.usage(body, self.latency)
        usage["output_tokens"] = (
            rendered.output_tokens if rendered.output_tokens is not None else max(1, tokens(len(json.dumps(content))))
        )
        message: dict[str, Any] = {
            "id": new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": self.answer_model or body.get("model", ""),
            "content": content,
            "stop_reason": rendered.stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        if rendered.stop_details is not None:
            message["stop_details"] = dict(rendered.stop_details)
        return message

    # ---- batches

    def _create_batch(self, body: Mapping[str, Any], api_version: str | None) -> Response:
        problem = requests_problem(body.get("requests"))
        if problem:
            return self._error(400, "invalid_request_error", problem)
        lines = [self._batch_line(r["custom_id"], r["params"], api_version) for r in body["requests"]]
        batch = Batch(new_id("msgbatch"), datetime.now(timezone.utc), lines)
        self._batches.add(batch)
        return json_response(200, self._batch_json(batch))

    def _batch_line(self, custom_id: str, params: Mapping[str, Any], api_version: str | None) -> dict[str, Any]:
        """Run one batched request through the script; faults become `errored` results."""
        outcome = self._call(params, api_version, custom_id)
        status = 200 if outcome.message is not None else outcome.rendered.status
        self._record(
            LoggedRequest("POST", "/v1/messages/batches", {}, dict(params), time.time(), status, **outcome.entry)
        )
        return result_line(custom_id, outcome.rendered, outcome.message)

    def _batch_json(self, batch: Batch) -> dict[str, Any]:
        return batch.json(f"{self.url}/v1/messages/batches/{batch.id}/results" if batch.ended_at else None)

    def _retrieve_batch(self, batch_id: str) -> Response:
        batch = self._batches.poll(batch_id, self.batch_polls_before_done)
        if batch is None:
            return self._error(404, "not_found_error", f"message batch {batch_id} not found")
        return json_response(200, self._batch_json(batch))

    def _list_batches(self) -> Response:
        data = [self._batch_json(b) for b in self._batches.newest_first()]
        return json_response(
            200,
            {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            },
        )

    def _batch_results(self, batch_id: str) -> Response:
        batch = self._batches.get(batch_id)
        if batch is None:
            return self._error(404, "not_found_error", f"message batch {batch_id} not found")
        if batch.ended_at is None:
            return self._error(400, "invalid_request_error", f"message batch {batch_id} is still in_progress")
        return Response(200, batch.results(), content_type="application/x-jsonl", headers={"request-id": new_id("req")})


@dataclass(frozen=True)
class _CallOutcome:
    rendered: Rendered
    message: dict[str, Any] | None
    entry: dict[str, Any]
