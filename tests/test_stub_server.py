"""The stub Anthropic server, driven by the real `anthropic` SDK over real HTTP on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import anthropic
import pytest
from conftest import StubProcess

from pytest_swarmgate.testing import (
    CURRENT_API_VERSION,
    CallContext,
    Reply,
    Script,
    ScriptError,
    StubServer,
    first_added_line,
)

SYSTEM_POLICY = "You review diffs for security problems. " * 40
SECTION_TEXT = """\
section: {section}
path: {path}
--- a/{path}
+++ b/{path}
@@ -10,3 +10,4 @@ def handler(request):
     user = request.args["user"]
-    rows = db.query("SELECT * FROM t WHERE u = ?", user)
+    rows = db.query(f"SELECT * FROM t WHERE u = '{{user}}'")
     return rows
"""


def params(section: str = "app/db.py", voter: str = "v1", path: str | None = None, **extra: Any) -> dict[str, Any]:
    """Message params shaped like our voters' calls."""
    return {
        "model": "claude-stub-1",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": SYSTEM_POLICY, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": SECTION_TEXT.format(section=section, path=path or section)},
                    {"type": "text", "text": f"voter: {voter}\nlens: security"},
                ],
            }
        ],
        "tools": [{"name": "submit_verdict", "description": "Submit", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "submit_verdict"},
        **extra,
    }


def client(stub: StubServer, **kwargs: Any) -> anthropic.Anthropic:
    kwargs.setdefault("max_retries", 0)
    kwargs.setdefault("api_key", "k")
    return anthropic.Anthropic(base_url=stub.url, **kwargs)


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


def test_good_verdict_parses_into_a_tool_use_message(stub: StubServer) -> None:
    message = client(stub).messages.create(**params(), output_config={"effort": "low"})
    assert isinstance(message, anthropic.types.Message)
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use" and block.name == "submit_verdict"
    assert block.input["verdict"] == "SAFE" and block.input["findings"] == []
    (logged,) = stub.requests
    assert (logged.path, logged.status, logged.section, logged.voter, logged.attempt) == (
        "/v1/messages",
        200,
        "app/db.py",
        "v1",
        1,
    )
    assert logged.headers["anthropic-version"] == CURRENT_API_VERSION
    assert logged.body["output_config"] == {"effort": "low"}
    assert not logged.temperature_received


def test_rules_route_by_section_path_and_voter(stub: StubServer) -> None:
    stub.script = (
        Script()
        .on("app/*.py", voter="v2", reply=Reply.verdict("UNSAFE"))
        .on("lib/*", reply=Reply.text("no tool call"))
        .on_call(lambda ctx: Reply.verdict("UNSAFE", confidence=0.55) if ctx.voter == "v9" else None)
    )
    c = client(stub)

    def verdict(section: str, voter: str, path: str | None = None) -> dict[str, Any]:
        message = c.messages.create(**params(section, voter, path))
        return message.content[0].input if message.content[0].type == "tool_use" else {"text": message.content[0].text}

    assert verdict("app/db.py", "v1")["verdict"] == "SAFE"
    unsafe = verdict("app/db.py", "v2")
    assert unsafe["verdict"] == "UNSAFE"
    (finding,) = unsafe["findings"]
    assert finding["path"] == "app/db.py" and finding["line"] == 11 and finding["category"].startswith("CWE-")
    assert verdict("big.py#2", "v2", path="app/big.py")["verdict"] == "UNSAFE"  # the glob also matches the path
    assert verdict("lib/x.c", "v2") == {"text": "no tool call"}
    assert verdict("other.py", "v9")["confidence"] == 0.55
    assert [r.voter for r in stub.calls(section="app/db.py")] == ["v1", "v2"]


def test_first_added_line_follows_the_hunk() -> None:
    assert first_added_line(SECTION_TEXT.format(section="a", path="a")) == 11
    assert first_added_line("no hunk here") == 1


