"""Calibration: metrics per K, per voter, per category, agreement and cost; the report's tables and plot."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import pytest

from pytest_swarmgate.core.calibration import CalibrationReport, FixtureVotes, calibrate, fixture_flagged, not_scored
from pytest_swarmgate.core.corpus import Fixture
from pytest_swarmgate.core.gate import Gate
from pytest_swarmgate.core.pricing import PRICES, price_for
from pytest_swarmgate.model import Finding, NotReviewed, Usage, Vote
from pytest_swarmgate.output.calibration import render_markdown, render_text
from pytest_swarmgate.output.plot import plot_k_curve

MODEL = "claude-sonnet-4-5"


def fixture(
    fid: str,
    expected: Literal["SAFE", "UNSAFE"] = "UNSAFE",
    category: str = "sqli",
    flaw: tuple[str, int | None] | None = None,
) -> Fixture:
    return Fixture(
        id=fid,
        diff_path=Path(fid),
        expected=expected,
        category=category,
        cwe=None,
        flaw_path=flaw[0] if flaw else None,
        flaw_line=flaw[1] if flaw else None,
        why="",
        adversarial=False,
        language=None,
    )


def vote(
    voter: str,
    verdict: str,
    section: str = "s1",
    model: str = MODEL,
    findings: Iterable[Finding] = (),
    usage: Usage | None = None,
) -> Vote:
    return Vote(
        section_id=section,
        voter_id=voter,
        model=model,
        verdict=verdict,  # type: ignore[arg-type]
        findings=tuple(findings),
        usage=usage or Usage(),
    )


def finding(path: str, line: int | None) -> Finding:
    return Finding(path=path, line=line, severity="high", category="sqli", title="t", rationale="r")


def panel(fx: Fixture, verdicts: Sequence[str], section: str = "s1") -> FixtureVotes:
    """A single-section fixture where voter v{i} cast verdicts[i]."""
    return FixtureVotes(fx, ((section, tuple(vote(f"v{i}", v, section) for i, v in enumerate(verdicts))),))


def flip(label: str) -> str:
    return "SAFE" if label == "UNSAFE" else "UNSAFE"


# --- the key test: independent voters match the binomial prediction ------------------------

N, P, M = 5, 0.8, 2000


def binomial_tail(n: int, p: float, at_least: int) -> float:
    """P(Binomial(n, p) >= at_least)."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(at_least, n + 1))


def tolerance(q: float, m: int) -> float:
    """4 standard errors sqrt(q(1-q)/m) of a proportion q measured over m fixtures, plus 2/m.

    The 2/m (two fixtures) covers the tails, where counts are tiny and the normal
    approximation is poor: at K=N recall is 0.99968, so 2000 bad fixtures expect 0.64
    misses, and 4 standard errors alone would fail on 4 misses (p ~ 0.5%).
    """
    return 4 * math.sqrt(q * (1 - q) / m) + 2 / m


def independent_corpus(seed: int, m: int, copies: bool = False) -> list[FixtureVotes]:
    """m bad + m good single-section fixtures; each voter right with probability P.

    With copies=True one draw per fixture is copied to every voter (a panel of clones).
    """
    rng = random.Random(seed)
    out = []
    for label in ("UNSAFE", "SAFE"):
        for i in range(m):
            fx = fixture(f"{label.lower()}/{i:05d}.diff", label, category="bad" if label == "UNSAFE" else "good")
            if copies:
                verdicts = [label if rng.random() < P else flip(label)] * N
            else:
                verdicts = [label if rng.random() < P else flip(label) for _ in range(N)]
            out.append(panel(fx, verdicts))
    return out


@pytest.fixture(scope="module")
def independent_report() -> CalibrationReport:
    return calibrate(independent_corpus(seed=20240601, m=M), N)


@pytest.mark.parametrize("k", range(1, N + 1))
def test_recall_and_fpr_match_binomial_prediction(independent_report: CalibrationReport, k: int) -> None:
    # The section is UNSAFE when UNSAFE votes > N-K, i.e. at least N-K+1 of them.
    row = independent_report.row(k)
    want_recall = binomial_tail(N, P, N - k + 1)
    want_fpr = binomial_tail(N, 1 - P, N - k + 1)
    assert row.tp + row.fn == M and row.fp + row.tn == M
    assert row.recall is not None and row.fpr is not None
    assert abs(row.recall - want_recall) <= tolerance(want_recall, M), (k, row.recall, want_recall)
    assert abs(row.fpr - want_fpr) <= tolerance(want_fpr, M), (k, row.fpr, want_fpr)
    assert row.score == pytest.approx(row.recall - row.fpr)


