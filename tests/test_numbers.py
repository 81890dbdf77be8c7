"""Numbers a team can trust (issue 12), end to end: the real SDK over HTTP to the stub server.

Calibration scores only what the panel judged, -k / --deselect limit a calibration's calls,
votes are credited to the model that answered, --swarm-timeout bounds a whole vote, the policy
is the same bytes in every run (so a rerun reads it from the prompt cache), and the verdict tool
goes strict where the endpoint takes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic  # noqa: F401 - imported once in the outer process (see test_calibrate.py)
import pytest
from conftest import CLEAN_DIFF, README_DIFF, SQL_DIFF, unsafe_finding, validate_report, write_diff
from test_calibrate import calibrate, script_small, small_corpus

from pytest_swarmgate.exitcodes import REVIEW_INCOMPLETE
from pytest_swarmgate.testing import Reply, Script, StubServer


def review(pytester: pytest.Pytester, diff: str, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    """Run the gate on `diff` and return the result with its JSON report (validated)."""
    path = write_diff(pytester.path, diff)
    out = pytester.path / "report.json"
    result = pytester.runpytest(
        "--swarm-review", f"--swarm-diff={path}", f"--swarm-json={out}", "-p", "no:cacheprovider", *args
    )
    report = json.loads(out.read_text())
    validate_report(report)
    return result, report


def votes_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for r in report["run"]["results"] for v in r["votes"]]


# --------------------------------------------------------------------------- 1. only what was judged


def test_an_all_error_calibration_scores_nothing_passes_nothing_and_fails_in_one_line(pytester, serve) -> None:
    """The endpoint answers in plain text: no fixture is judged, none passes, no K is recommended."""
    serve(plain_text=True)
    out = pytester.path / "cal"
    result = calibrate(
        pytester,
        small_corpus(pytester.path / "corpus"),
        "--swarm-voters=3",
        f"--swarm-calibration-report={out}",
        "-rA",
        "-v",
    )
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    result.assert_outcomes(failed=4)  # the two known-bad fixtures do not pass on errors
    text = result.stdout.str()
    assert "blocks it (UNSAFE)" not in text and "lets it through" not in text
    result.stdout.fnmatch_lines(
        [
            "diffs/caught.bad.diff: expected UNSAFE, but the gate at K=3 of N=3 is INCONCLUSIVE: not scored "
            "(errors: INCONCLUSIVE at K=3, 3 of 3 votes were errors or missing (1 of 1 sections undecided))",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*swarm calibration*",
            "Threshold K (N=3; 4 fixtures: 2 UNSAFE, 2 SAFE;*",
            "K  scored  not scored  TP  FN  FP  TN  recall  FPR  precision  score",
            "1       0           4   0   0   0   0       -    -          -      -",
            "*",
            "*",
            "no K can be recommended: at most 0 of 4 fixtures (0%) were judged at any K, under the 80% needed "
            "(not scored at K=1: 4 errors)",
        ]
    )
    result.stdout.fnmatch_lines(["Not scored at K=3 (4 of 4 fixtures: the panel did not judge them)"])
    errors = [line for line in result.stdout.lines if line.startswith("swarmgate: calibration failed:")]
    assert errors == [
        "swarmgate: calibration failed: no K can be recommended: at most 0 of 4 fixtures (0%) were "
        "judged at any K, under the 80% needed (not scored at K=1: 4 errors)"
    ]
    data = json.loads(Path(f"{out}.json").read_text())
    assert [r["scored"] for r in data["report"]["rows"]] == [0, 0, 0]
    assert all(r["recall"] is None and r["fpr"] is None for r in data["report"]["rows"])
    assert not data["report"]["judged_enough"] and not any(f["agrees"] for f in data["fixtures"])
    assert all(c["bad"] == 0 and c["good"] == 0 for c in data["report"]["categories"])


# --------------------------------------------------------------------------- 2. quick calibrations


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
@pytest.mark.parametrize(
    "select",
    [
        ("-k", "caught or clean"),
        (
            "--deselect=swarm-calibrate::diffs/missed.bad.diff",
            "--deselect=swarm-calibrate::diffs/false-alarm.good.diff",
        ),
    ],
    ids=["k", "deselect"],
)
def test_selecting_items_limits_the_calls_to_the_selected_fixtures(pytester, stub, script, select, xdist) -> None:
    if xdist:
        pytest.importorskip("xdist")
    script_small(script)
    args = ["--swarm-voters=3", "--swarm-no-cache", *select, *(["-n", "2"] if xdist else [])]
    result = calibrate(pytester, small_corpus(pytester.path / "corpus"), *args)
    result.assert_outcomes(passed=2, deselected=0 if xdist else 2)  # xdist's controller does not count them
    assert {c.section_path for c in stub.calls()} == {"app/shared.py"} and len(stub.calls()) == 2 * 3
    result.stdout.fnmatch_lines(
        [
            "swarmgate: calibrating on 2 of 4 fixtures: 2 sections x 3 voters ...",
            "corpus *: 2 of 4 fixtures run (selected with -k, -m or --deselect), 2 sections x 3 voters: 6 calls*",
            "Threshold K (N=3; 2 fixtures: 1 UNSAFE, 1 SAFE;*",
        ]
    )
    assert result.ret == 0


# --------------------------------------------------------------------------- 3. the model that answered


def test_votes_are_credited_to_the_model_that_answered(pytester, serve) -> None:
    serve(answer_model="smol")
    result, report = review(pytester, CLEAN_DIFF + README_DIFF, "--swarm-voters=2", "--swarm-threshold=2", "-v")
    assert result.ret == 0
    votes = votes_of(report)
    assert len(votes) == 4 and {(v["model"], v["answered_model"]) for v in votes} == {("claude-sonnet-5-5", "smol")}
    assert all("answered by model smol, not claude-sonnet-5-5 as requested" in v["settings"]["notes"] for v in votes)
    swaps = [line for line in result.stdout.lines if line.startswith("note: model swap:")]
    assert swaps == [
        "note: model swap: claude-sonnet-5-5 was requested and smol answered (4 votes, credited to the "
        "model that answered)"
    ]
    result.stdout.fnmatch_lines(["  v1   smol * SAFE *"])


def test_a_faithful_endpoint_leaves_no_swap_note(pytester, stub) -> None:
    result, report = review(pytester, CLEAN_DIFF, "--swarm-voters=1", "--swarm-threshold=1")
    assert {v["answered_model"] for v in votes_of(report)} == {"claude-sonnet-5-5"}
    assert "model swap" not in result.stdout.str() and "answered by model" not in result.stdout.str()


def test_calibration_tables_use_the_answering_model(pytester, serve, script) -> None:
    serve(script_small(script), answer_model="smol")
    result = calibrate(pytester, small_corpus(pytester.path / "corpus"), "--swarm-voters=2", "-v")
    result.stdout.fnmatch_lines(["Voters *", "voter  model *", "v1     smol *", "v2     smol *"])
    result.stdout.fnmatch_lines(["note: model swap: claude-sonnet-5-5 was requested and smol answered (8 votes*"])


# --------------------------------------------------------------------------- 4. a timeout that bounds a vote


def test_the_timeout_bounds_the_whole_vote_retries_included(pytester, stub, script) -> None:
    """Before: the SDK retried each timed-out attempt, so a 1 s timeout gave a vote of 3 s and more."""
    script.on(voter="v1", reply=Reply.slow(30.0))
    result, report = review(
        pytester, CLEAN_DIFF, "--swarm-voters=1", "--swarm-threshold=1", "--swarm-timeout=1", "--swarm-max-retries=2"
    )
    assert result.ret == REVIEW_INCOMPLETE  # the one vote timed out: nothing valid, not reviewed
    [vote] = votes_of(report)
    assert vote["verdict"] == "ERROR"
    assert vote["error"].startswith("timeout: no reply within 1s, the vote's whole budget (")
    assert vote["latency_s"] < 2.5, "the budget holds every attempt; a retry after 1 s would start past it"
    attempts, spent = vote["error"].split("(", 1)[1].split(", ")[:2]
    assert attempts in ("1 attempt", "2 attempts") and float(spent.split("s")[0]) == pytest.approx(1.0, abs=0.5)


def test_the_error_names_every_attempt_and_what_the_last_one_got(pytester, stub, script) -> None:
    # A 500 (the SDK retries it); a 429 or 529 waits on the run's pacer, bounded by --swarm-deadline.
    script.on(voter="v1", reply=Reply.status(500, "api_error", "busy", retry_after=0.6))
    _, report = review(
        pytester, CLEAN_DIFF, "--swarm-voters=1", "--swarm-threshold=1", "--swarm-timeout=1", "--swarm-max-retries=5"
    )
    [vote] = votes_of(report)
    # 500 at 0 s, retry after 0.6 s, 500 again, the next wait runs past the 1 s budget.
    assert vote["error"].startswith("timeout: no reply within 1s, the vote's whole budget (2 attempts, ")
    assert vote["error"].endswith("s spent; last attempt: HTTP 500 api_error: busy)")
    assert len(stub.calls()) == 2


def test_the_progress_line_shows_calls_in_flight_and_retries(pytester, stub, script) -> None:
    # A section that is not SAFE gets its line as it finishes; a SAFE one is only counted.
    script.on("app/orders.py", reply=Reply.slow(1.0, then=Reply.verdict("UNSAFE", findings=[unsafe_finding()])))
    script.on("docs/README.md", reply=Reply.sequence(Reply.status(500, retry_after=0), Reply.slow(4.0)))
    result, _ = review(pytester, CLEAN_DIFF + README_DIFF, "--swarm-voters=1", "--swarm-threshold=1")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["swarmgate: [[]1/2] app/orders.py: UNSAFE 1/1 (K=1)*; 1 call in flight, 1 retry"])
    assert "docs/README.md: SAFE" not in result.stdout.str().split("= swarm review =")[0]


# --------------------------------------------------------------------------- 5. a policy the cache keeps


def tokens(report: dict[str, Any]) -> dict[str, int]:
    return dict(report["totals"]["tokens"])


def test_a_rerun_of_the_same_diff_reads_the_policy_from_the_prompt_cache(pytester, stub) -> None:
    args = ("--swarm-voters=1", "--swarm-threshold=1", "--swarm-no-cache")
    _, first = review(pytester, SQL_DIFF, *args)
    _, second = review(pytester, SQL_DIFF, *args)
    one, two = tokens(first), tokens(second)
    assert one["cache_read_tokens"] == 0 and one["cache_write_tokens"] > 0
    # The fence is new, so the section is written again; the policy before it is read.
    [call_one, call_two] = stub.calls()
    assert call_one.body["system"] == call_two.body["system"] and call_one.body["tools"] == call_two.body["tools"]
    assert two["cache_read_tokens"] > 0
    assert two["cache_read_tokens"] + two["cache_write_tokens"] == one["cache_write_tokens"]
    assert two["cache_write_tokens"] < two["cache_read_tokens"]


def test_the_one_hour_cache_lifetime_goes_on_the_policy_only(pytester, stub) -> None:
    review(pytester, CLEAN_DIFF, "--swarm-voters=1", "--swarm-threshold=1", "--swarm-cache-ttl=1h")
    [call] = stub.calls()
    assert call.body["system"][-1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    # A 1h entry must come before 5m ones; the section is read within seconds by its voters.
    assert call.body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}


def test_a_bad_cache_lifetime_is_a_usage_error(pytester, stub) -> None:
    path = write_diff(pytester.path, CLEAN_DIFF)
    result = pytester.runpytest("--swarm-review", f"--swarm-diff={path}", "--swarm-cache-ttl=2h")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: swarmgate: --swarm-cache-ttl: expected one of 5m, 1h, got '2h'"])


def test_the_stub_reads_the_longest_cached_prefix_up_to_any_breakpoint() -> None:
    """Two breakpoints: a second call that shares only the first reads it and writes the second."""
    import anthropic as sdk

    policy = [{"type": "text", "text": "p" * 4000, "cache_control": {"type": "ephemeral"}}]

    def ask(client: Any, section: str) -> Any:
        text = f"section: {section}\n" + "s" * 800
        content = [
            {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "voter: v1"},
        ]
        return client.messages.create(
            model="m", max_tokens=10, system=policy, messages=[{"role": "user", "content": content}]
        ).usage

    with StubServer(Script()) as server:
        client = sdk.Anthropic(base_url=server.url, api_key="stub", max_retries=0)
        first, second, again = ask(client, "a.py"), ask(client, "b.py"), ask(client, "b.py")
    assert (first.cache_read_input_tokens, first.cache_creation_input_tokens) == (0, 1000 + 204)
    assert (second.cache_read_input_tokens, second.cache_creation_input_tokens) == (1000, 204)
    assert (again.cache_read_input_tokens, again.cache_creation_input_tokens) == (1204, 0)


# --------------------------------------------------------------------------- 6. strict tool schema


def test_the_verdict_tool_is_sent_strict(pytester, stub) -> None:
    result, report = review(pytester, CLEAN_DIFF, "--swarm-voters=2", "--swarm-threshold=2")
    assert result.ret == 0
    assert all(c.body["tools"][0].get("strict") is True for c in stub.calls())
    assert all(v["settings"]["strict"] is True for v in votes_of(report))


def test_an_endpoint_that_refuses_strict_gets_it_dropped_once_per_model(pytester, serve) -> None:
    server = serve(strict="reject")
    result, report = review(
        pytester, CLEAN_DIFF + README_DIFF, "--swarm-voters=2", "--swarm-threshold=2", "--swarm-concurrency=1", "-v"
    )
    assert result.ret == 0
    sent = [(r.status, "strict" in r.body["tools"][0]) for r in server.requests if r.path == "/v1/messages"]
    assert sent == [(400, True), *[(200, False)] * 4], "one refusal for the model, then never strict again"
    assert all(v["settings"]["strict"] is False for v in votes_of(report))
    assert all(
        "strict tool schema not applied: endpoint rejects it for claude-sonnet-5-5" in v["settings"]["notes"]
        for v in votes_of(report)
    )
    result.stdout.fnmatch_lines(["*note: strict tool schema not applied: endpoint rejects it for claude-sonnet-5-5*"])


def test_strict_refusal_in_a_batch_steps_down_too(pytester, serve, script, monkeypatch) -> None:
    monkeypatch.setenv("SWARMGATE_BATCH_POLL_SECONDS", "0")
    serve(script_small(script), strict="reject")
    result = calibrate(
        pytester,
        small_corpus(pytester.path / "corpus"),
        "--swarm-voters=2",
        "--swarm-batch",
        "--swarm-threshold=1",
        "-v",
    )
    result.assert_outcomes(passed=3, failed=1)  # only missed.bad.diff, which every voter misses
    result.stdout.fnmatch_lines(["v1 * 0         0", "v2 * 0         0"])  # no voter erred, none excluded
    result.stdout.fnmatch_lines(["*note: strict tool schema not applied: endpoint rejects it for claude-sonnet-5-5*"])


def test_a_prewarm_refused_for_strict_steps_down_and_still_warms_the_section(pytester, serve) -> None:
    from test_calibrate import module_diff

    server = serve(strict="reject")
    big = module_diff(
        "app/big.py", [f"VALUE_{i} = {i}  # a line long enough to make the section large" for i in range(80)]
    )
    result, report = review(pytester, big, "--swarm-voters=2", "--swarm-threshold=2")
    assert result.ret == 0 and "prewarm" not in " ".join(report["run"]["notes"])
    prewarms = [
        (r.status, "strict" in r.body["tools"][0]) for r in server.requests if r.body and r.body.get("max_tokens") == 0
    ]
    assert prewarms == [(400, True), (200, False)]
    assert report["run"]["prewarm_calls"] == 1
    # The voters send the tool as the prewarm wrote it, so they read the section from the cache.
    assert all(v["usage"]["cache_read_tokens"] > 0 for v in votes_of(report))


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_deselecting_every_fixture_makes_no_call_and_no_verdict(pytester, stub, xdist) -> None:
    if xdist:
        pytest.importorskip("xdist")
    pytester.makepyfile(test_other="def test_other():\n    pass\n")
    result = calibrate(
        pytester, small_corpus(pytester.path / "corpus"), "-m", "not swarm_calibration", *(["-n", "2"] if xdist else [])
    )
    assert result.ret == 0 and stub.calls() == []
    result.assert_outcomes(passed=1, deselected=0 if xdist else 4)
    result.stdout.fnmatch_lines(["swarmgate: no calibration fixture selected of 4: no calls made"])
