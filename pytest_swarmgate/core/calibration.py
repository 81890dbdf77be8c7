"""Calibration: score the gate on labeled fixture diffs so a team can choose N and K from data.

Pure: no I/O, no pytest, no anthropic (`output/calibration.py` renders the report,
`output/plot.py` draws its K curve). The input is, for each fixture of a corpus
(`corpus.Fixture`), the votes the panel of N voters cast on each of its sections. Everything
below is computed from those same votes - no extra calls per K.

Semantics
---------
Flagged fixture.
    At threshold K a fixture is *flagged* when the gate would block it: some section's
    outcome (`Gate.outcome` over that section's votes, N = panel size) is UNSAFE, or is
    INCONCLUSIVE and the gate's INCONCLUSIVE policy fails it (the default). This is exactly
    `not Gate.sections_pass(...)`. A fixture with no sections is never flagged.

Scored fixture.
    Only what the panel judged is scored. At threshold K a fixture is *scored* when its
    sections have enough valid votes to decide at that K: some section is UNSAFE (the fixture
    is blocked whatever the others say), or every section is SAFE. A fixture with a section
    left INCONCLUSIVE (errors kept both SAFE and UNSAFE out of reach), or with no section
    reviewed at all (media only, or every file excluded by the run's globs), is *not scored*
    at that K, with the reason; counting it either way would invent a verdict - an all-error
    run would read as 100% recall. Every rate below is over scored fixtures only, each table
    with its count. When no K scores at least `min_scored` (80%) of the fixtures run, no K
    is recommended, and the report says why.

Per K, for K = 1..N.
    TP / FN over scored fixtures labeled UNSAFE, FP / TN over scored fixtures labeled SAFE.
    recall (TPR) = TP/(TP+FN), FPR = FP/(FP+TN), precision = TP/(TP+FP) (None when nothing
    was flagged), score = TPR - FPR (the OWASP Benchmark score). A rate whose denominator is
    empty is None. A larger K flags more: a SAFE outcome needs more SAFE votes, so recall
    and FPR both grow (weakly) with K.

Recommended K.
    Among the K that score at least `min_scored` of the fixtures and whose FPR <= target_fpr,
    the one with the highest recall; ties go to the lower FPR (which, as flags grow with K, is
    the smaller K); if recall and FPR both tie, to the larger K - the corpus cannot tell them
    apart and a security gate prefers the more sensitive threshold. None, with the statement
    "no K meets FPR <= 5.0%", when no K
    qualifies, and None when the corpus has no SAFE fixture (FPR unmeasurable). None too when
    the best of them catches nothing (recall 0 with known-bad fixtures scored): a K that flags
    no known-bad fixture is no gate, and recommending it would read as a result. The report
    says so in one line (`found_nothing`), with the usual cause when it was run against the
    bundled stub, and the calibration run fails.

Per voter.
    A voter flags a fixture when it voted UNSAFE on any of its sections. A fixture on which
    the voter cast an ERROR (or no vote) on any section, or that has no reviewed section, is
    excluded from that voter's rates: its answer there is unknown, and counting it either way
    would bias TPR or FPR. A voter's model is the one that answered (the reply's `model`).
    ERROR votes are counted separately.

Per category.
    Recall (and FPR) over the fixtures scored at the recommended K, or at K = N when there is
    none; the fixtures not scored there are listed with their reasons.

Agreement.
    Over each voter's per-fixture flags: pairwise, mean, and within-label Fleiss' kappa, with
    a warning when the voters behave like one (see `agreement.py`).

Line accuracy.
    Over known-bad fixtures whose flaw has a line: of the voters that flagged the fixture,
    the fraction whose UNSAFE votes carry a finding at the flaw's path within 3 lines of
    it. Counted per (voter, fixture), not per section vote, so a multi-section fixture
    gives each voter one chance, as its single flaw deserves.

Tokens and cost.
    Usage summed over every vote, priced by `pricing.cost_of`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .agreement import EPS, Agreement, agreement
from .choices import InconclusivePolicy, NotScoredKind
from .corpus import Fixture
from .decision import sections_pass
from .gate import Gate
from .model import NotReviewed, SectionResult, Vote
from .pricing import Cost, Price, cost_of
from .text import percent
from .voting import count

DEFAULT_TARGET_FPR = 0.05
# Why a calibration against the bundled stub finds nothing: the plugin cannot tell the stub from
# a real endpoint, so the one line says it to everyone (the flags are the stub's, testing/__main__.py).
STUB_FINDS_NOTHING = (
    "run against the bundled stub, that is expected: it answers SAFE unless started with "
    "--unsafe GLOB, --unsafe-if TEXT or --script FILE"
)
# Below this share of scored fixtures, a K's rates describe too little of the corpus to choose by.
DEFAULT_MIN_SCORED = 0.8
LINE_TOLERANCE = 3


@dataclass(frozen=True)
class FixtureVotes:
    """One fixture and the votes the panel cast on each of its sections."""

    fixture: Fixture
    sections: tuple[tuple[str, tuple[Vote, ...]], ...]
    # The fixture's files not sent to the panel: their kinds say why a fixture with no section
    # was not scored.
    not_reviewed: tuple[NotReviewed, ...] = ()

    def votes(self) -> Iterator[Vote]:
        """Every vote on every section."""
        for _, votes in self.sections:
            yield from votes


@dataclass(frozen=True)
class FixtureRun:
    """One fixture of a calibration session: its files not reviewed and its sections' results (None before the run)."""

    fixture: Fixture
    not_reviewed: tuple[NotReviewed, ...] = ()
    results: tuple[SectionResult, ...] | None = None

    def votes(self) -> FixtureVotes:
        return FixtureVotes(
            self.fixture,
            tuple((r.section.id, r.votes) for r in self.results or ()),
            self.not_reviewed,
        )

    def not_scored(self, gate: Gate) -> NotScored | None:
        """Why the panel did not judge this fixture at the K in force (`not_scored`)."""
        return not_scored(self.votes(), gate)

    def blocked(self, gate: Gate) -> bool:
        """Whether the gate in force blocks this fixture (`fixture_flagged`)."""
        return fixture_flagged(self.votes(), gate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fixture": self.fixture.to_dict(),
            "not_reviewed": [n.to_dict() for n in self.not_reviewed],
            "results": None if self.results is None else [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FixtureRun:
        results = d.get("results")
        return cls(
            fixture=Fixture.from_dict(d["fixture"]),
            not_reviewed=tuple(NotReviewed.from_dict(n) for n in d.get("not_reviewed") or ()),
            results=None if results is None else tuple(SectionResult.from_dict(r) for r in results),
        )


@dataclass(frozen=True)
class KRow:
    """The confusion matrix of the gate at one threshold K."""

    k: int
    tp: int
    fn: int
    fp: int
    tn: int
    not_scored: int = 0

    @property
    def scored(self) -> int:
        return self.tp + self.fn + self.fp + self.tn

    @property
    def recall(self) -> float | None:
        return _rate(self.tp, self.tp + self.fn)

    @property
    def fpr(self) -> float | None:
        return _rate(self.fp, self.fp + self.tn)

    @property
    def precision(self) -> float | None:
        return _rate(self.tp, self.tp + self.fp)

    @property
    def score(self) -> float | None:
        """OWASP Benchmark score: TPR - FPR."""
        if self.recall is None or self.fpr is None:
            return None
        return self.recall - self.fpr

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "tp": self.tp,
            "fn": self.fn,
            "fp": self.fp,
            "tn": self.tn,
            "scored": self.scored,
            "not_scored": self.not_scored,
            "recall": self.recall,
            "fpr": self.fpr,
            "precision": self.precision,
            "score": self.score,
        }


@dataclass(frozen=True)
class VoterRow:
    """One voter on its own: the fixtures it flagged, its errors, and the fixtures left out."""

    voter_id: str
    model: str
    tp: int
    fn: int
    fp: int
    tn: int
    errors: int
    excluded: int

    @property
    def tpr(self) -> float | None:
        return _rate(self.tp, self.tp + self.fn)

    @property
    def fpr(self) -> float | None:
        return _rate(self.fp, self.fp + self.tn)

    def to_dict(self) -> dict[str, Any]:
        return {
            "voter_id": self.voter_id,
            "model": self.model,
            "tp": self.tp,
            "fn": self.fn,
            "fp": self.fp,
            "tn": self.tn,
            "tpr": self.tpr,
            "fpr": self.fpr,
            "errors": self.errors,
            "excluded": self.excluded,
        }


@dataclass(frozen=True)
class CategoryRow:
    """One flaw category at the report's category K."""

    category: str
    bad: int
    good: int
    tp: int
    fp: int
    not_scored: int = 0

    @property
    def recall(self) -> float | None:
        return _rate(self.tp, self.bad)

    @property
    def fpr(self) -> float | None:
        return _rate(self.fp, self.good)

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "bad": self.bad,
            "good": self.good,
            "tp": self.tp,
            "fp": self.fp,
            "not_scored": self.not_scored,
            "recall": self.recall,
            "fpr": self.fpr,
        }