@pytest.mark.parametrize(
    ("sampling", "version", "accepted"),
    [
        ("accept", None, True),
        ("reject", "2023-06-01", False),
        ("legacy", None, False),
        ("legacy", "2023-06-01", True),
    ],
)
def test_sampling_modes(sampling: str, version: str | None, accepted: bool) -> None:
    headers = {"anthropic-version": version} if version else None
    with StubServer(sampling=sampling) as server:  # type: ignore[arg-type]

        def create() -> anthropic.types.Message:
            message: anthropic.types.Message = client(server).messages.create(
                **params(), extra_body={"temperature": 0.5}, extra_headers=headers
            )
            return message

        if accepted:
            assert create().content[0].type == "tool_use"
        else:
            with pytest.raises(anthropic.BadRequestError) as info:
                create()
            assert "temperature: sampling parameters are not supported" in str(info.value)
            assert cast(Any, info.value.body)["error"]["type"] == "invalid_request_error"
        (logged,) = server.requests
    assert logged.temperature_received and logged.temperature == 0.5
    assert logged.api_version == (version or CURRENT_API_VERSION)


def test_out_of_range_temperature_is_rejected_even_when_accepted(stub: StubServer) -> None:
    with pytest.raises(anthropic.BadRequestError, match="between 0 and 1"):
        client(stub).messages.create(**params(), extra_body={"temperature": 1.2})


def test_429_with_retry_after_then_success_under_sdk_retries(stub: StubServer) -> None:
    stub.script = Script(Reply.sequence(Reply.status(429, retry_after=0.05), Reply.verdict("UNSAFE")))
    message = client(stub, max_retries=2).messages.create(**params())
    assert message.content[0].input["verdict"] == "UNSAFE"
    calls = stub.calls()
    assert [(r.attempt, r.status) for r in calls] == [(1, 429), (2, 200)]
    assert calls[1].headers["x-stainless-retry-count"] == "1"


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply.status(500), anthropic.InternalServerError),
        (Reply.status(529), anthropic.OverloadedError),
        (Reply.status(429, retry_after=30), anthropic.RateLimitError),
        (Reply.drop(), anthropic.APIConnectionError),
    ],
)
def test_faults_map_to_sdk_errors(stub: StubServer, reply: Reply, error: type[Exception]) -> None:
    stub.script = Script(reply)
    with pytest.raises(error) as info:
        client(stub).messages.create(**params())
    if isinstance(info.value, anthropic.APIStatusError):
        assert info.value.response.headers["request-id"].startswith("req_")
        assert cast(Any, info.value.body)["type"] == "error"


def test_slow_reply_times_out_the_client(stub: StubServer) -> None:
    stub.script = Script(Reply.slow(2.0))
    start = time.monotonic()
    # APITimeoutError normally; only its base class when a pytester in-process run has
    # re-imported httpcore2 (httpx2 caches its exception map from the first import).
    with pytest.raises(anthropic.APIConnectionError):
        client(stub, timeout=0.2).messages.create(**params())
    assert time.monotonic() - start < 1.5


def test_malformed_bodies_do_not_parse_into_a_message(stub: StubServer) -> None:
    stub.script = Script(Reply.malformed())
    with pytest.raises((anthropic.APIError, ValueError)):
        client(stub).messages.create(**params())
    stub.script = Script(Reply.malformed("not_message"))
    message = client(stub).messages.create(**params())
    assert getattr(message, "type", None) != "message"


def test_refusal_truncated_and_bad_tool_input(stub: StubServer) -> None:
    c = client(stub)
    stub.script = Script(Reply.refusal())
    refused = c.messages.create(**params())
    assert refused.stop_reason == "refusal" and refused.content[0].type == "text"
    stub.script = Script(Reply.truncated())
    cut = c.messages.create(**params())
    assert cut.stop_reason == "max_tokens" and cut.content[0].type == "tool_use"
    assert "findings" not in cut.content[0].input and cut.usage.output_tokens == 1024
    stub.script = Script(Reply.bad_tool_input({"verdict": "MAYBE"}))
    assert c.messages.create(**params()).content[0].input == {"verdict": "MAYBE"}


def test_prompt_cache_is_written_once_then_read(stub: StubServer) -> None:
    c = client(stub)
    first = c.messages.create(**params(voter="v1")).usage
    second = c.messages.create(**params(voter="v2")).usage
    assert first.cache_creation_input_tokens > 0 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    assert first.input_tokens > 0 and first.input_tokens < first.cache_creation_input_tokens


