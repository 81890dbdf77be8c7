"""The pure parts of operating under faults: the pacer, fault classes, the ceiling's hint, progress."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from datetime import datetime, timezone
from typing import Any

import pytest

from pytest_swarmgate.core.control import CallProgress, RunControl
from pytest_swarmgate.core.diff import crowded_directories
from pytest_swarmgate.core.faults import DeadlineReached, RateLimited, RunFault, classify
from pytest_swarmgate.core.model import Section, Vote, Voter
from pytest_swarmgate.core.pacing import Pacer
from pytest_swarmgate.core.voters import error_vote
from pytest_swarmgate.output.progress import Progress, describe_calls
from pytest_swarmgate.testing import RateLimit, StubServer


class Clock:
    """A fake monotonic clock, wall clock and sleep: sleeping moves time, nothing waits."""

    def __init__(self) -> None:
        self.now = 100.0
        self.wall_now = 1_800_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        self.wall_now += seconds

    def pacer(self) -> Pacer:
        return Pacer(clock=self, wall=self.wall, sleep=self.sleep)

    def reset_in(self, seconds: float) -> str:
        return datetime.fromtimestamp(self.wall_now + seconds, timezone.utc).isoformat().replace("+00:00", "Z")


def limit_headers(clock: Clock, limit: int, remaining: int, reset_s: float, stem: str = "requests") -> dict[str, str]:
    return {
        f"anthropic-ratelimit-{stem}-limit": str(limit),
        f"anthropic-ratelimit-{stem}-remaining": str(remaining),
        f"anthropic-ratelimit-{stem}-reset": clock.reset_in(reset_s),
    }


def test_an_unlimited_endpoint_is_not_slowed() -> None:
    clock = Clock()
    pacer = clock.pacer()
    for _ in range(50):
        asyncio.run(pacer.acquire())
    assert clock.slept == []


def test_a_429_pauses_every_call_for_its_retry_after() -> None:
    clock = Clock()
    pacer = clock.pacer()
    pacer.limited(2.0)
    assert pacer.is_waiting
    asyncio.run(pacer.acquire())
    asyncio.run(pacer.acquire())
    assert sum(clock.slept) == pytest.approx(2.0)  # the second call does not wait again
    assert not pacer.is_waiting


def test_without_retry_after_the_pause_doubles_and_a_success_resets_it() -> None:
    pacer = Clock().pacer()
    assert [pacer.limited(None) for _ in range(3)] == [0.5, 1.0, 2.0]
    pacer.succeeded()
    assert pacer.limited(None) == 0.5


def test_headers_pace_calls_at_the_bucket_refill_rate() -> None:
    clock = Clock()
    pacer = clock.pacer()
    # 20 requests, empty, full again in 1 s: 20 per second.
    pacer.observe(limit_headers(clock, 20, 0, 1.0))
    start = clock.now
    for _ in range(10):
        asyncio.run(pacer.acquire())
    assert clock.now - start == pytest.approx(10 / 20)


def test_a_full_bucket_lets_a_burst_go_then_speeds_back_up_after_refilling() -> None:
    clock = Clock()
    pacer = clock.pacer()
    pacer.observe(limit_headers(clock, 20, 15, 0.25))
    for _ in range(15):
        asyncio.run(pacer.acquire())
    assert clock.slept == []
    asyncio.run(pacer.acquire())
    assert sum(clock.slept) == pytest.approx(1 / 20)
    clock.now += 10  # idle: the bucket refills
    clock.slept.clear()
    for _ in range(19):
        asyncio.run(pacer.acquire())
    assert clock.slept == []


def test_other_clients_spending_from_the_same_limit_slow_this_run() -> None:
    clock = Clock()
    pacer = clock.pacer()
    pacer.observe(limit_headers(clock, 20, 20, 0.0))
    pacer.observe(limit_headers(clock, 20, 0, 1.0))  # another CI job took them all
    asyncio.run(pacer.acquire())
    assert sum(clock.slept) == pytest.approx(1 / 20)


def test_the_token_bucket_uses_the_tokens_a_call_spends() -> None:
    clock = Clock()
    pacer = clock.pacer()
    pacer.spent(1000)
    # 10,000 input tokens per second, empty.
    pacer.observe(limit_headers(clock, 10_000, 0, 1.0, stem="input-tokens"))
    asyncio.run(pacer.acquire())
    assert sum(clock.slept) == pytest.approx(0.1)


def test_a_wait_past_the_deadline_raises_without_waiting() -> None:
    clock = Clock()
    pacer = clock.pacer()
    pacer.limited(30.0)
    with pytest.raises(DeadlineReached):
        asyncio.run(pacer.acquire(deadline=clock.now + 5))
    assert clock.slept == []


class FakeStatusError(Exception):
    def __init__(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code = status
        self.body = {"type": "error", "error": {"type": error_type, "message": message}}
        self.response = type("Response", (), {"headers": headers or {}})()


@pytest.mark.parametrize(
    "status, error_type, message, kind",
    [
        (401, "authentication_error", "invalid x-api-key", RunFault),
        (403, "permission_error", "not allowed", RunFault),
        (404, "not_found_error", "model: claude-nonesuch", RunFault),
        (400, "invalid_request_error", "Your credit balance is too low", RunFault),
        (400, "invalid_request_error", "tools.0: unknown field", RunFault),
        (400, "invalid_request_error", "temperature: not supported", None),
        (400, "invalid_request_error", "prompt is too long: 300000 tokens", None),
        (429, "rate_limit_error", "slow down", RateLimited),
        (529, "overloaded_error", "busy", RateLimited),
        (500, "api_error", "boom", None),
    ],
)
def test_classify_tells_run_wide_faults_from_per_call_ones(status, error_type, message, kind) -> None:
    fault = classify(FakeStatusError(status, error_type, message, {"retry-after": "3"}), f"HTTP {status}")
    assert (type(fault) if fault is not None else None) is kind
    if isinstance(fault, RateLimited):
        assert fault.retry_after == 3.0
    if fault is not None:
        assert str(fault) == f"HTTP {status}"


def test_the_control_stops_once_and_sends_nothing_after_a_run_wide_fault() -> None:
    section, voters = Section("a.py", "a.py", None, "modified", "text"), [Voter(f"v{i}", "m") for i in range(4)]
    sent: list[str] = []

    async def main() -> list[Vote]:
        control = RunControl(total=4)

        def send(voter: Voter) -> Any:
            async def call() -> Vote:
                sent.append(voter.id)
                raise RunFault(f"HTTP 401 from {voter.id}")

            return call

        votes = [await control.call(send(v), section, v, error_vote) for v in voters]
        stopped = control.result()
        assert stopped is not None and stopped.line() == "review stopped: HTTP 401 from v0 (1 of 4 calls sent)"
        return votes

    votes = asyncio.run(main())
    assert sent == ["v0"]
    assert [v.error for v in votes] == ["HTTP 401 from v0"] + ["not sent: the review stopped"] * 3


def test_crowded_directories_name_the_vendored_tree_not_the_project() -> None:
    paths = (
        [f"mypy/typeshed/stdlib/m{i}.pyi" for i in range(380)]
        + [f"mypy/typeshed/stubs/s{i}.pyi" for i in range(23)]
        + [f"mypy/m{i}.py" for i in range(100)]
        + [f"test-data/t{i}.test" for i in range(300)]
        + ["README.md"]
    )
    assert crowded_directories(paths) == [("mypy/typeshed/", 403), ("test-data/", 300)]
    assert crowded_directories(["a.py", "b/c.py"]) == []


class Reporter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write_line(self, line: str) -> None:
        self.lines.append(line)


def test_progress_says_calls_rate_time_left_and_when_it_waits_on_the_rate_limit() -> None:
    now = [0.0]
    reporter = Reporter()
    progress = Progress(reporter, total=3, clock=lambda: now[0])
    progress.calls(CallProgress(done=10, total=100, elapsed_s=5.0, waiting=False, rate_limited=0))
    assert reporter.lines == []  # not quiet for long enough yet
    now[0] = 11.0
    progress.calls(CallProgress(done=20, total=100, elapsed_s=10.0, waiting=False, rate_limited=0))
    assert reporter.lines == ["swarmgate: calls 20/100, 2.0/s, about 40 s left"]
    now[0] = 17.0
    progress.calls(CallProgress(done=21, total=100, elapsed_s=14.0, waiting=True, rate_limited=3))
    assert reporter.lines[-1] == (
        "swarmgate: waiting on the rate limit (3 rate-limited answers so far) - calls 21/100, 1.5/s, about 53 s left"
    )
    assert describe_calls(CallProgress(100, 100, 20.0, False, 0)) == "calls 100/100, 5.0/s"


def test_a_ci_log_gets_a_calls_line_at_most_every_few_seconds_and_a_tenth_of_the_calls() -> None:
    now = [0.0]
    reporter = Reporter()
    progress = Progress(reporter, total=50, clock=lambda: now[0])
    now[0] = 6.0
    progress.calls(CallProgress(done=5, total=100, elapsed_s=6.0, waiting=False, rate_limited=0))
    assert reporter.lines == []  # a few seconds on, but not a tenth of the calls
    progress.calls(CallProgress(done=10, total=100, elapsed_s=6.0, waiting=False, rate_limited=0))
    assert len(reporter.lines) == 1
    now[0] = 8.0
    progress.calls(CallProgress(done=40, total=100, elapsed_s=8.0, waiting=False, rate_limited=0))
    assert len(reporter.lines) == 1  # a tenth more, but only 2 s later
    now[0] = 37.0
    progress.calls(CallProgress(done=41, total=100, elapsed_s=37.0, waiting=False, rate_limited=0))
    assert reporter.lines[-1] == "swarmgate: calls 41/100, 1.1/s, about 53 s left"  # after a long silence


class Terminal(Reporter):
    """pytest's terminal reporter on a TTY: `rewrite` redraws the current line in place."""

    isatty = True

    def __init__(self) -> None:
        super().__init__()
        self.current = ""

    def rewrite(self, line: str, erase: bool = False) -> None:
        self.current = line

    def write(self, text: str) -> None:
        if text == "\n":
            self.lines.append(self.current)
        self.current = ""