@dataclass(frozen=True)
class LineAccuracy:
    """Of the voters that flagged a known-bad fixture, how many pointed at the flaw's line."""

    hits: int
    total: int
    tolerance: int = LINE_TOLERANCE

    @property
    def accuracy(self) -> float | None:
        return _rate(self.hits, self.total)

    def to_dict(self) -> dict[str, Any]:
        return {"hits": self.hits, "total": self.total, "tolerance": self.tolerance, "accuracy": self.accuracy}


@dataclass(frozen=True)
class NotScored:
    """A fixture the panel did not judge at one K: why, as a kind to decide on and in words."""

    fixture_id: str
    expected: str
    kind: NotScoredKind
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"fixture_id": self.fixture_id, "expected": self.expected, "reason": self.reason}


@dataclass(frozen=True)
class CalibrationReport:
    """Everything calibration measured; `to_dict` is JSON-safe."""

    n: int
    target_fpr: float
    on_inconclusive: InconclusivePolicy
    bad: int
    good: int
    rows: tuple[KRow, ...]
    recommended_k: int | None
    recommendation: str
    voters: tuple[VoterRow, ...]
    category_k: int
    categories: tuple[CategoryRow, ...]
    agreement: Agreement
    line_accuracy: LineAccuracy
    cost: Cost
    min_scored: float = DEFAULT_MIN_SCORED
    not_scored: tuple[NotScored, ...] = ()  # at category_k

    @property
    def fixtures(self) -> int:
        return self.bad + self.good

    @property
    def judged_enough(self) -> bool:
        """Whether some K scored at least `min_scored` of the fixtures: without one, no K can be chosen."""
        return any(_enough(r, self.fixtures, self.min_scored) for r in self.rows)

    @property
    def found_nothing(self) -> bool:
        """Whether the K that meet the target FPR (judged enough to choose by) flag no known-bad fixture."""
        eligible = _eligible(self.rows, self.target_fpr, self.fixtures, self.min_scored)
        return bool(self.bad and self.good and eligible) and all(r.tp == 0 for r in eligible)

    def row(self, k: int) -> KRow:
        """The row for threshold K."""
        return self.rows[k - 1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "target_fpr": self.target_fpr,
            "on_inconclusive": self.on_inconclusive,
            "fixtures": self.fixtures,
            "bad": self.bad,
            "good": self.good,
            "rows": [r.to_dict() for r in self.rows],
            "recommended_k": self.recommended_k,
            "recommendation": self.recommendation,
            "min_scored": self.min_scored,
            "judged_enough": self.judged_enough,
            "found_nothing": self.found_nothing,
            "not_scored": [x.to_dict() for x in self.not_scored],
            "voters": [v.to_dict() for v in self.voters],
            "category_k": self.category_k,
            "categories": [c.to_dict() for c in self.categories],
            "agreement": self.agreement.to_dict(),
            "line_accuracy": self.line_accuracy.to_dict(),
            "cost": self.cost.to_dict(),
        }