def test_independent_voters_rates_and_kappa(independent_report: CalibrationReport) -> None:
    report = independent_report
    assert [v.voter_id for v in report.voters] == [f"v{i}" for i in range(N)]
    for v in report.voters:
        assert v.tpr is not None and abs(v.tpr - P) <= tolerance(P, M)
        assert v.fpr is not None and abs(v.fpr - (1 - P)) <= tolerance(1 - P, M)
        assert v.errors == 0 and v.excluded == 0
    agreement = report.agreement
    assert len(agreement.pairs) == N * (N - 1) // 2
    # Two independent voters agree when both are right or both wrong: p^2 + (1-p)^2.
    assert agreement.mean == pytest.approx(P**2 + (1 - P) ** 2, abs=0.02)
    assert agreement.kappa is not None and abs(agreement.kappa) < 0.05
    assert agreement.kappa_fixtures == 2 * M
    assert agreement.warning is None


def test_recommended_k_is_highest_recall_within_target_fpr(independent_report: CalibrationReport) -> None:
    # Flags only grow with K, so the best qualifying K is the largest with FPR <= 5%.
    report = independent_report
    qualifying = [r.k for r in report.rows if r.fpr is not None and r.fpr <= 0.05]
    assert report.recommended_k == max(qualifying)
    assert report.recommendation.startswith(f"recommended K={report.recommended_k}: recall")
    assert report.category_k == report.recommended_k
    assert {c.category for c in report.categories} == {"bad", "good"}


def test_cloned_voters_trigger_independence_warning() -> None:
    report = calibrate(independent_corpus(seed=7, m=200, copies=True), N)
    assert report.agreement.mean == 1.0
    assert report.agreement.kappa == pytest.approx(1.0)
    assert report.agreement.warning is not None and "not independent" in report.agreement.warning
    assert "WARNING: voters are not independent" in render_text(report)


# --- edge cases --------------------------------------------------------------------------


def test_error_votes_are_inconclusive_flagged_under_fail_only() -> None:
    # N=3, K=2: one SAFE and two ERROR keep both SAFE (needs 2) and UNSAFE (needs 2) out of reach.
    fv = panel(fixture("bad.diff"), ["SAFE", "ERROR", "ERROR"])
    assert fixture_flagged(fv, Gate(3, 2, "fail")) is True
    assert fixture_flagged(fv, Gate(3, 2, "pass")) is False
    assert fixture_flagged(fv, Gate(3, 2, "warn")) is False
    assert fixture_flagged(fv, Gate(3, 1, "fail")) is False  # K=1: one SAFE vote is enough
    fail = calibrate([fv], 3)
    passing = calibrate([fv], 3, on_inconclusive="pass")
    # The gate blocks it at K=2 and 3 under "fail", but the panel judged nothing there: not scored,
    # whatever the policy, so the errors neither catch the flaw nor miss it.
    for report in (fail, passing):
        assert [(r.tp, r.fn, r.not_scored) for r in report.rows] == [(0, 1, 0), (0, 0, 1), (0, 0, 1)]
    v1 = fail.voters[1]
    assert (v1.errors, v1.excluded, v1.tpr) == (1, 1, None)
    assert fail.voters[0].tpr == 0.0


def test_multi_section_fixture_flagged_when_any_section_unsafe() -> None:
    fx = fixture("multi.diff")
    sections = (
        ("a.py", tuple(vote(f"v{i}", "SAFE", "a.py") for i in range(3))),
        ("b.py", tuple(vote(f"v{i}", "UNSAFE" if i == 0 else "SAFE", "b.py") for i in range(3))),
    )
    report = calibrate([FixtureVotes(fx, sections)], 3)
    # One UNSAFE vote of three makes b.py UNSAFE only at K=3 (UNSAFE > N-K = 0).
    assert [r.tp for r in report.rows] == [0, 0, 1]
    assert [v.tp for v in report.voters] == [1, 0, 0]


