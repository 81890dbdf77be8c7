"""Panel building and prompt fencing are pure."""

from __future__ import annotations

import pytest

from pytest_swarmgate.core.prompt import messages, new_fence, system_blocks
from pytest_swarmgate.core.voters import Ladder, effective_settings
from pytest_swarmgate.model import Section, Voter
from pytest_swarmgate.settings import build_panel, parse_panel_lines


def test_lists_are_cycled_over_the_voters() -> None:
    panel = build_panel(5, ["m1", "m2"], ["0", "0.5", "1"], ["high"], ["security", "correctness"])
    assert [v.id for v in panel] == ["v1", "v2", "v3", "v4", "v5"]
    assert [v.model for v in panel] == ["m1", "m2", "m1", "m2", "m1"]
    assert [v.temperature for v in panel] == [0.0, 0.5, 1.0, 0.0, 0.5]
    assert {v.effort for v in panel} == {"high"}
    assert [v.lens for v in panel] == ["security", "correctness", "security", "correctness", "security"]


@pytest.mark.parametrize(
    "bad, message", [("1.2", "outside 0.0-1.0"), ("-0.1", "outside"), ("hot", "not a number"), ("nan", "outside")]
)
def test_temperatures_outside_the_anthropic_range_are_errors(bad: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_panel(1, ["m"], [bad])


def test_unknown_effort_and_lens_are_errors() -> None:
    with pytest.raises(ValueError, match="effort"):
        build_panel(1, ["m"], efforts=["huge"])
    with pytest.raises(ValueError, match="lens"):
        build_panel(1, ["m"], lenses=["vibes"])


def test_panel_lines() -> None:
    panel = parse_panel_lines(["# a comment", "m1 temperature=0.2 lens=security", "", "m2 effort=low id=fast"])
    assert panel == [Voter("v1", "m1", 0.2, None, "security"), Voter("fast", "m2", None, "low", None)]
    with pytest.raises(ValueError, match="line 1"):
        parse_panel_lines(["m1 colour=red"])
    with pytest.raises(ValueError, match="no voters"):
        parse_panel_lines(["# nothing"])


def test_the_fence_never_occurs_in_a_section_and_the_prefix_is_byte_stable() -> None:
    section = Section("a.py", "a.py", None, "modified", "+x = 1\n")
    fence = new_fence([section])
    assert fence not in section.text
    one = messages(section, Voter("v1", "m"), fence)
    two = messages(section, Voter("v2", "m", lens="security"), fence)
    # Everything up to the voter's own block is identical, so the prompt cache serves it.
    assert one[0]["content"][0] == two[0]["content"][0]
    assert one[0]["content"][1] != two[0]["content"][1]
    # The policy holds nothing drawn per run: the same bytes in every run, so a rerun reads it.
    assert system_blocks() == system_blocks()
    assert fence not in system_blocks()[0]["text"] and fence in one[0]["content"][0]["text"]
    assert "cache_control" in one[0]["content"][0] and "cache_control" in system_blocks()[-1]


def test_temperature_ladder_steps_down_and_notes_it() -> None:
    voter = Voter("v1", "m", temperature=0.7)
    ladder = Ladder()
    first = ladder.rung(voter)
    assert first.temperature and first.api_version is None
    assert ladder.step_down(voter, first, "temperature: sampling parameters are not supported")
    second = ladder.rung(voter)
    assert second.temperature and second.api_version == "2023-06-01"
    assert ladder.step_down(voter, second, "temperature is not supported")
    third = ladder.rung(voter)
    assert not third.temperature
    settings = effective_settings(voter, third)
    assert settings.temperature is None
    assert settings.notes == ("temperature 0.7 requested, not applied: endpoint rejects sampling parameters",)
    assert not ladder.step_down(voter, third, "temperature again"), "no rung below the last"
    assert not ladder.step_down(Voter("v2", "m"), ladder.rung(Voter("v2", "m")), "max_tokens too large")


def test_an_unclosed_quote_names_the_panel_line() -> None:
    with pytest.raises(ValueError, match="panel line 2: No closing quotation"):
        parse_panel_lines(["m1", "m2 lens='security"])


def test_an_effort_refused_under_the_legacy_version_drops_the_legacy_rung_not_the_effort() -> None:
    voter = Voter("v1", "m", temperature=0.5, effort="high")
    ladder = Ladder()
    assert ladder.step_down(voter, ladder.rung(voter), "temperature: sampling parameters are not supported")
    legacy = ladder.rung(voter)
    assert legacy.api_version == "2023-06-01" and legacy.effort
    assert ladder.step_down(voter, legacy, "output_config: Extra inputs are not permitted")
    final = ladder.rung(voter)
    assert (final.api_version, final.temperature, final.effort) == (None, False, True)
    assert effective_settings(voter, final).effort == "high"