# --- computing -------------------------------------------------------------------------


def calibrate(
    fixture_votes: Sequence[FixtureVotes],
    n: int,
    *,
    target_fpr: float = DEFAULT_TARGET_FPR,
    on_inconclusive: InconclusivePolicy = "fail",
    prices: Mapping[str, Price] | None = None,
    batch: bool = False,
    min_scored: float = DEFAULT_MIN_SCORED,
) -> CalibrationReport:
    """Score the gate at every K in 1..N from one set of votes per fixture."""
    gate = Gate(n, 1, on_inconclusive)  # checks N and the policy
    if not 0.0 <= target_fpr <= 1.0:
        raise ValueError(f"target FPR must be between 0 and 1, got {target_fpr}")
    voters = _validate(fixture_votes, n)
    rows = tuple(_k_row(fixture_votes, gate.at(k)) for k in range(1, n + 1))
    bad = sum(fv.fixture.expected == "UNSAFE" for fv in fixture_votes)
    good = len(fixture_votes) - bad
    recommended, statement = _recommend(rows, target_fpr, bad, good, min_scored, fixture_votes, gate)
    category_k = recommended if recommended is not None else n
    flags = {v: [_voter_flag(fv, v) for fv in fixture_votes] for v in voters}
    labels = [fv.fixture.expected for fv in fixture_votes]
    return CalibrationReport(
        n=n,
        target_fpr=target_fpr,
        on_inconclusive=on_inconclusive,
        bad=bad,
        good=good,
        rows=rows,
        recommended_k=recommended,
        recommendation=statement,
        voters=tuple(_voter_row(v, fixture_votes, flags[v]) for v in voters),
        category_k=category_k,
        categories=_category_rows(fixture_votes, gate.at(category_k)),
        agreement=agreement(voters, flags, labels),
        line_accuracy=_line_accuracy(fixture_votes),
        cost=cost_of([v for fv in fixture_votes for v in fv.votes()], prices, batch),
        min_scored=min_scored,
        not_scored=tuple(x for fv in fixture_votes if (x := not_scored(fv, gate.at(category_k))) is not None),
    )


