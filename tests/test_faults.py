"""Operating under real faults, end to end: the real SDK over HTTP to the stub.

A wrong key, an unknown model or a dead endpoint ends the session before the project's
tests are collected, in one line with exit code 75; a key revoked mid-run stops the calls
and reports once; a rate-limited endpoint is ridden out by the run's shared pacer.
"""

from __future__ import annotations

import json
import socket

import pytest
from conftest import API_KEY, CLEAN_DIFF, README_DIFF, validate_report, write_diff

from pytest_swarmgate.exitcodes import REVIEW_INCOMPLETE, REVIEW_MISCONFIGURED
from pytest_swarmgate.testing import RateLimit, Reply

# A conftest that records any collection, and a test module that cannot even be imported:
# a session that ends before collection touches neither.
COLLECTION_WITNESS = """
import pathlib

def pytest_collectstart(collector):
    pathlib.Path(__file__).with_name("collected.txt").write_text("collection started")
"""
UNIMPORTABLE = "raise RuntimeError('the project was collected')\n"


def many_files_diff(paths: list[str]) -> str:
    """One small modified Python file per path: one section each."""
    out = []
    for i, path in enumerate(paths):
        out.append(
            f"diff --git a/{path} b/{path}\nindex {i:07x}..{i + 1:07x} 100644\n--- a/{path}\n+++ b/{path}\n"
            f"@@ -1,2 +1,3 @@\n import os\n x = {i}\n+y = os.getcwd()\n"
        )
    return "".join(out)