def test_missing_vote_excludes_fixture_from_that_voter() -> None:
    fx = fixture("bad.diff")
    fv = FixtureVotes(fx, (("s1", (vote("v0", "UNSAFE"), vote("v1", "UNSAFE"))), ("s2", (vote("v0", "UNSAFE", "s2"),))))
    report = calibrate([fv], 2)
    assert [(v.voter_id, v.excluded, v.tpr) for v in report.voters] == [("v0", 0, 1.0), ("v1", 1, None)]
    assert report.agreement.pairs[0].fixtures == 0
    assert report.agreement.kappa is None


def test_no_k_meets_target_fpr() -> None:
    data = [panel(fixture("good.diff", "SAFE"), ["UNSAFE"] * 3), panel(fixture("bad.diff"), ["UNSAFE"] * 3)]
    report = calibrate(data, 3)
    assert all(r.fpr == 1.0 for r in report.rows)
    assert report.recommended_k is None
    assert report.recommendation.startswith("no K meets FPR <= 5.0%")
    assert report.category_k == 3
    assert "no K meets FPR <= 5.0%" in render_text(report)


def test_no_safe_fixture_means_no_recommendation() -> None:
    report = calibrate([panel(fixture("bad.diff"), ["UNSAFE"] * 3)], 3)
    assert report.recommended_k is None
    assert "no SAFE fixture" in report.recommendation
    assert report.row(1).fpr is None and report.row(1).score is None


def test_ties_prefer_lower_fpr_then_larger_k() -> None:
    # Recall is 1 at every K; FPR is 0 at K=1,2 and 1/2 at K=3: K=2 wins (tie on both -> larger K).
    data = [
        panel(fixture("bad.diff"), ["UNSAFE"] * 3),
        panel(fixture("good1.diff", "SAFE"), ["SAFE", "SAFE", "UNSAFE"]),
        panel(fixture("good2.diff", "SAFE"), ["SAFE"] * 3),
    ]
    report = calibrate(data, 3)
    assert [r.recall for r in report.rows] == [1.0, 1.0, 1.0]
    assert [r.fpr for r in report.rows] == [0.0, 0.0, 0.5]
    assert report.recommended_k == 2


def test_precision_none_when_nothing_flagged() -> None:
    data = [panel(fixture("bad.diff"), ["SAFE"] * 3), panel(fixture("good.diff", "SAFE"), ["SAFE"] * 3)]
    report = calibrate(data, 3)
    assert all(r.precision is None for r in report.rows)
    assert all(r.recall == 0.0 and r.fpr == 0.0 for r in report.rows)
    # Nothing is caught anywhere: recall 0 at every K is no gate, so no K is recommended.
    assert report.recommended_k is None and report.found_nothing and report.judged_enough
    assert report.recommendation == (
        "no K flags any known-bad fixture at FPR <= 5%: the panel found nothing (run against the bundled stub, "
        "that is expected: it answers SAFE unless started with --unsafe GLOB, --unsafe-if TEXT or --script FILE)"
    )
    assert report.to_dict()["found_nothing"] is True
    assert report.recommendation in render_text(report).splitlines()


def test_found_nothing_looks_only_at_the_k_within_the_target_fpr() -> None:
    """K=3 catches the known-bad fixture, but only with a false alarm: within 2.5% FPR nothing is caught."""
    data = [
        panel(fixture("bad.diff"), ["SAFE", "SAFE", "UNSAFE"]),
        panel(fixture("good.diff", "SAFE"), ["SAFE", "SAFE", "UNSAFE"]),
    ]
    data += [panel(fixture(f"good{i}.diff", "SAFE"), ["SAFE"] * 3) for i in range(3)]
    report = calibrate(data, 3, target_fpr=0.025)
    assert [r.tp for r in report.rows] == [0, 0, 1] and report.row(3).fpr == 0.25
    assert report.found_nothing and report.recommended_k is None
    assert report.recommendation.startswith("no K flags any known-bad fixture at FPR <= 2.5%: the panel found nothing")
    caught = calibrate(data, 3, target_fpr=0.25)
    assert not caught.found_nothing and caught.recommended_k == 3
    # Without a known-bad fixture recall is unmeasured, not zero: that is not "found nothing".
    assert not calibrate(data[1:], 3).found_nothing