def fixture_flagged(fv: FixtureVotes, gate: Gate) -> bool:
    """Whether the gate blocks this fixture (see the module docstring)."""
    return not sections_pass(gate, (gate.outcome(*count(votes)[:2]) for _, votes in fv.sections))


def not_scored(fv: FixtureVotes, gate: Gate) -> NotScored | None:
    """Why the panel did not judge this fixture at K, or None when it did (see "Scored fixture")."""
    fx = fv.fixture
    if not fv.sections:
        excluded = [n for n in fv.not_reviewed if n.kind == "excluded"]
        if excluded and len(excluded) == len(fv.not_reviewed):
            return NotScored(fx.id, fx.expected, "excluded", f"excluded: {excluded[0].reason}")
        why = f" ({fv.not_reviewed[0].reason})" if fv.not_reviewed else ""
        return NotScored(fx.id, fx.expected, "nothing_reviewed", f"nothing reviewed{why}")
    outcomes = [gate.outcome(*count(votes)[:2]) for _, votes in fv.sections]
    if "UNSAFE" in outcomes or all(o == "SAFE" for o in outcomes):
        return None
    valid = sum(sum(count(votes)[:2]) for _, votes in fv.sections)
    asked = gate.n * len(fv.sections)
    open_ = [section_id for (section_id, _), o in zip(fv.sections, outcomes, strict=True) if o == "INCONCLUSIVE"]
    return NotScored(
        fx.id,
        fx.expected,
        "errors",
        f"errors: INCONCLUSIVE at K={gate.k}, {asked - valid} of {asked} votes were errors or missing "
        f"({len(open_)} of {len(fv.sections)} sections undecided)",
    )


def _enough(row: KRow, fixtures: int, min_scored: float) -> bool:
    return fixtures > 0 and row.scored >= min_scored * fixtures - EPS