def test_on_a_terminal_the_status_updates_in_place_and_only_what_is_not_safe_stays() -> None:
    from test_reports import judged, vote

    terminal = Terminal()
    progress = Progress(terminal, total=3)
    progress.calls(CallProgress(done=4, total=15, elapsed_s=1.0, waiting=False, rate_limited=0))
    assert terminal.current.startswith("swarmgate: [0/3] sections - calls 4/15") and terminal.lines == []
    progress.section(judged("a.py", *(vote("a.py", f"v{i}", "SAFE") for i in range(1, 6))))
    assert terminal.current.startswith("swarmgate: [1/3] sections - calls 4/15")
    progress.section(judged("b.py", *(vote("b.py", f"v{i}", "UNSAFE") for i in range(1, 6))))
    assert terminal.lines == ["swarmgate: [2/3] b.py: UNSAFE 5/5 (K=4) - calls 4/15, 4.0/s, about 3 s left"]
    progress.section(judged("c.py", *(vote("c.py", f"v{i}", "SAFE") for i in range(1, 6))))
    progress.stop()
    assert terminal.current == "" and len(terminal.lines) == 1  # the report follows on a clean line


# --- the stub --------------------------------------------------------------------------


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
    request = urllib.request.Request(
        url + "/v1/messages", json.dumps(body).encode(), {"content-type": "application/json", "x-api-key": "k"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


MESSAGE = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "section: a.py\nvoter: v1"}]}