def test_line_accuracy_counts_flagging_voters_within_three_lines() -> None:
    flaw = ("app/x.py", 42)
    fx = fixture("bad.diff", flaw=flaw)
    votes_s1 = (
        vote("v0", "UNSAFE", findings=[finding("app/x.py", 45)]),  # hit: 3 lines away
        vote("v1", "UNSAFE", findings=[finding("app/x.py", 46)]),  # miss: 4 lines away
        vote("v2", "UNSAFE", findings=[finding("app/y.py", 42)]),  # miss: wrong file
        vote("v3", "SAFE", findings=[finding("app/x.py", 42)]),  # not counted: did not flag
        vote("v4", "UNSAFE", findings=[finding("./app/x.py", 39)]),  # hit: './' is the same file
    )
    votes_s2 = (vote("v4", "UNSAFE", "s2"),)  # v4 flags twice, still one chance for one flaw
    no_line = panel(fixture("noline.diff", flaw=("app/z.py", None)), ["UNSAFE"] * 5)
    good = panel(fixture("good.diff", "SAFE"), ["UNSAFE"] * 5)
    report = calibrate([FixtureVotes(fx, (("s1", votes_s1), ("s2", votes_s2))), no_line, good], 5)
    la = report.line_accuracy
    assert (la.hits, la.total, la.tolerance) == (2, 4, 3)
    assert la.accuracy == 0.5
    assert "line accuracy: 50.0% (2/4" in render_text(report)


def test_line_accuracy_none_without_flaw_lines() -> None:
    report = calibrate([panel(fixture("bad.diff"), ["UNSAFE"])], 1)
    assert report.line_accuracy.accuracy is None


def test_cost_list_prices_batch_and_unknown_model() -> None:
    million = Usage(input_tokens=10**6, output_tokens=10**6, cache_read_tokens=10**6, cache_write_tokens=10**6)
    fv = FixtureVotes(
        fixture("bad.diff"), (("s1", (vote("v0", "UNSAFE", usage=million), vote("v1", "SAFE", usage=million))),)
    )
    full = calibrate([fv], 2).cost
    assert full.usage == million + million
    assert full.usd == pytest.approx(2 * (3.00 + 15.00 + 3.75 + 0.30))
    half = calibrate([fv], 2, batch=True).cost
    assert full.usd is not None and half.usd == pytest.approx(full.usd / 2)
    assert "batch" in half.note
    custom = calibrate([fv], 2, prices={"sonnet": (1.0, 1.0, 1.0, 1.0)}).cost
    assert custom.usd == pytest.approx(8.0)

    other = FixtureVotes(
        fixture("bad.diff"),
        (("s1", (vote("v0", "UNSAFE", model="mystery-7b", usage=million), vote("v1", "SAFE", usage=million))),),
    )
    unknown = calibrate([other], 2)
    assert unknown.cost.usd is None
    assert "no list price known for model mystery-7b" in unknown.cost.note
    assert "cost unknown" in render_text(unknown)
    assert unknown.cost.usage.total == 8 * 10**6


def test_price_lookup_longest_match_wins() -> None:
    assert price_for("claude-opus-4-1-20250805") == PRICES["claude-opus-4-1"]
    assert price_for("claude-opus-4-5") == PRICES["opus"]
    assert price_for("Claude-Haiku-4-5") == PRICES["haiku"]
    assert price_for("gpt-4o") is None


def test_renderers_show_every_k_row_and_sections() -> None:
    data = [
        panel(fixture("bad.diff"), ["UNSAFE", "UNSAFE", "SAFE"]),
        panel(fixture("good.diff", "SAFE", category="xss"), ["SAFE", "SAFE", "UNSAFE"]),
    ]
    report = calibrate(data, 3)
    text = render_text(report)
    lines = text.splitlines()
    header = next(line for line in lines if line.split()[:2] == ["K", "scored"])
    assert header.split() == [
        "K",
        "scored",
        "not",
        "scored",
        "TP",
        "FN",
        "FP",
        "TN",
        "recall",
        "FPR",
        "precision",
        "score",
    ]
    k_rows = [line.split() for line in lines[lines.index(header) + 1 :][:3]]
    assert [r[0] for r in k_rows] == ["1", "2", "3"]
    assert k_rows[1] == ["2", "2", "0", "1", "0", "0", "1", "100.0%", "0.0%", "100.0%", "1.000"]
    for needle in ("recommended K=2", "Voters", "Categories at K=2", "mean pairwise agreement", "tokens:"):
        assert needle in text
    md = render_markdown(report)
    assert "| K | scored | not scored | TP | FN | FP | TN | recall | FPR | precision | score |" in md
    assert "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" in md
    assert "| 2 | 2 | 0 | 1 | 0 | 0 | 1 | 100.0% | 0.0% | 100.0% | 1.000 |" in md
    assert "| sqli | 1 | 1 | 100.0% | 0 | 0 | - | 0 |" in md
    assert "### Voters" in md