def _eligible(rows: Sequence[KRow], target: float, fixtures: int, min_scored: float) -> list[KRow]:
    """The K a recommendation may choose from: judged enough, and FPR within the target."""
    return [r for r in rows if _enough(r, fixtures, min_scored) and r.fpr is not None and r.fpr <= target + EPS]


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def _validate(fixture_votes: Sequence[FixtureVotes], n: int) -> list[str]:
    """The voter ids in order of first appearance; ValueError on input no panel could cast."""
    seen_fixtures: set[str] = set()
    voters: dict[str, None] = {}
    for fv in fixture_votes:
        if fv.fixture.id in seen_fixtures:
            raise ValueError(f"fixture {fv.fixture.id} appears twice")
        seen_fixtures.add(fv.fixture.id)
        for section_id, votes in fv.sections:
            ids = [v.voter_id for v in votes]
            if len(set(ids)) != len(ids):
                raise ValueError(f"fixture {fv.fixture.id} section {section_id}: a voter voted twice")
            if len(ids) > n:
                raise ValueError(f"fixture {fv.fixture.id} section {section_id}: {len(ids)} votes exceed N={n}")
            voters.update(dict.fromkeys(ids))
    if len(voters) > n:
        raise ValueError(f"{len(voters)} distinct voters exceed a panel of N={n}")
    return list(voters)


def _k_row(fixture_votes: Sequence[FixtureVotes], gate: Gate) -> KRow:
    """The confusion matrix at the gate's threshold K, over the fixtures scored there."""
    tp = fn = fp = tn = unscored = 0
    for fv in fixture_votes:
        if not_scored(fv, gate) is not None:
            unscored += 1
            continue
        flagged = fixture_flagged(fv, gate)
        if fv.fixture.expected == "UNSAFE":
            tp, fn = tp + flagged, fn + (not flagged)
        else:
            fp, tn = fp + flagged, tn + (not flagged)
    return KRow(k=gate.k, tp=tp, fn=fn, fp=fp, tn=tn, not_scored=unscored)


def _recommend(
    rows: Sequence[KRow],
    target: float,
    bad: int,
    good: int,
    min_scored: float,
    fixture_votes: Sequence[FixtureVotes],
    gate: Gate,
) -> tuple[int | None, str]:
    """The recommended K and a one-line statement of why (or why none)."""
    goal = f"FPR <= {target:.1%}"
    fixtures = bad + good
    judged = [r for r in rows if _enough(r, fixtures, min_scored)]
    if not judged:
        return None, _too_few_scored(rows, fixtures, min_scored, fixture_votes, gate)
    if not good:
        return None, f"no K recommended: the corpus has no SAFE fixture, so FPR cannot be measured ({goal})"
    eligible = _eligible(rows, target, fixtures, min_scored)
    if not eligible:
        lowest = min(judged, key=lambda r: (r.fpr or 0.0, r.k))
        return None, f"no K meets {goal} (lowest FPR {percent(lowest.fpr)} at K={lowest.k})"
    if bad and all(r.tp == 0 for r in eligible):
        return None, (
            f"no K flags any known-bad fixture at FPR <= {target * 100:g}%: the panel found nothing "
            f"({STUB_FINDS_NOTHING})"
        )
    best = max(eligible, key=lambda r: (r.recall if r.recall is not None else -1.0, -(r.fpr or 0.0), r.k))
    recall = f"recall {percent(best.recall)}" if bad else "recall unmeasured (no UNSAFE fixture)"
    return best.k, (
        f"recommended K={best.k}: {recall} at FPR {percent(best.fpr)} over {best.scored} scored fixtures "
        f"(target {goal})"
    )


