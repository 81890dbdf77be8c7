"""pytest --swarm-calibrate end to end: the real anthropic SDK over HTTP to the stub server."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

# Loaded here, in the outer process: pytester's in-process runs drop the modules they import
# when they end, so anthropic would be imported afresh (about a second) by every run, and
# numpy (under matplotlib) cannot be imported twice in one process at all.
import anthropic  # noqa: F401
import pytest
from conftest import unsafe_finding

from pytest_swarmgate.core.batch import batch_params, poll_seconds
from pytest_swarmgate.exitcodes import REVIEW_INCOMPLETE
from pytest_swarmgate.model import Vote
from pytest_swarmgate.testing import CallContext, Reply, Script

try:
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401
except ImportError:
    pass


# --- a corpus written by the test --------------------------------------------------------


def module_diff(path: str, body: Iterable[str]) -> str:
    """A diff adding `body` to an existing one-line module at `path`."""
    added = list(body)
    lines = [
        f"diff --git a/{path} b/{path}",
        "index 1111111..2222222 100644",
        f"--- a/{path}",
        f"+++ b/{path}",
        f"@@ -1,1 +1,{1 + len(added)} @@",
        " import sqlite3",
        *("+" + line for line in added),
    ]
    return "".join(line + "\n" for line in lines)


def query_diff(path: str, safe: bool) -> str:
    """A lookup that is parameterised (safe) or built by concatenation (unsafe)."""
    if safe:
        return module_diff(path, ["def find(db, key):", '    return db.execute("SELECT v FROM t WHERE k = ?", (key,))'])
    return module_diff(
        path, ["def find(db, key):", '    return db.execute("SELECT v FROM t WHERE k = \'" + key + "\'")']
    )


def write_corpus(directory: Path, fixtures: list[dict[str, Any]]) -> Path:
    """Write each fixture's `text` to its `diff` path and a manifest listing them all."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for f in fixtures:
        target = directory / f["diff"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f["text"], encoding="utf-8")
        entries.append({k: v for k, v in f.items() if k != "text"})
    (directory / "manifest.json").write_text(json.dumps({"version": 1, "fixtures": entries}, indent=1))
    return directory


def fixture(name: str, path: str, expected: str, category: str = "sql-injection", **extra: Any) -> dict[str, Any]:
    label = "bad" if expected == "UNSAFE" else "good"
    text = extra.pop("text", None) or query_diff(path, safe=expected == "SAFE")
    flaw = {"path": path, "line": 3} if expected == "UNSAFE" else None
    return {
        "diff": f"diffs/{name}.{label}.diff",
        "expected": expected,
        "category": category,
        "flaw": flaw,
        "text": text,
        **extra,
    }


def small_corpus(directory: Path) -> Path:
    """Four fixtures; two share the path app/shared.py (the engine must keep them apart)."""
    return write_corpus(
        directory,
        [
            fixture("caught", "app/shared.py", "UNSAFE", why="concatenated SQL whybadmarker"),
            fixture("clean", "app/shared.py", "SAFE", category="category-zeta"),
            fixture("missed", "app/missed.py", "UNSAFE"),
            fixture("false-alarm", "app/alarm.py", "SAFE"),
        ],
    )


def script_small(script: Script) -> Script:
    """`missed` is missed by everyone, `false-alarm` draws one UNSAFE vote, the rest are right."""

    def rule(ctx: CallContext) -> Reply | None:
        if ctx.path == "app/alarm.py":
            return Reply.verdict("UNSAFE") if ctx.voter == "v1" else Reply.verdict("SAFE")
        if ctx.path == "app/shared.py" and "+ key +" in ctx.text:
            return Reply.verdict("UNSAFE")
        return Reply.verdict("SAFE")

    return script.on_call(rule)


def calibrate(pytester: pytest.Pytester, corpus: Path | None, *args: str) -> pytest.RunResult:
    flag = "--swarm-calibrate" if corpus is None else f"--swarm-calibrate={corpus}"
    return pytester.runpytest(flag, "-p", "no:cacheprovider", *args)