def test_calls_in_flight_together_all_write_the_prompt_cache() -> None:
    """As with the real API, an entry is readable only once the call that wrote it has answered."""
    with StubServer(latency=0.3) as server:
        with ThreadPoolExecutor(3) as pool:
            together = list(
                pool.map(lambda v: client(server).messages.create(**params(voter=v)).usage, ["v1", "v2", "v3"])
            )
        later = client(server).messages.create(**params(voter="v4")).usage
    assert all(u.cache_creation_input_tokens > 0 and u.cache_read_input_tokens == 0 for u in together)
    assert later.cache_read_input_tokens > 0 and later.cache_creation_input_tokens == 0


def test_batches_round_trip_through_the_sdk() -> None:
    script = Script().on("app/*", voter="v2", reply=Reply.verdict("UNSAFE")).on("flaky.py", reply=Reply.status(529))
    with StubServer(script) as server:
        batches = client(server).messages.batches
        requests = [
            {"custom_id": f"{section}|{voter}", "params": params(section, voter)}
            for section in ("app/db.py", "flaky.py")
            for voter in ("v1", "v2")
        ]
        created = batches.create(requests=cast(Any, requests))
        assert created.processing_status == "in_progress" and created.request_counts.processing == 4
        assert batches.retrieve(created.id).processing_status == "in_progress"
        ended = batches.retrieve(created.id)
        assert ended.processing_status == "ended" and ended.results_url
        assert (ended.request_counts.succeeded, ended.request_counts.errored) == (2, 2)
        results: dict[str, Any] = {r.custom_id: r.result for r in batches.results(created.id)}
        assert [b.id for b in batches.list()] == [created.id]
        assert len(server.calls()) == 4 and {r.custom_id for r in server.calls()} == set(results)
    assert results["app/db.py|v1"].type == "succeeded"
    assert results["app/db.py|v1"].message.content[0].input["verdict"] == "SAFE"
    assert results["app/db.py|v2"].message.content[0].input["verdict"] == "UNSAFE"
    assert results["flaky.py|v1"].type == "errored"
    assert results["flaky.py|v1"].error.error.type == "overloaded_error"


def test_require_key_answers_401_and_redacts_the_key() -> None:
    with StubServer(require_key="sk-secret-123") as server:
        with pytest.raises(anthropic.AuthenticationError):
            client(server, api_key="wrong").messages.create(**params())
        assert client(server, api_key="sk-secret-123").messages.create(**params()).content[0].type == "tool_use"
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("POST", "/v1/messages", json.dumps(params()), {"x-api-key": "sk-secret-123"})
        assert conn.getresponse().status == 200
        conn.close()
        log = server.requests
    assert [r.status for r in log] == [401, 200, 200]
    assert "sk-secret-123" not in repr(log)
    assert log[1].headers["authorization"] == "<redacted>" and log[2].headers["x-api-key"] == "<redacted>"