def _too_few_scored(
    rows: Sequence[KRow], fixtures: int, min_scored: float, fixture_votes: Sequence[FixtureVotes], gate: Gate
) -> str:
    """Why no K can be recommended when too few fixtures were judged: how many, and what stopped the rest."""
    best = max(rows, key=lambda r: (r.scored, -r.k))
    share = best.scored / fixtures if fixtures else 0.0
    kinds = Counter(x.kind for fv in fixture_votes if (x := not_scored(fv, gate.at(best.k))) is not None)
    why = ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in sorted(kinds.items()))
    return (
        f"no K can be recommended: at most {best.scored} of {fixtures} fixtures ({share:.0%}) were judged "
        f"at any K, under the {min_scored:.0%} needed (not scored at K={best.k}: {why or 'none'})"
    )


def _voter_flag(fv: FixtureVotes, voter_id: str) -> bool | None:
    """Whether the voter flagged the fixture; None when it erred or did not vote on a section, or
    when nothing of the fixture was reviewed (there was nothing to answer)."""
    if not fv.sections:
        return None
    flagged = False
    for _, votes in fv.sections:
        verdict = next((v.verdict for v in votes if v.voter_id == voter_id), None)
        if verdict not in ("SAFE", "UNSAFE"):
            return None
        flagged = flagged or verdict == "UNSAFE"
    return flagged


def _voter_row(voter_id: str, fixture_votes: Sequence[FixtureVotes], flags: Sequence[bool | None]) -> VoterRow:
    """One voter's own rates over the fixtures it answered."""
    tp = fn = fp = tn = 0
    for fv, flag in zip(fixture_votes, flags, strict=True):
        if flag is None:
            continue
        if fv.fixture.expected == "UNSAFE":
            tp, fn = tp + flag, fn + (not flag)
        else:
            fp, tn = fp + flag, tn + (not flag)
    mine = [v for fv in fixture_votes for v in fv.votes() if v.voter_id == voter_id]
    models = sorted({v.credited_model for v in mine})
    _, _, errors = count(mine)
    return VoterRow(
        voter_id=voter_id,
        model=", ".join(models),
        tp=tp,
        fn=fn,
        fp=fp,
        tn=tn,
        errors=errors,
        excluded=sum(f is None for f in flags),
    )


def _category_rows(fixture_votes: Sequence[FixtureVotes], gate: Gate) -> tuple[CategoryRow, ...]:
    """Per category counts over the fixtures scored at the gate's threshold K, sorted by category."""
    tally: dict[str, dict[str, int]] = {}
    for fv in fixture_votes:
        t = tally.setdefault(fv.fixture.category, {"bad": 0, "good": 0, "tp": 0, "fp": 0, "not_scored": 0})
        if not_scored(fv, gate) is not None:
            t["not_scored"] += 1
            continue
        flagged = fixture_flagged(fv, gate)
        if fv.fixture.expected == "UNSAFE":
            t["bad"] += 1
            t["tp"] += flagged
        else:
            t["good"] += 1
            t["fp"] += flagged
    return tuple(CategoryRow(category=c, **t) for c, t in sorted(tally.items()))


def _line_accuracy(fixture_votes: Sequence[FixtureVotes]) -> LineAccuracy:
    """Per (voter, known-bad fixture with a flaw line): did its UNSAFE votes point at the flaw?"""
    hits = total = 0
    for fv in fixture_votes:
        fx = fv.fixture
        if fx.expected != "UNSAFE" or fx.flaw_path is None or fx.flaw_line is None:
            continue
        by_voter: dict[str, list[Vote]] = {}
        for v in fv.votes():
            if v.verdict == "UNSAFE":
                by_voter.setdefault(v.voter_id, []).append(v)
        for votes in by_voter.values():
            total += 1
            hits += any(_points_at(f.path, f.line, fx.flaw_path, fx.flaw_line) for v in votes for f in v.findings)
    return LineAccuracy(hits=hits, total=total)


def _points_at(path: str, line: int | None, flaw_path: str, flaw_line: int) -> bool:
    """A finding at the flaw's file within LINE_TOLERANCE lines of it."""
    return line is not None and _norm(path) == _norm(flaw_path) and abs(line - flaw_line) <= LINE_TOLERANCE


def _norm(path: str) -> str:
    """A repo-relative path without a leading './'."""
    while path.startswith("./"):
        path = path[2:]
    return path