def test_to_dict_is_json_safe() -> None:
    report = calibrate(independent_corpus(seed=3, m=20), N)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["n"] == N and len(d["rows"]) == N and d["fixtures"] == 40
    assert set(d["rows"][0]) >= {"k", "tp", "fn", "fp", "tn", "recall", "fpr", "precision", "score"}
    assert d["agreement"]["kappa"] == report.agreement.kappa


def test_perfect_voters_kappa_undefined_agreement_warns() -> None:
    data = [panel(fixture("bad.diff"), ["UNSAFE"] * 3), panel(fixture("good.diff", "SAFE"), ["SAFE"] * 3)]
    agreement = calibrate(data, 3).agreement
    assert agreement.kappa is None
    assert agreement.mean == 1.0
    assert agreement.warning is not None and "agree on 100.0%" in agreement.warning


@pytest.mark.parametrize(
    ("data", "n", "kwargs", "message"),
    [
        ([], 0, {}, "at least one voter"),
        ([], 3, {"target_fpr": 1.5}, "target FPR"),
        ([], 3, {"on_inconclusive": "maybe"}, "on_inconclusive"),
        ([FixtureVotes(fixture("a.diff"), (("s1", (vote("v0", "SAFE"), vote("v0", "SAFE"))),))], 3, {}, "twice"),
        ([panel(fixture("a.diff"), ["SAFE"] * 4)], 3, {}, "exceed N=3"),
        ([panel(fixture("a.diff"), ["SAFE"]), panel(fixture("a.diff"), ["SAFE"])], 3, {}, "appears twice"),
    ],
)
def test_invalid_input(data: list[FixtureVotes], n: int, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        calibrate(data, n, **kwargs)


def test_too_many_distinct_voters() -> None:
    data = [
        panel(fixture("a.diff"), ["SAFE", "SAFE"]),
        FixtureVotes(fixture("b.diff"), (("s1", (vote("v9", "SAFE"),)),)),
    ]
    with pytest.raises(ValueError, match="3 distinct voters exceed a panel of N=2"):
        calibrate(data, 2)


# --- plotting ----------------------------------------------------------------------------


def test_plot_writes_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    report = calibrate(independent_corpus(seed=5, m=30), N)
    out = tmp_path / "k.png"
    assert plot_k_curve(report, out) is True
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_returns_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    report = calibrate([panel(fixture("bad.diff"), ["UNSAFE"])], 1)
    out = tmp_path / "k.png"
    assert plot_k_curve(report, out) is False
    assert not out.exists()


# --- only what was judged is scored ----------------------------------------------------


def test_an_all_error_corpus_scores_nothing_and_recommends_no_k() -> None:
    """The issue's run: every vote an ERROR must not read as 100% recall and 100% FPR."""
    data = [panel(fixture(f"bad{i}.diff"), ["ERROR"] * 3) for i in range(3)]
    data += [panel(fixture(f"good{i}.diff", "SAFE", category="xss"), ["ERROR"] * 3) for i in range(2)]
    report = calibrate(data, 3)
    assert all((r.scored, r.not_scored, r.recall, r.fpr, r.precision) == (0, 5, None, None, None) for r in report.rows)
    assert not report.judged_enough and report.recommended_k is None
    assert report.recommendation.startswith("no K can be recommended: at most 0 of 5 fixtures (0%) were judged")
    assert "under the 80% needed" in report.recommendation and "5 errors" in report.recommendation
    assert [(c.category, c.bad, c.tp, c.good, c.fp, c.not_scored) for c in report.categories] == [
        ("sqli", 0, 0, 0, 0, 3),
        ("xss", 0, 0, 0, 0, 2),
    ]
    assert [x.fixture_id for x in report.not_scored] == [
        "bad0.diff",
        "bad1.diff",
        "bad2.diff",
        "good0.diff",
        "good1.diff",
    ]
    assert all(x.kind == "errors" for x in report.not_scored)
    assert all(x.reason.startswith("errors: INCONCLUSIVE at K=3, 3 of 3 votes") for x in report.not_scored)
    assert [(v.tp, v.fn, v.fp, v.tn, v.errors, v.excluded) for v in report.voters] == [(0, 0, 0, 0, 5, 5)] * 3
    assert report.agreement.pairs[0].fixtures == 0 and report.agreement.kappa is None
    text = render_text(report)
    assert "Not scored at K=3 (5 of 5 fixtures" in text and "caught 100%" not in text and "100.0%" not in text


def test_a_fixture_with_nothing_reviewed_is_never_a_voters_tn_or_an_agreement() -> None:
    """--swarm-include leaving most fixtures empty: they are excluded, not 100% agreement."""
    judged = [panel(fixture("bad.diff"), ["UNSAFE"] * 3), panel(fixture("good.diff", "SAFE"), ["SAFE"] * 3)]
    unmatched = NotReviewed("app.py", "not matched by any include glob", kind="excluded")
    empty = [FixtureVotes(fixture(f"e{i}.diff", "SAFE"), (), (unmatched,)) for i in range(8)]
    media = FixtureVotes(fixture("m.diff"), (), (NotReviewed("logo.bin", "binary file", kind="binary"),))
    report = calibrate([*judged, *empty, media], 3)
    assert [(r.scored, r.not_scored) for r in report.rows] == [(2, 9)] * 3
    assert report.recommended_k is None and "at most 2 of 11 fixtures (18%)" in report.recommendation
    assert "8 excluded" in report.recommendation and "1 nothing reviewed" in report.recommendation
    assert [(v.tp + v.fn + v.fp + v.tn, v.excluded) for v in report.voters] == [(2, 9)] * 3
    assert all(p.fixtures == 2 for p in report.agreement.pairs) and report.agreement.kappa_fixtures == 2
    why = {x.fixture_id: (x.kind, x.reason) for x in report.not_scored}
    assert why["e0.diff"] == ("excluded", "excluded: not matched by any include glob")
    assert why["m.diff"] == ("nothing_reviewed", "nothing reviewed (binary file)")


def test_only_the_runs_globs_make_a_fixture_excluded_whatever_a_reason_says() -> None:
    """The kind decides: a filter hook's reason worded like a glob's is still 'nothing reviewed'."""
    hook = NotReviewed("app.py", "excluded by exclude glob 'app.py'", kind="configured")
    glob = NotReviewed("app.py", "dropped", kind="excluded")
    by_hook, by_glob = (not_scored(FixtureVotes(fixture("a.diff"), (), (nr,)), Gate(3, 2)) for nr in (hook, glob))
    assert by_hook is not None and by_hook.kind == "nothing_reviewed"
    assert by_hook.reason == "nothing reviewed (excluded by exclude glob 'app.py')"
    assert by_glob is not None and (by_glob.kind, by_glob.reason) == ("excluded", "excluded: dropped")


def test_enough_scored_fixtures_recommend_over_the_scored_ones_with_their_count() -> None:
    data = [panel(fixture(f"bad{i}.diff"), ["UNSAFE"] * 3) for i in range(4)]
    data += [panel(fixture(f"good{i}.diff", "SAFE"), ["SAFE"] * 3) for i in range(4)]
    data += [panel(fixture("err.diff"), ["ERROR"] * 3)]
    report = calibrate(data, 3)
    assert report.judged_enough and report.recommended_k == 3
    assert report.recommendation == (
        "recommended K=3: recall 100.0% at FPR 0.0% over 8 scored fixtures (target FPR <= 5.0%)"
    )
    assert calibrate(data, 3, min_scored=0.95).recommended_k is None


def test_an_unsafe_section_decides_a_fixture_whatever_errors_leave_open() -> None:
    fx = fixture("multi.diff")
    sections = (
        ("a.py", tuple(vote(f"v{i}", "ERROR", "a.py") for i in range(3))),
        ("b.py", tuple(vote(f"v{i}", "UNSAFE", "b.py") for i in range(3))),
    )
    report = calibrate([FixtureVotes(fx, sections)], 3)
    assert [(r.tp, r.not_scored) for r in report.rows] == [(1, 0)] * 3


def test_voters_are_credited_to_the_model_that_answered() -> None:
    votes = panel(fixture("bad.diff"), ["UNSAFE"] * 2).votes()
    swapped = [dataclasses.replace(v, answered_model="smol") for v in votes]
    fv = FixtureVotes(fixture("bad.diff"), (("s1", tuple(swapped)),))
    report = calibrate([fv], 2)
    assert {v.model for v in report.voters} == {"smol"}
    assert report.cost.usd is None and "no list price known for model smol" in report.cost.note