def test_unknown_path_and_non_json_body(stub: StubServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", stub.port, timeout=5)
    conn.request("GET", "/v1/nothing")
    missing = conn.getresponse()
    assert missing.status == 404 and json.loads(missing.read())["error"]["type"] == "not_found_error"
    conn.request("POST", "/v1/messages", b"not json", {"content-type": "application/json"})
    bad = conn.getresponse()
    assert bad.status == 400 and json.loads(bad.read())["error"]["type"] == "invalid_request_error"
    conn.close()


def test_concurrent_requests_sleep_in_parallel() -> None:
    with StubServer(latency=0.5) as server:
        c = client(server)
        start = time.monotonic()
        with ThreadPoolExecutor(100) as pool:
            messages = list(pool.map(lambda i: c.messages.create(**params(f"s{i}.py")), range(100)))
        elapsed = time.monotonic() - start
    assert all(m.content[0].type == "tool_use" for m in messages)
    # In series they would take 50 s; the bound leaves room for a loaded CI host.
    assert elapsed < 10.0, f"100 calls at 0.5 s latency took {elapsed:.2f} s"


def test_script_from_json() -> None:
    script = Script.from_json(
        {
            "default": "SAFE",
            "rules": [
                {"section": "app/*", "voter": "v2", "reply": "UNSAFE"},
                {"section": "db.py", "reply": {"status": 429, "retry_after": 1}},
                {"section": "slow.py", "reply": {"slow": 2.0}},
                {"section": "seq.py", "reply": {"sequence": ["drop", "SAFE"]}},
            ],
        }
    )

    def kind(section: str, voter: str = "v1", attempt: int = 1) -> str:
        ctx = CallContext(section, section, voter, {}, attempt)
        return script.reply_for(ctx).render(ctx).kind

    assert [kind("app/x.py", "v2"), kind("app/x.py"), kind("db.py"), kind("seq.py"), kind("seq.py", attempt=2)] == [
        "message",
        "message",
        "error",
        "drop",
        "message",
    ]
    ctx = CallContext("slow.py", "slow.py", "v1", {}, 1)
    assert script.reply_for(ctx).render(ctx).delay == 2.0
    bad: Any
    for bad in ({"rules": [{"reply": "MAYBE"}]}, {"rules": [{"section": "x"}]}, {"default": {"slow": "x"}}, []):
        with pytest.raises(ScriptError):
            Script.from_json(bad)


CLI = [sys.executable, "-m", "pytest_swarmgate.testing"]


def test_cli_serves_until_terminated(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"rules": [{"section": "app/*", "voter": "v3", "reply": "refusal"}]}))
    with StubProcess("--script", str(script), "--unsafe", "app/*.py") as stub:
        assert stub.line.startswith("stub Anthropic server on http://127.0.0.1:"), stub.line
        assert f"ANTHROPIC_BASE_URL={stub.url} ANTHROPIC_API_KEY=stub" in stub.line
        c = anthropic.Anthropic(base_url=stub.url, api_key="stub", max_retries=0)
        assert c.messages.create(**params("app/db.py", "v3")).content[0].input["verdict"] == "UNSAFE"
        assert c.messages.create(**params("app/README", "v3")).stop_reason == "refusal"
    assert stub.proc.returncode == 0, stub.stderr
    assert stub.stderr == ""


def test_cli_rejects_a_bad_script_with_exit_2(tmp_path: Path) -> None:
    script = tmp_path / "bad.json"
    script.write_text('{"rules": [{"section": "x", "reply": "MAYBE"}]}')
    done = subprocess.run(
        [*CLI, "--port", "0", "--script", str(script)], check=False, capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "rules[0].reply: unknown reply 'MAYBE'" in done.stderr


def test_stub_command_line_stops_cleanly_on_sigterm_the_instant_it_is_ready() -> None:
    # The ready line is a promise that SIGTERM stops the server cleanly; a handler installed
    # after the line left a window in which the default action killed the process instead.
    # Raw reads, so the signal goes out as soon as the line's bytes arrive.
    for _ in range(30):
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_swarmgate.testing", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None
        seen = b""
        while b"\n" not in seen:
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, proc.stderr.read() if proc.stderr else b""
            seen += chunk
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=5)
        assert seen.startswith(b"stub Anthropic server on "), seen
        assert proc.returncode == 0, stderr


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_the_env_file_says_what_the_help_says_and_goes_when_the_stub_stops(tmp_path: Path, stop: str) -> None:
    from pytest_swarmgate.testing.__main__ import ENV_FILE_KEY, env_exports

    helped = subprocess.run([*CLI, "--help"], check=True, capture_output=True, text=True).stdout
    assert env_exports("http://127.0.0.1:PORT") in " ".join(helped.split()), helped
    env_file = tmp_path / "stub.env"
    with StubProcess("--env-file", str(env_file)) as stub:
        assert env_file.read_text() == env_exports(stub.url) + "\n"
        assert f"ANTHROPIC_API_KEY={ENV_FILE_KEY}" in stub.line
        stub.proc.send_signal(getattr(signal, stop))
        assert stub.proc.wait(timeout=5) == 0
    assert os.listdir(tmp_path) == []


def test_a_stub_leaves_an_env_file_another_stub_wrote_since(tmp_path: Path) -> None:
    env_file = tmp_path / "stub.env"
    with StubProcess("--env-file", str(env_file)) as first, StubProcess("--env-file", str(env_file)) as second:
        assert second.url != first.url and second.url in env_file.read_text()
        first.proc.terminate()
        assert first.proc.wait(timeout=5) == 0
        assert second.url in env_file.read_text(), "the second stub's file is still in place"
    assert not env_file.exists()