def test_the_stub_rate_limit_answers_429_with_an_honest_retry_after_and_headers() -> None:
    with StubServer(rate_limit=RateLimit(requests_per_s=2)) as stub:
        answers = [post(stub.url, MESSAGE) for _ in range(3)]
    statuses = [status for status, _, _ in answers]
    assert statuses == [200, 200, 429]
    _, headers, body = answers[2]
    assert body["error"]["type"] == "rate_limit_error"
    assert 0 < float(headers["retry-after"]) <= 0.5  # half a second refills one request at 2/s
    assert headers["anthropic-ratelimit-requests-limit"] == "2"
    assert answers[0][1]["anthropic-ratelimit-requests-remaining"] == "1"
    assert [r.reply for r in stub.requests][-1] == "rate_limited"


def test_the_stub_knows_its_models_and_can_revoke_the_key() -> None:
    with StubServer(models=["m"], revoke_key_after=2) as stub:  # the 404 counts as a call
        assert post(stub.url, {**MESSAGE, "model": "other"})[0] == 404
        assert post(stub.url, MESSAGE)[0] == 200
        status, _, body = post(stub.url, MESSAGE)
        with urllib.request.urlopen(stub.url + "/v1/models/m", timeout=5) as response:
            assert json.loads(response.read())["id"] == "m"
    assert (status, body["error"]["type"]) == (401, "authentication_error")


def test_the_stub_request_log_is_bounded() -> None:
    with StubServer(log_limit=3) as stub:
        for _ in range(5):
            post(stub.url, MESSAGE)
        assert len(stub.requests) == 3
        assert [r.attempt for r in stub.calls()] == [3, 4, 5]  # the newest are kept


def test_a_refused_connection_is_run_wide_and_a_dropped_one_is_not() -> None:
    """Raised by the real SDK: a refused connection means no call will reach the endpoint."""
    import anthropic

    from pytest_swarmgate.testing import Reply, Script

    def raised(base_url: str) -> anthropic.APIConnectionError:
        client = anthropic.Anthropic(base_url=base_url, api_key="stub-not-a-secret", max_retries=0)
        with pytest.raises(anthropic.APIConnectionError) as info:
            client.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}])
        return info.value

    with StubServer(Script(default=Reply.drop())) as server:
        dropped = raised(server.url)
        port = server.port
    refused = raised(f"http://127.0.0.1:{port}")  # the stub has stopped: nothing listens there
    assert classify(dropped, "connection error: dropped") is None
    fault = classify(refused, "connection error: refused")
    assert isinstance(fault, RunFault) and str(fault) == "connection error: refused"