def assert_usage_error(result: pytest.RunResult, message: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.str()
    assert errors[0].startswith("ERROR: swarmgate: ") and message in errors[0], errors[0]
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


# --- the wiring check ----------------------------------------------------------------------
# The binomial law itself is proven on thousands of fixtures by the pure test in
# test_calibration.py; here a small corpus shows the real path computes the same figures.


def test_k_table_counts_exactly_the_votes_the_panel_cast(pytester, stub, script) -> None:
    """20 fixtures through the SDK and the stub, five voters each right with probability 0.8 (seeded).

    The test knows every vote the stub will give, so it counts each K's confusion matrix, each
    voter's rates and the agreement itself, and the report, the terminal and the items must
    show exactly those figures."""
    n, accuracy, per_label = 5, 0.8, 10
    voters = [f"v{i}" for i in range(1, n + 1)]
    order = list(range(2 * per_label))
    random.Random(7).shuffle(order)  # file paths say nothing about the label
    # The voters' answer key, built from what the manifest says: file path -> label.
    label: dict[str, Literal["SAFE", "UNSAFE"]] = {
        f"pkg/mod{order[i]:03d}.py": "UNSAFE" if i < per_label else "SAFE" for i in range(2 * per_label)
    }
    fixtures = [
        fixture(
            f"case{i:03d}", path, expected, category=("sql-injection", "path-traversal", "command-injection")[i % 3]
        )
        for i, (path, expected) in enumerate(label.items())
    ]

    def verdict(path: str, voter: str) -> Literal["SAFE", "UNSAFE"]:
        right = random.Random(f"{path}|{voter}").random() < accuracy
        return label[path] if right else ("SAFE" if label[path] == "UNSAFE" else "UNSAFE")

    script.on_call(lambda ctx: Reply.verdict(verdict(ctx.path, ctx.voter)))
    corpus = write_corpus(pytester.path / "corpus", fixtures)
    out = pytester.path / "out" / "calibration"
    result = calibrate(pytester, corpus, f"--swarm-calibration-report={out}", "--swarm-target-fpr=0.15", "-q")

    flags = {path: {v: verdict(path, v) == "UNSAFE" for v in voters} for path in label}
    report = json.loads(out.with_suffix(".json").read_text())["report"]
    for row in report["rows"]:
        k = row["k"]
        flagged = {path for path in label if sum(flags[path].values()) >= n + 1 - k}  # UNSAFE votes > N-K
        bad = {path for path in label if label[path] == "UNSAFE"}
        want = {"tp": len(flagged & bad), "fn": len(bad - flagged), "fp": len(flagged - bad)}
        assert {key: row[key] for key in want} == want, row
        assert row["tn"] == 2 * per_label - sum(want.values())
        # The terminal shows the same figures.
        counts = " * ".join(str(row[key]) for key in ("tp", "fn", "fp", "tn"))
        result.stdout.fnmatch_lines([f"{k} * {counts} * {row['recall']:.1%} *"])
    for voter in report["voters"]:
        tpr = sum(flags[p][voter["voter_id"]] for p in label if label[p] == "UNSAFE") / per_label
        fpr = sum(flags[p][voter["voter_id"]] for p in label if label[p] == "SAFE") / per_label
        assert (voter["tpr"], voter["fpr"]) == (pytest.approx(tpr), pytest.approx(fpr)), voter
    pairs = [(a, b) for i, a in enumerate(voters) for b in voters[i + 1 :]]
    agreement = sum(flags[p][a] == flags[p][b] for a, b in pairs for p in label) / (len(pairs) * len(label))
    assert report["agreement"]["mean"] == pytest.approx(agreement)
    result.stdout.fnmatch_lines(
        [
            "*= swarm calibration =*",
            "Threshold K (N=5; 20 fixtures: 10 UNSAFE, 10 SAFE; INCONCLUSIVE counts as flagged; rates over the "
            "fixtures scored at each K)",
            "*K* (target FPR <= 15.0%)",
            "mean pairwise agreement *; within-label Fleiss' kappa *",
            "line accuracy: *",
            "tokens: * input, * output, *; cost $*",
            "per-voter, per-category and pairwise tables: -v or --swarm-calibration-report",
            "K=4 in force: * of 20 scored fixtures disagree with their label*",
        ]
    )
    assert "Voters (" not in result.stdout.str()
    markdown = out.with_suffix(".md").read_text()
    for heading in ("### Voters (", "### Categories at K=", "### Agreement between voters"):
        assert heading in markdown
    # Items fail exactly where the gate in force (K=4 by default for N=5) disagrees with the label.
    wrong = report["rows"][3]["fn"] + report["rows"][3]["fp"]
    assert 0 < wrong < 20, "the seeds give the items both outcomes"
    result.assert_outcomes(failed=wrong, passed=20 - wrong)
    assert len(stub.calls()) == 20 * n


# --- items --------------------------------------------------------------------------------


def test_items_fail_where_the_gate_disagrees_with_the_label(pytester, stub, script) -> None:
    script_small(script)
    result = calibrate(pytester, small_corpus(pytester.path / "corpus"), "--swarm-voters=3", "-v")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines_random(
        [
            "*swarm-calibrate::diffs/caught.bad.diff PASSED*",
            "*swarm-calibrate::diffs/clean.good.diff PASSED*",
            "*swarm-calibrate::diffs/missed.bad.diff FAILED*",
            "*swarm-calibrate::diffs/false-alarm.good.diff FAILED*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*swarm calibration of diffs/false-alarm.good.diff*",
            "diffs/false-alarm.good.diff: expected SAFE, but the gate at K=3 of N=3 blocks it (UNSAFE)",
            "  category sql-injection",
            "  app/alarm.py: UNSAFE 1/3 (K=3) - app/alarm.py:* Untrusted input*",
            "    v1 * UNSAFE *app/alarm.py:* Untrusted input*",
            "    v2 * SAFE *",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "diffs/missed.bad.diff: expected UNSAFE, but the gate at K=3 of N=3 lets it through (SAFE)",
            "  category sql-injection, flaw at app/missed.py:3",
            "  app/missed.py: SAFE 3/3 (K=3)",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert len(stub.calls()) == 4 * 3  # sections x voters; the shared path was sent once per fixture
    # Without -v a failed fixture is its headline and a line per section, no votes.
    compact = calibrate(pytester, small_corpus(pytester.path / "corpus"), "--swarm-voters=3")
    compact.stdout.fnmatch_lines(
        [
            "*swarm calibration of diffs/false-alarm.good.diff*",
            "diffs/false-alarm.good.diff: expected SAFE, but the gate at K=3 of N=3 blocks it (UNSAFE)"
            " - category sql-injection",
            "  app/alarm.py: UNSAFE 1/3 (K=3) - app/alarm.py:* Untrusted input*",
            "*swarm calibration of diffs/missed.bad.diff*",
        ]
    )
    assert "    v1 " not in compact.stdout.str()
    assert len(stub.calls(section="app/shared.py")) == 2 * 3


def test_xdist_gives_the_same_result_and_sends_no_fixture_twice(pytester, stub, script) -> None:
    pytest.importorskip("xdist")
    script_small(script)
    corpus = small_corpus(pytester.path / "corpus")
    serial = calibrate(pytester, corpus, "--swarm-voters=3", "--swarm-no-cache", "-rA")
    stub.clear_log()
    parallel = calibrate(pytester, corpus, "--swarm-voters=3", "--swarm-no-cache", "-n", "2", "-rA")
    assert parallel.ret == serial.ret == pytest.ExitCode.TESTS_FAILED
    parallel.assert_outcomes(passed=2, failed=2)

    def outcomes(result: pytest.RunResult) -> set[str]:
        return {line for line in result.stdout.lines if line.startswith(("PASSED swarm-", "FAILED swarm-"))}

    assert outcomes(parallel) == outcomes(serial) and len(outcomes(serial)) == 4
    assert len(stub.calls()) == 4 * 3
    parallel.stdout.fnmatch_lines(
        ["*swarm calibration*", "K=3 in force: 2 of 4 scored fixtures disagree with their label*"]
    )


# --- reports ------------------------------------------------------------------------------


def test_both_report_files_and_the_plot_are_written(pytester, stub, script) -> None:
    pytest.importorskip("matplotlib")
    script_small(script)
    out = pytester.path / "reports" / "cal"
    result = calibrate(
        pytester, small_corpus(pytester.path / "corpus"), "--swarm-voters=3", f"--swarm-calibration-report={out}"
    )
    result.stdout.fnmatch_lines([f"calibration report written: {out}.json, {out}.md, {out}.png"])
    data = json.loads(Path(f"{out}.json").read_text())
    assert data["report"]["n"] == 3 and data["k"] == 3
    votes = [Vote.from_dict(v) for f in data["fixtures"] for r in f["results"] for v in r["votes"]]
    assert len(votes) == 4 * 3
    # Every vote, nothing lost: the JSON holds exactly what the stub answered.
    assert sorted(v.verdict for v in votes) == sorted(
        ["UNSAFE"] * 3 + ["SAFE"] * 3 + ["SAFE"] * 3 + ["UNSAFE"] + ["SAFE"] * 2
    )
    assert all(v.usage.total > 0 and v.summary for v in votes)
    assert {f["fixture"]["id"]: f["agrees"] for f in data["fixtures"]} == {
        "diffs/caught.bad.diff": True,
        "diffs/clean.good.diff": True,
        "diffs/false-alarm.good.diff": False,
        "diffs/missed.bad.diff": False,
    }
    markdown = Path(f"{out}.md").read_text()
    assert "### Threshold K (N=3;" in markdown and "| K | scored | not scored | TP |" in markdown
    assert Path(f"{out}.png").read_bytes().startswith(b"\x89PNG")
    assert not list(out.parent.glob(".*tmp"))  # the atomic writes left nothing behind


def test_without_matplotlib_the_plot_is_skipped_with_one_line(pytester, stub, script) -> None:
    pytester.makeconftest("import sys\nsys.modules['matplotlib'] = None  # as if it were not installed\n")
    script_small(script)
    out = pytester.path / "cal"
    result = calibrate(
        pytester, small_corpus(pytester.path / "corpus"), "--swarm-voters=3", f"--swarm-calibration-report={out}"
    )
    result.stdout.fnmatch_lines(
        [
            f"calibration report written: {out}.json, {out}.md",
            "plot skipped: matplotlib is not installed; pip install 'pytest-swarmgate[[]plot]'",
        ]
    )
    assert Path(f"{out}.json").is_file() and Path(f"{out}.md").is_file()
    assert not Path(f"{out}.png").exists()


# --- corpora ------------------------------------------------------------------------------


def test_the_bundled_corpus_collects_without_calls(pytester, stub) -> None:
    result = calibrate(pytester, None, "--collect-only", "-q")
    assert result.ret == 0
    items = [line for line in result.stdout.lines if line.startswith("swarm-calibrate::diffs/")]
    assert len(items) >= 60
    assert "swarm-calibrate::diffs/sqli-orders-report.bad.diff" in items
    assert stub.requests == []


def test_a_relative_corpus_path_is_taken_from_the_invocation_directory(pytester, stub, script) -> None:
    script_small(script)
    small_corpus(pytester.path / "team-corpus")
    result = pytester.runpytest("--swarm-calibrate=team-corpus", "--swarm-voters=3", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)


def manifest_without_label(corpus: Path) -> None:
    data = json.loads((corpus / "manifest.json").read_text())
    del data["fixtures"][1]["expected"]
    (corpus / "manifest.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    "damage, message",
    [
        (manifest_without_label, "fixture 2 (diffs/clean.good.diff): missing label 'expected'"),
        (lambda c: (c / "diffs" / "missed.bad.diff").unlink(), "'diff' file diffs/missed.bad.diff does not exist"),
        (
            lambda c: (c / "diffs" / "extra.diff").write_text(query_diff("x.py", True)),
            "diffs/extra.diff has no manifest entry in",
        ),
        (lambda c: (c / "manifest.json").write_text("{"), "manifest.json: invalid JSON at line 1"),
        (
            lambda c: (c / "diffs" / "clean.good.diff").write_text("not a diff\n"),
            "diffs/clean.good.diff: input is not a unified diff",
        ),
    ],
    ids=["missing-label", "listed-file-missing", "unlisted-diff", "bad-json", "not-a-diff"],
)
def test_corpus_errors_are_one_line_usage_errors(pytester, stub, damage, message) -> None:
    corpus = small_corpus(pytester.path / "corpus")
    damage(corpus)
    assert_usage_error(calibrate(pytester, corpus), message)
    assert stub.requests == []


def test_a_missing_corpus_directory(pytester) -> None:
    assert_usage_error(calibrate(pytester, pytester.path / "nope"), "does not exist or is not a directory")


# --- the prompt ---------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [False, True], ids=["direct", "batch"])
def test_the_prompt_never_names_the_fixture_or_its_label(pytester, stub, script, monkeypatch, batch) -> None:
    monkeypatch.setenv("SWARMGATE_BATCH_POLL_SECONDS", "0.01")
    script_small(script)
    calibrate(
        pytester, small_corpus(pytester.path / "corpus"), "--swarm-voters=2", *(["--swarm-batch"] if batch else [])
    )
    calls = stub.calls()
    assert len(calls) == 4 * 2
    for call in calls:
        sent = json.dumps(call.body)
        for telling in (
            ".bad.diff",
            ".good.diff",
            "diffs/",
            "caught",
            "false-alarm",
            "whybadmarker",
            "category-zeta",
            '"expected"',
        ):
            assert telling not in sent, (telling, call.section)


# --- Message Batches ----------------------------------------------------------------------


def votes_by_fixture(path: Path) -> dict[str, list[tuple[str, str, str]]]:
    data = json.loads(path.read_text())
    return {
        f["fixture"]["id"]: [
            (r["section"]["id"], v["voter_id"], v["verdict"]) for r in f["results"] for v in r["votes"]
        ]
        for f in data["fixtures"]
    }


def test_batch_mode_gives_the_same_verdicts_through_the_batches_api(pytester, stub, script, monkeypatch) -> None:
    monkeypatch.setenv("SWARMGATE_BATCH_POLL_SECONDS", "0.01")
    script_small(script)
    corpus = small_corpus(pytester.path / "corpus")
    direct = calibrate(
        pytester,
        corpus,
        "--swarm-voters=3",
        "--swarm-no-cache",
        f"--swarm-calibration-report={pytester.path / 'direct'}",
    )
    stub.clear_log()
    batched = calibrate(
        pytester,
        corpus,
        "--swarm-voters=3",
        "--swarm-no-cache",
        "--swarm-batch",
        f"--swarm-calibration-report={pytester.path / 'batch'}",
    )

    assert batched.ret == direct.ret == pytest.ExitCode.TESTS_FAILED
    batched.assert_outcomes(passed=2, failed=2)
    assert votes_by_fixture(pytester.path / "batch.json") == votes_by_fixture(pytester.path / "direct.json")
    batch_report = json.loads((pytester.path / "batch.json").read_text())
    assert batch_report["report"]["cost"]["batch"] is True
    assert all(
        v["usage"]["output_tokens"] > 0 for f in batch_report["fixtures"] for r in f["results"] for v in r["votes"]
    )
    batched.stdout.fnmatch_lines(
        [
            "swarmgate: batch msgbatch_* created: 12 requests",
            "swarmgate: batch msgbatch_* in_progress: 0/12 done",
            "swarmgate: batch msgbatch_* ended: 12/12 done (12 succeeded, 0 errored, 0 canceled, 0 expired)",
        ]
    )
    batched.stdout.fnmatch_lines(["*12 calls through the Message Batches API*", "*with the 50% batch discount*"])
    paths = {r.path for r in stub.requests}
    assert "/v1/messages" not in paths
    creates = [
        r for r in stub.requests if r.method == "POST" and r.path == "/v1/messages/batches" and r.custom_id is None
    ]
    assert len(creates) == 1
    assert sorted(r["custom_id"] for r in creates[0].body["requests"]) == sorted(f"swarmgate-{i}" for i in range(12))
    assert len(stub.calls()) == 12


def test_batch_mode_serves_cached_votes_without_sending_them(pytester, stub, script, monkeypatch) -> None:
    monkeypatch.setenv("SWARMGATE_BATCH_POLL_SECONDS", "0.01")
    script_small(script)
    corpus = small_corpus(pytester.path / "corpus")
    calibrate(pytester, corpus, "--swarm-voters=3", "--swarm-batch")
    assert len(stub.calls()) == 12
    again = calibrate(pytester, corpus, "--swarm-voters=3", "--swarm-batch")
    again.assert_outcomes(passed=2, failed=2)
    assert len(stub.calls()) == 12, "the rerun sent requests"
    again.stdout.fnmatch_lines(["*0 calls through the Message Batches API, 12 votes from cache*"])


def test_batch_mode_drops_a_rejected_temperature_and_says_so(pytester, script, serve, monkeypatch) -> None:
    monkeypatch.setenv("SWARMGATE_BATCH_POLL_SECONDS", "0")
    server = serve(script_small(script), sampling="reject")
    out = pytester.path / "cal"
    result = calibrate(
        pytester,
        small_corpus(pytester.path / "corpus"),
        "--swarm-voters=2",
        "--swarm-threshold=1",
        "--swarm-temperatures=0.3",
        "--swarm-batch",
        f"--swarm-calibration-report={out}",
    )
    answered = [r for r in server.calls() if r.status == 200]
    # SDK version, then the legacy version, then no temperature: one batch per rung.
    result.stdout.fnmatch_lines(
        ["*created: 8 requests", "*created: 8 requests under anthropic-version 2023-06-01", "*created: 8 requests"]
    )
    assert len(answered) == 8 and not any(r.temperature_received for r in answered)
    votes = [
        Vote.from_dict(v)
        for f in json.loads(Path(f"{out}.json").read_text())["fixtures"]
        for r in f["results"]
        for v in r["votes"]
    ]
    assert {v.verdict for v in votes} <= {"SAFE", "UNSAFE"}
    assert all(v.settings.temperature is None for v in votes)
    assert all("temperature 0.3 requested, not applied" in v.settings.notes[0] for v in votes)


def test_batch_mode_applies_a_temperature_under_the_version_that_takes_it(pytester, script, serve, monkeypatch) -> None:
    monkeypatch.setenv("SWARMGATE_BATCH_POLL_SECONDS", "0")
    server = serve(script_small(script), sampling="legacy")
    result = calibrate(
        pytester,
        small_corpus(pytester.path / "corpus"),
        "--swarm-voters=1",
        "--swarm-threshold=1",
        "--swarm-temperatures=0.4",
        "--swarm-batch",
        "-rA",
        "-v",
    )
    answered = [r for r in server.calls() if r.status == 200]
    assert [(r.temperature, r.api_version) for r in answered] == [(0.4, "2023-06-01")] * 4
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*note: temperature 0.4 applied under anthropic-version 2023-06-01*"])


def test_batch_errors_are_error_votes(pytester, stub, script, monkeypatch) -> None:
    monkeypatch.setenv("SWARMGATE_BATCH_POLL_SECONDS", "0")
    script.on(voter="v2", reply=Reply.status(500, "api_error", "boom"))  # first match wins
    script_small(script)
    result = calibrate(
        pytester, small_corpus(pytester.path / "corpus"), "--swarm-voters=2", "--swarm-batch", "-rA", "-v"
    )
    # v2 erred everywhere: with K=2 of 2 no section can be SAFE. Where v1 said UNSAFE the panel
    # still decided (blocked); where v1 said SAFE it decided nothing: INCONCLUSIVE, not scored, and
    # the known-bad fixture the panel missed does not pass on v2's errors.
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*ended: 8/8 done (4 succeeded, 4 errored, 0 canceled, 0 expired)",
            "*v2 * ERROR * error: batch errored: api_error: boom*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "diffs/missed.bad.diff: expected UNSAFE, but the gate at K=2 of N=2 is INCONCLUSIVE: "
            "not scored (errors: INCONCLUSIVE at K=2, 1 of 2 votes were errors or missing*"
        ]
    )
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR, "half the corpus judged: no K can be recommended"


def test_batch_mode_refuses_a_custom_voter(pytester, stub) -> None:
    pytester.makeconftest(
        "import pytest\n"
        "@pytest.hookimpl(optionalhook=True)\n"
        "def pytest_swarmgate_make_voter(config, settings, client):\n"
        "    async def cast(section, voter, fence):\n"
        "        raise AssertionError('unused')\n"
        "    return cast\n"
    )
    result = calibrate(pytester, small_corpus(pytester.path / "corpus"), "--swarm-batch")
    assert_usage_error(result, "--swarm-batch sends the built-in voter's calls through the Message Batches API")


@pytest.mark.parametrize("mode", [(), ("--swarm-batch",)], ids=["direct", "batch"])
def test_missing_credentials_are_a_usage_error(pytester, stub, monkeypatch, mode) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    result = calibrate(pytester, small_corpus(pytester.path / "corpus"), *mode)
    assert_usage_error(result, "no Anthropic credentials")
    assert stub.requests == []


def test_a_bad_poll_interval_is_a_usage_error(pytester, monkeypatch) -> None:
    monkeypatch.setenv("SWARMGATE_BATCH_POLL_SECONDS", "soon")
    result = calibrate(pytester, small_corpus(pytester.path / "corpus"), "--swarm-batch")
    assert_usage_error(result, "SWARMGATE_BATCH_POLL_SECONDS: expected a number of seconds")


def test_batch_params_are_the_direct_call_without_its_sdk_options() -> None:
    direct = {
        "model": "m",
        "max_tokens": 5,
        "messages": [],
        "extra_body": {"temperature": 0.3},
        "extra_headers": {"anthropic-version": "2023-06-01"},
    }
    assert batch_params(direct) == {"model": "m", "max_tokens": 5, "messages": [], "temperature": 0.3}
    assert "extra_body" in direct  # the caller's dict is left alone


def test_poll_seconds() -> None:
    assert poll_seconds({}) == 30.0
    assert poll_seconds({"SWARMGATE_BATCH_POLL_SECONDS": "0.5"}) == 0.5
    for bad in ("-1", "nan", "inf", "soon"):
        with pytest.raises(ValueError, match="SWARMGATE_BATCH_POLL_SECONDS"):
            poll_seconds({"SWARMGATE_BATCH_POLL_SECONDS": bad})


def test_a_run_wide_fault_stops_calibration_with_the_review_incomplete_code(pytester, serve) -> None:
    stub = serve(revoke_key_after=0)  # every message call is rejected: a key revoked before the run
    result = calibrate(pytester, small_corpus(pytester.path / "corpus"), "--swarm-concurrency=1")
    assert result.ret == 78, "a rejected key needs a person: EX_CONFIG, as in a review"
    assert "calibration review stopped: HTTP 401 authentication_error: invalid x-api-key (1 of " in result.stdout.str()
    assert [r.status for r in stub.requests if r.path == "/v1/messages"] == [401]  # then no more calls


# --- fixtures with a base tree: the context decides ---------------------------------------

VIEWS = 'from app.store import lookup\n\n\ndef show(db, request):\n    return "ok"\n'
# The diff is the same for both twins: only the helper it calls, in the tree, tells them apart.
CALLER_DIFF = (
    "diff --git a/app/views.py b/app/views.py\nindex 1111111..2222222 100644\n--- a/app/views.py\n+++ b/app/views.py\n"
    '@@ -2,4 +2,4 @@ from app.store import lookup\n \n \n def show(db, request):\n-    return "ok"\n'
    '+    return lookup(db, request.args["name"])\n'
)
STORES = {
    "bad": 'def lookup(db, name):\n    return db.execute("SELECT * FROM users WHERE name = \'" + name + "\'")\n',
    "good": 'def lookup(db, name):\n    return db.execute("SELECT * FROM users WHERE name = ?", (name,))\n',
}


def tree_corpus(directory: Path) -> Path:
    """One pair whose diff is identical; each twin's tree holds the helper the diff calls."""
    for label, store in STORES.items():
        (directory / "trees" / f"lookup-{label}" / "app").mkdir(parents=True)
        (directory / "trees" / f"lookup-{label}" / "app" / "views.py").write_text(VIEWS)
        (directory / "trees" / f"lookup-{label}" / "app" / "store.py").write_text(store)
    bad = fixture("lookup", "app/views.py", "UNSAFE", text=CALLER_DIFF, tree="trees/lookup-bad")
    bad["flaw"] = {"path": "app/views.py", "line": 5}
    good = fixture("lookup", "app/views.py", "SAFE", text=CALLER_DIFF, tree="trees/lookup-good")
    return write_corpus(directory, [bad, good])


def test_a_fixture_with_a_tree_is_judged_with_the_code_it_calls(pytester, stub, script) -> None:
    """Issue 19: a voter that sees only the hunk cannot tell these twins apart; with the tree it can."""
    script.on_prompt("+ name +", reply=Reply.verdict("UNSAFE", findings=[unsafe_finding("app/views.py", 5)]))
    corpus = tree_corpus(pytester.path / "corpus")
    with_context = calibrate(pytester, corpus, "--swarm-voters=3", "--swarm-threshold=2", "-v")
    with_context.assert_outcomes(passed=2)
    blind = calibrate(pytester, corpus, "--swarm-voters=3", "--swarm-threshold=2", "--swarm-context=off", "-v")
    blind.assert_outcomes(passed=1, failed=1)  # the known-bad twin is missed without its tree
    sent = [json.dumps(c.body) for c in stub.calls()]
    assert sum("+ name +" in s for s in sent) == 3, "each voter of the bad twin read its tree"
    assert sum("base tree" in s for s in sent) == 6
    # The prompt never names the tree: its name, like the fixture's, may carry the label.
    assert not any("lookup-" in s or "trees/" in s or "corpus" in s for s in sent)


def test_a_calibration_that_finds_nothing_recommends_no_k_and_fails(pytester, monkeypatch) -> None:
    """The issue's run: the bundled corpus against the stub's command line started without --unsafe.

    Every vote is SAFE, so recall is 0 at every K: no K is recommended, one line says why (the stub
    says SAFE unless told otherwise), and the run fails with 1, the code of a gate that misses."""
    from conftest import StubProcess

    with StubProcess() as stub:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", stub.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "stub")
        out = pytester.path / "calibration"
        result = calibrate(pytester, None, "-k", "sqli", f"--swarm-calibration-report={out}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    line = (
        "no K flags any known-bad fixture at FPR <= 5%: the panel found nothing (run against the bundled stub, "
        "that is expected: it answers SAFE unless started with --unsafe GLOB, --unsafe-if TEXT or --script FILE)"
    )
    result.stdout.fnmatch_lines(["*= swarm calibration =*", line, f"swarmgate: calibration failed: {line}"])
    assert "recommended K=" not in result.stdout.str()
    report = json.loads(out.with_suffix(".json").read_text())["report"]
    assert report["recommended_k"] is None and report["found_nothing"] and report["judged_enough"]
    assert all(row["tp"] == 0 for row in report["rows"]) and report["bad"] > 0
    assert line in out.with_suffix(".md").read_text()


def test_a_batch_is_bounded_only_by_a_deadline_the_job_gives(pytester, serve, script, monkeypatch) -> None:
    """A batch takes minutes to hours: the default --swarm-deadline (20 minutes) does not cut it, a
    typed one does, and the calibration then stops as a review would (exit 75, not a verdict)."""
    monkeypatch.setenv("SWARMGATE_BATCH_POLL_SECONDS", "0.2")
    script_small(script)
    serve(script, batch_polls_before_done=1000)  # the batch never ends within the test
    corpus = small_corpus(pytester.path / "corpus")
    result = calibrate(pytester, corpus, "--swarm-voters=2", "--swarm-batch", "--swarm-deadline=2", "--swarm-no-cache")
    assert result.ret == REVIEW_INCOMPLETE, result.stdout.str()
    result.stdout.fnmatch_lines(["*--swarm-deadline=2 reached (calls still running were cancelled)*"])