def project(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(COLLECTION_WITNESS)
    pytester.makepyfile(test_project=UNIMPORTABLE)


def run_gate(pytester: pytest.Pytester, diff: str, *args: str) -> pytest.RunResult:
    path = write_diff(pytester.path, diff)
    return pytester.runpytest("--swarm-review", f"--swarm-diff={path}", "-p", "no:cacheprovider", *args)


def run_gate_subprocess(pytester: pytest.Pytester, diff: str, *args: str) -> pytest.RunResult:
    """In a fresh process: what it imports is its own."""
    path = write_diff(pytester.path, diff)
    return pytester.runpytest_subprocess("--swarm-review", f"--swarm-diff={path}", "-p", "no:cacheprovider", *args)


def assert_ended_before_collection(
    pytester: pytest.Pytester, result: pytest.RunResult, cause: str, code: int = REVIEW_MISCONFIGURED
) -> str:
    """Exit 78 (or `code`), one line that names the cause, nothing collected; returns that line."""
    assert result.ret == code, result.stdout.str() + result.stderr.str()
    lines = [line for line in result.stderr.lines + result.stdout.lines if "swarmgate:" in line]
    assert len(lines) == 1, lines
    assert cause in lines[0] and f"[exit {code}]" in lines[0], lines[0]
    assert not (pytester.path / "collected.txt").exists()
    assert "collected" not in result.stdout.str()
    assert API_KEY not in result.stdout.str() + result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- preflight ------------------------------------------------------------------------


def test_a_rejected_key_ends_the_session_before_collection(pytester, serve) -> None:
    stub = serve(require_key="sk-ant-the-right-one")
    project(pytester)
    result = run_gate(pytester, CLEAN_DIFF, "--swarm-json=report.json")
    line = assert_ended_before_collection(pytester, result, "HTTP 401 authentication_error: invalid x-api-key")
    assert "review not started" in line
    assert [r.path for r in stub.requests] == ["/v1/models/claude-sonnet-5-5"]  # one cheap call, no vote
    report = json.loads((pytester.path / "report.json").read_text())
    validate_report(report)
    assert report["status"]["completed"] is False
    assert report["status"]["stopped"]["cause"] == "config"
    assert report["gate"] == {**report["gate"], "outcome": "NOT_REVIEWED", "passed": False}


def test_an_unknown_model_ends_the_session_before_collection(pytester, serve) -> None:
    stub = serve(models=["claude-sonnet-5-5"])
    project(pytester)
    result = run_gate(pytester, CLEAN_DIFF, "--swarm-models=claude-sonnet-5-5,claude-nonesuch-1")
    line = assert_ended_before_collection(
        pytester, result, "has no model claude-nonesuch-1 (GET /v1/models/claude-nonesuch-1: HTTP 404 not_found_error)"
    )
    assert line.count("claude-nonesuch-1") == 2, "named once, and once in the route checked"
    # Each model of the panel once, however many voters share it.
    assert sorted(r.path for r in stub.requests) == ["/v1/models/claude-nonesuch-1", "/v1/models/claude-sonnet-5-5"]


def test_a_closed_port_ends_the_session_before_collection(pytester, monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    project(pytester)
    result = run_gate(pytester, CLEAN_DIFF, "--swarm-max-retries=0")
    assert_ended_before_collection(pytester, result, "connection error", REVIEW_INCOMPLETE)


def test_a_run_served_from_the_vote_cache_needs_no_preflight(pytester, stub, tmp_path) -> None:
    cache = f"--swarm-cache-dir={tmp_path / 'votes'}"
    assert run_gate(pytester, CLEAN_DIFF, cache).ret == pytest.ExitCode.OK
    stub.clear_log()
    stub.require_key = "sk-ant-another-key"  # any call now would be rejected
    result = run_gate(pytester, CLEAN_DIFF, cache)
    assert result.ret == pytest.ExitCode.OK
    assert stub.requests == []


def test_a_run_the_cache_serves_whole_imports_no_sdk_and_reads_each_entry_once(pytester, stub, tmp_path) -> None:
    """Issue 21: a cached rerun built the client (importing the SDK) before asking the cache, and
    read and MAC-checked every entry twice."""
    pytester.makeconftest(
        "import json, pathlib, sys\n"
        "from pytest_swarmgate.core.cache import VoteCache\n"
        "reads = []\n"
        "real = VoteCache._read\n"
        "def counted(self, key, *args):\n"
        "    reads.append(key)\n"
        "    return real(self, key, *args)\n"
        "VoteCache._read = counted\n"
        "def pytest_unconfigure(config):\n"
        "    seen = {m: m in sys.modules for m in ('anthropic', 'httpx')}\n"
        "    pathlib.Path('seen.json').write_text(json.dumps({**seen, 'reads': len(reads), 'keys': len(set(reads))}))\n"
    )
    cache = f"--swarm-cache-dir={tmp_path / 'votes'}"
    diff = CLEAN_DIFF + README_DIFF
    assert run_gate_subprocess(pytester, diff, cache).ret == pytest.ExitCode.OK
    first = json.loads((pytester.path / "seen.json").read_text())
    assert first["anthropic"] and first["reads"] == first["keys"] == 10  # every miss read once
    assert list((tmp_path / "votes").rglob("*.tmp")) == [] and len(list((tmp_path / "votes").rglob("*.json"))) == 10
    stub.clear_log()
    result = run_gate_subprocess(pytester, diff, cache)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(["totals: 2 sections x 5 voters, 0 calls (10 votes from cache)*"])
    again = json.loads((pytester.path / "seen.json").read_text())
    assert again == {"anthropic": False, "httpx": False, "reads": 10, "keys": 10}
    assert stub.requests == []


def test_swarm_preflight_checks_the_set_up_and_stops(pytester, serve) -> None:
    stub = serve()
    project(pytester)
    result = pytester.runpytest("--swarm-review", "--swarm-preflight", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    assert "swarmgate: preflight passed at http://127.0.0.1:" in result.stderr.str()
    assert not (pytester.path / "collected.txt").exists()
    assert [r.path for r in stub.requests] == ["/v1/models/claude-sonnet-5-5"]
    stub.require_key = "sk-ant-the-right-one"
    failed = pytester.runpytest("--swarm-review", "--swarm-preflight", "-p", "no:cacheprovider")
    line = assert_ended_before_collection(pytester, failed, "HTTP 401 authentication_error")
    assert line.startswith("Exit: swarmgate: preflight failed: GET /v1/models/claude-sonnet-5-5 at http://127.0.0.1:")


def test_swarm_preflight_does_not_print_credentials_in_the_base_url(pytester, serve, monkeypatch) -> None:
    stub = serve()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", stub.url.replace("://", "://gate:hunter2-secret@"))
    result = pytester.runpytest("--swarm-review", "--swarm-preflight", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    assert f"preflight passed at {stub.url}: claude-sonnet-5-5 answered GET /v1/models/{{model}}" in result.stderr.str()
    assert "hunter2" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize(
    ("routes", "answered"),
    [
        (("models",), "/v1/models"),  # llama.cpp's server: the list, no per-model route
        (("count_tokens",), "/v1/messages/count_tokens"),
        ((), "/v1/messages"),  # a gateway that serves messages and nothing else
    ],
)
def test_the_preflight_steps_down_to_a_route_the_gateway_has(pytester, serve, routes, answered) -> None:
    """Issue 17: a 404 from a route the endpoint lacks stopped every review ("review not started")."""
    stub = serve(models=["smol"], routes=routes)
    result = run_gate(pytester, CLEAN_DIFF, "--swarm-models=smol")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    checks = [r.path for r in stub.requests][
        : 1 + ["/v1/models", "/v1/messages/count_tokens", "/v1/messages"].index(answered) + 1
    ]
    assert checks[0] == "/v1/models/smol" and checks[-1] == answered, checks


def test_a_gateway_names_a_missing_model_once_and_suggests_the_near_one(pytester, serve) -> None:
    serve(models=["claude-sonnet-5-5"], routes=("models", "count_tokens"))
    project(pytester)
    result = run_gate(pytester, CLEAN_DIFF, "--swarm-models=claude-sonet-5-5")
    line = assert_ended_before_collection(
        pytester, result, "has no model claude-sonet-5-5 (POST /v1/messages/count_tokens: HTTP 404 not_found_error)"
    )
    assert line.endswith("did you mean claude-sonnet-5-5? [exit 78]"), line


def test_a_base_url_ending_in_v1_gets_a_hint(pytester, serve, monkeypatch) -> None:
    stub = serve()
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"{stub.url}/v1")
    project(pytester)
    result = run_gate(pytester, CLEAN_DIFF)
    line = assert_ended_before_collection(pytester, result, f"the endpoint {stub.url}/v1/ answers none of")
    assert "which the SDK adds itself: set ANTHROPIC_BASE_URL without it" in line
    assert "--swarm-preflight=off" in line


def test_swarm_preflight_alone_checks_without_running_the_tests(pytester, serve) -> None:
    """Before: `pytest --swarm-preflight` without --swarm-review ran the project's whole suite."""
    stub = serve()
    project(pytester)
    result = pytester.runpytest("--swarm-preflight", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    assert "swarmgate: preflight passed at http://127.0.0.1:" in result.stderr.str()
    assert not (pytester.path / "collected.txt").exists()
    assert [r.path for r in stub.requests] == ["/v1/models/claude-sonnet-5-5"]


def test_swarm_preflight_says_which_check_passed_at_a_gateway(pytester, serve) -> None:
    serve(models=["smol"], routes=("models",))
    result = pytester.runpytest("--swarm-review", "--swarm-preflight", "--swarm-models=smol", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    said = ": smol answered GET /v1/models (GET /v1/models/{model} not served)"
    assert "preflight passed at http://127.0.0.1:" in result.stderr.str() and said in result.stderr.str()


def test_preflight_off_skips_it_and_only_is_the_jobs_to_ask(pytester, serve) -> None:
    stub = serve()
    assert run_gate(pytester, CLEAN_DIFF, "--swarm-preflight=off").ret == pytest.ExitCode.OK
    assert not [r for r in stub.requests if r.path.startswith("/v1/models")]
    pytester.makeini("[pytest]\nswarm_preflight = only\n")
    refused = run_gate(pytester, CLEAN_DIFF)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR, "the PR's ini must not end the run after the preflight"
    assert "only the job can ask for that" in refused.stderr.str()


# --- a run-wide fault mid-run -------------------------------------------------------------


def test_a_key_revoked_mid_run_stops_the_remaining_calls_and_reports_once(pytester, serve) -> None:
    stub = serve(revoke_key_after=3)
    diff = many_files_diff([f"app/m{i}.py" for i in range(4)])
    result = run_gate(pytester, diff, "--swarm-concurrency=1", "--swarm-json=report.json", "-m", "swarm_review")
    assert result.ret == REVIEW_MISCONFIGURED, result.stdout.str()
    stop = "review stopped: HTTP 401 authentication_error: invalid x-api-key (4 of 20 calls sent)"
    # Once in the summary (the gate line) and once as the gate item's failure; no vote repeats it.
    # (pytest's own short summary, which repeats failure messages in full under CI=true, not counted)
    shown = result.stdout.str().split("short test summary info")[0]
    assert shown.count("authentication_error") == 2, result.stdout.str()
    result.stdout.fnmatch_lines([f"*gate: NOT_REVIEWED - {stop}*"])
    result.assert_outcomes(failed=1, skipped=4)  # the gate fails; the sections were not reviewed
    assert len([r for r in stub.requests if r.path == "/v1/messages"]) == 4  # 3 answered, 1 rejected, then none
    report = json.loads((pytester.path / "report.json").read_text())
    validate_report(report)
    assert report["status"]["stopped"] == {
        "cause": "config",
        "message": "HTTP 401 authentication_error: invalid x-api-key",
        "calls_sent": 4,
        "calls_total": 20,
    }
    assert report["status"]["line"] == stop


def test_an_endpoint_that_goes_away_mid_run_stops_the_review_and_never_reads_as_unsafe(pytester, serve, script) -> None:
    """Before: every call after the endpoint went away was an ERROR vote, INCONCLUSIVE, exit 1."""
    import threading

    calls: list[object] = []

    def go_away_after_the_second_call(ctx: object) -> None:
        calls.append(ctx)
        if len(calls) == 2:
            threading.Thread(target=stub.stop).start()  # not from the handler's own thread

    script.on_call(go_away_after_the_second_call)
    stub = serve(script)
    diff = many_files_diff([f"app/m{i}.py" for i in range(4)])
    result = run_gate(pytester, diff, "--swarm-concurrency=1", "--swarm-max-retries=0", "--swarm-json=report.json")
    assert result.ret == REVIEW_INCOMPLETE, result.stdout.str()
    result.stdout.fnmatch_lines(["*gate: NOT_REVIEWED - review stopped: connection error: ConnectError:*calls sent)*"])
    report = json.loads((pytester.path / "report.json").read_text())
    validate_report(report)
    assert report["status"]["stopped"]["cause"] == "fault"
    assert report["status"]["stopped"]["calls_sent"] < 20


def test_a_per_call_fault_stays_one_error_vote(pytester, stub, script) -> None:
    script.on(section="*", voter="v2", reply=Reply.status(500))
    result = run_gate(pytester, CLEAN_DIFF, "--swarm-max-retries=0", "-v")
    assert result.ret == pytest.ExitCode.OK  # 4 of 5 SAFE still reaches K=4
    result.stdout.fnmatch_lines(["*v2 * ERROR * error: HTTP 500 api_error*", "*gate: SAFE*"])


# --- rate limits ----------------------------------------------------------------------


def test_forty_calls_at_twenty_per_second_give_no_error_vote(pytester, serve) -> None:
    stub = serve(rate_limit=RateLimit(requests_per_s=20))
    diff = many_files_diff([f"src/f{i}.py" for i in range(8)])
    result = run_gate(pytester, diff, "--swarm-json=report.json", "-m", "swarm_review")
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["totals"]["error_votes"] == 0, [v["error"] for v in report["run"]["results"][0]["votes"]]
    assert report["totals"]["votes"] == 40
    assert result.ret == pytest.ExitCode.OK
    assert len([r for r in stub.requests if r.is_call]) == 40


@pytest.mark.parametrize("status", [429, 529])
def test_rate_limits_past_the_sdk_retries_wait_on_the_pacer_not_an_error(pytester, stub, script, status) -> None:
    limited = Reply.status(status, retry_after=0.05)
    script.on(section="*", reply=Reply.sequence(limited, limited, limited, limited, Reply.verdict("SAFE")))
    result = run_gate(pytester, CLEAN_DIFF, "--swarm-max-retries=2")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    # 4 rate-limited answers and the SAFE one per voter; before, the SDK's 2 retries ran out into an ERROR.
    assert sorted(r.attempt for r in stub.calls(voter="v1")) == [1, 2, 3, 4, 5]
    # Each one a first try as the SDK counts them: the run's pacer sent them again, not the SDK.
    assert {r.headers.get("x-stainless-retry-count") for r in stub.calls()} == {"0"}


def test_a_rate_limit_outlasting_the_deadline_stops_the_run(pytester, stub, script) -> None:
    script.on(section="*", reply=Reply.status(429, retry_after=30))
    result = run_gate(pytester, CLEAN_DIFF, "--swarm-deadline=1", "--swarm-json=report.json")
    assert result.ret == REVIEW_INCOMPLETE
    result.stdout.fnmatch_lines(
        ["*gate: NOT_REVIEWED - review stopped: --swarm-deadline=1 reached (the rate limit needed * s more): 0 of 5 *"]
    )
    report = json.loads((pytester.path / "report.json").read_text())
    validate_report(report)
    assert report["status"]["stopped"]["cause"] == "deadline"


# --- the deadline -------------------------------------------------------------------------


def test_a_deadline_bounds_the_runs_wall_time_and_every_report_is_written(pytester, serve, monkeypatch) -> None:
    """Issue 17: `--swarm-deadline 60` did not bound a 99.7 s run; it bounded only the rate-limit waits.

    The stub never answers within the deadline: the calls still running are cancelled at it, the
    run stops with exit 75 and one line counting the votes cast, and every report is written."""
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    serve(latency=120)  # each reply takes two minutes, far past the deadline and the test's patience
    diff = many_files_diff([f"app/m{i}.py" for i in range(2)])
    out = ("--swarm-json=report.json", "--swarm-sarif=r.sarif", "--junitxml=j.xml")
    slow = ("--swarm-deadline=2", "--swarm-timeout=300", "--swarm-prewarm=off", "--swarm-preflight=off")
    result = run_gate(pytester, diff, *slow, *out)
    assert result.ret == REVIEW_INCOMPLETE, result.stdout.str()
    # Bounded by the deadline, not by the replies (120 s) or the vote timeout (300 s): generous for a loaded CI host.
    assert result.duration < 30, result.duration
    line = "review stopped: --swarm-deadline=2 reached (calls still running were cancelled): 0 of 10 votes cast"
    result.stdout.fnmatch_lines([f"*gate: NOT_REVIEWED - {line} (10 of 10 calls sent)"])
    report = json.loads((pytester.path / "report.json").read_text())
    validate_report(report)
    assert report["status"]["stopped"]["cause"] == "deadline"
    votes = [v for r in report["run"]["results"] for v in r["votes"]]
    assert len(votes) == 10 and {v["error_kind"] for v in votes} == {"deadline"}
    assert (
        json.loads((pytester.path / "r.sarif").read_text())["runs"][0]["invocations"][0]["executionSuccessful"] is False
    )
    assert "--swarm-deadline=2 reached" in summary.read_text()
    assert (pytester.path / "j.xml").exists()


def test_the_deadline_bounds_the_preflight_too(pytester, serve) -> None:
    serve(latency=120)
    project(pytester)
    result = run_gate(pytester, CLEAN_DIFF, "--swarm-deadline=2", "--swarm-timeout=300")
    assert result.duration < 30, result.duration
    assert_ended_before_collection(
        pytester, result, "--swarm-deadline=2 reached during the preflight", REVIEW_INCOMPLETE
    )


def test_at_the_deadline_the_votes_already_cast_are_kept_and_counted(pytester, stub, script) -> None:
    script.on(section="app/m1.py", reply=Reply.slow(120))
    diff = many_files_diff([f"app/m{i}.py" for i in range(2)])
    result = run_gate(pytester, diff, "--swarm-deadline=3", "--swarm-prewarm=off", "--swarm-json=report.json")
    assert result.ret == REVIEW_INCOMPLETE, result.stdout.str()
    result.stdout.fnmatch_lines(["*review stopped: --swarm-deadline=3 reached (*): 5 of 10 votes cast*"])
    report = json.loads((pytester.path / "report.json").read_text())
    verdicts = {r["section"]["id"]: {v["verdict"] for v in r["votes"]} for r in report["run"]["results"]}
    assert verdicts == {"app/m0.py": {"SAFE"}, "app/m1.py": {"ERROR"}}


# --- the ceiling ------------------------------------------------------------------------


def test_a_diff_over_the_ceiling_writes_the_report_and_names_the_crowded_directory(pytester, stub, monkeypatch) -> None:
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    paths = [f"vendor/typeshed/stdlib/m{i}.pyi" for i in range(5)] + ["app/main.py", "app/util.py"]
    project(pytester)
    result = run_gate(
        pytester, many_files_diff(paths), "--swarm-max-sections=3", "--swarm-json=report.json", "--swarm-sarif=r.sarif"
    )
    ceiling = "has 7 sections (35 calls), over --swarm-max-sections=3"
    line = assert_ended_before_collection(pytester, result, ceiling, REVIEW_INCOMPLETE)
    assert "5 of 7 sections under vendor/: --swarm-exclude='vendor/**'" in line
    assert stub.requests == []
    report = json.loads((pytester.path / "report.json").read_text())
    validate_report(report)
    assert report["status"]["stopped"]["cause"] == "ceiling"
    assert report["gate"]["outcome"] == "NOT_REVIEWED"
    assert "not reviewed" in summary.read_text()
    sarif = json.loads((pytester.path / "r.sarif").read_text())["runs"][0]
    assert sarif["results"] == [] and sarif["invocations"][0]["executionSuccessful"] is False
    assert "over --swarm-max-sections=3" in sarif["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"]


def test_an_endpoint_that_cannot_give_verdicts_is_not_reviewed_in_one_line(pytester, serve) -> None:
    """Issue 17: a server whose model never calls the tool exited 1, the code for UNSAFE, with the
    same error on every vote line and no line saying that not one vote was valid. No retry fixes
    an endpoint that ignores the forced tool choice: exit 78, decided on the votes' error kind."""
    serve(plain_text=True)
    diff = many_files_diff([f"app/m{i}.py" for i in range(2)])
    result = run_gate(pytester, diff, "--swarm-json=report.json")
    assert result.ret == REVIEW_MISCONFIGURED, result.stdout.str()
    line = (
        "gate: NOT_REVIEWED - review stopped: 0 of 10 votes valid: no reply contained a submit_verdict tool call"
        " - the endpoint or model cannot give verdicts (10 of 10 calls sent)"
    )
    # Said once, as the gate's line (and, as for every stop, as the gate item's failure); no vote repeats it.
    shown = result.stdout.str().split("short test summary info")[0]
    assert result.stdout.lines.count(line) == 2 and shown.count("submit_verdict") == 2, result.stdout.str()
    report = json.loads((pytester.path / "report.json").read_text())
    validate_report(report)
    assert report["status"]["stopped"]["cause"] == "config"
    votes = [v for r in report["run"]["results"] for v in r["votes"]]
    assert len(votes) == 10 and {v["error_kind"] for v in votes} == {"no_tool_call"}, "every vote is kept"


def test_every_call_timing_out_is_not_reviewed_and_may_pass_later(pytester, stub, script) -> None:
    script.on(section="*", reply=Reply.slow(60))
    result = run_gate(pytester, CLEAN_DIFF, "--swarm-timeout=1", "--swarm-max-retries=0", "--swarm-prewarm=off")
    assert result.ret == REVIEW_INCOMPLETE, result.stdout.str()
    result.stdout.fnmatch_lines(["*gate: NOT_REVIEWED - review stopped: 0 of 5 votes valid: timed out, e.g. *"])


def test_when_some_votes_are_valid_one_line_says_what_the_errors_share(pytester, stub, script) -> None:
    script.on(section="*", voter="v2", reply=Reply.text("I think this is fine."))
    script.on(section="*", voter="v3", reply=Reply.status(500))
    result = run_gate(pytester, CLEAN_DIFF, "--swarm-max-retries=0", "--swarm-threshold=3")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(["note: ERROR votes: 2 of 5 (1 no submit_verdict tool call, 1 request failed)"])
