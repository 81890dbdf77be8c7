"""Hooks other plugins and conftest files can implement (added in pytest_addhooks).

Implement them with `@pytest.hookimpl(optionalhook=True)` so that `-p no:swarmgate`
keeps working when this plugin is not loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .core.model import NotReviewed, RunResult, Section, SectionResult, Voter
    from .settings import GateSettings


@pytest.hookspec(firstresult=True)
def pytest_swarmgate_make_client(config: pytest.Config, settings: GateSettings) -> Any:
    """Return the Anthropic-compatible async client the built-in caster (`voters.AnthropicCaster`) calls.

    The built-in implementation (trylast) builds `anthropic.AsyncAnthropic`, which reads
    ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL itself; return e.g. an `AsyncAnthropicBedrock`
    or `AsyncAnthropicVertex` instead. Stop at the first non-None result. The client is
    closed when the run ends, so return a new one each time.
    """


@pytest.hookspec(firstresult=True)
def pytest_swarmgate_make_voter(config: pytest.Config, settings: GateSettings, client: Any) -> Any:
    """Return the coroutine function that casts one vote: `async (section, voter, fence) -> Vote`.

    The built-in implementation (trylast) calls the Messages API through `client`. A
    custom one may call anything (another model, a linter); whatever it raises becomes
    that voter's ERROR vote. `section.context` holds what the built-in voter sends after the
    diff (see core/context/), None with `--swarm-context=off`. Stop at the first non-None result.
    """


def pytest_swarmgate_modify_panel(config: pytest.Config, panel: list[Voter]) -> None:
    """Change the panel in place (add, remove or replace voters) before the review."""


def pytest_swarmgate_filter_sections(
    config: pytest.Config, sections: list[Section], not_reviewed: list[NotReviewed]
) -> None:
    """Remove sections in place; move each one you drop to `not_reviewed` with its reason."""


def pytest_swarmgate_section_result(config: pytest.Config, result: SectionResult) -> None:
    """Called as soon as every voter has voted on one section: before its synthesis (`result.synthesis` is
    None here; the session result carries it)."""


def pytest_swarmgate_session_result(config: pytest.Config, result: RunResult) -> None:
    """Called once with the whole review, after the last section."""
