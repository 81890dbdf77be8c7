"""Consensus is pure: checked exhaustively over every small panel, no pytest plugin or server."""

from __future__ import annotations

import pytest

from pytest_swarmgate.core.choices import INCONCLUSIVE_POLICIES
from pytest_swarmgate.core.decision import sections_pass, warns
from pytest_swarmgate.core.gate import Gate, outcome
from pytest_swarmgate.core.voting import count, judge
from pytest_swarmgate.model import Section, Vote


def all_tallies(n: int):
    for safe in range(n + 1):
        for unsafe in range(n + 1 - safe):
            yield safe, unsafe, n - safe - unsafe


@pytest.mark.parametrize("n", range(1, 8))
def test_outcome_matches_definition_for_every_tally(n: int) -> None:
    for k in range(1, n + 1):
        for safe, unsafe, errors in all_tallies(n):
            got = outcome(safe, unsafe, n, k)
            if safe >= k:
                assert got == "SAFE"
            elif unsafe > n - k:
                assert got == "UNSAFE"
            else:
                assert got == "INCONCLUSIVE"
                assert errors > 0, "without errors every tally is decided one way"


def test_error_votes_never_count_as_safe() -> None:
    assert outcome(safe=3, unsafe=0, n=5, k=4) == "INCONCLUSIVE"
    assert outcome(safe=0, unsafe=0, n=5, k=1) == "INCONCLUSIVE"


def test_threshold_out_of_range_is_rejected() -> None:
    for n, k in ((5, 0), (5, 6), (0, 0)):
        with pytest.raises(ValueError):
            outcome(0, 0, n, k)


def _vote(verdict: str, voter: str = "v1") -> Vote:
    return Vote(section_id="a.py", voter_id=voter, model="m", verdict=verdict)  # type: ignore[arg-type]


def test_judge_counts_and_keeps_dissent() -> None:
    section = Section(id="a.py", path="a.py", old_path=None, change="modified", text="")
    votes = [_vote("SAFE", f"v{i}") for i in range(1, 5)] + [_vote("UNSAFE", "v5")]
    result = judge(section, votes, n=5, k=4)
    assert (result.outcome, result.safe, result.unsafe, result.errors) == ("SAFE", 4, 1, 0)
    assert [v.voter_id for v in result.dissent] == ["v5"]
    assert result.tally() == "SAFE 4/5 (K=4)"
    assert judge(section, votes, n=5, k=5).outcome == "UNSAFE"


def test_anything_but_safe_or_unsafe_counts_as_error() -> None:
    assert count([_vote("SAFE"), _vote("UNSAFE"), _vote("ERROR"), _vote("safe")]) == (1, 1, 2)


def test_gate_policy_for_inconclusive() -> None:
    def gate(policy: str) -> Gate:
        return Gate(5, 4, policy)  # type: ignore[arg-type]

    assert sections_pass(gate("fail"), ["SAFE", "SAFE"])
    assert not sections_pass(gate("pass"), ["SAFE", "UNSAFE"])
    assert not sections_pass(gate("fail"), ["INCONCLUSIVE"])
    assert sections_pass(gate("warn"), ["INCONCLUSIVE"])
    assert sections_pass(gate("pass"), ["INCONCLUSIVE"])
    assert [p for p in INCONCLUSIVE_POLICIES if warns(gate(p), "INCONCLUSIVE")] == ["warn"]
    assert not any(warns(gate(p), o) for p in INCONCLUSIVE_POLICIES for o in ("SAFE", "UNSAFE"))


def test_gate_checks_itself_and_round_trips() -> None:
    for n, k in ((5, 0), (5, 6), (0, 0)):
        with pytest.raises(ValueError):
            Gate(n, k)
    with pytest.raises(ValueError, match="on_inconclusive must be one of fail, warn, pass, got 'maybe'"):
        Gate(3, 2, "maybe")  # type: ignore[arg-type]
    gate = Gate(5, 4, "warn")
    assert Gate.from_dict(gate.to_dict()) == gate
    assert gate.at(2) == Gate(5, 2, "warn")
    with pytest.raises(ValueError):
        gate.at(6)


def test_the_gate_and_the_options_know_the_same_policies() -> None:
    from pytest_swarmgate import options

    convert = options.BY_NAME["on-inconclusive"].convert
    assert [convert(p) for p in INCONCLUSIVE_POLICIES] == list(INCONCLUSIVE_POLICIES)
    with pytest.raises(ValueError, match="expected one of fail, warn, pass"):
        convert("maybe")
