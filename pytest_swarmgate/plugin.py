"""pytest entry point. Imports only pytest and the standard library at module level.

With `--swarm-review` absent this module registers options, markers and a fixture and
does nothing else: the review machinery (unidiff, anthropic) is imported only when asked for.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

from . import options

if TYPE_CHECKING:
    from .configuration import GateSettings
    from .core.model import RunResult

MARKERS = (
    "swarm_review: an item of the swarm review gate (one per diff section)",
    "swarm_panel(**settings): panel settings for the swarm_review fixture in this test "
    "(voters, threshold, models, temperatures, effort, lenses, panel, ...)",
    "swarm_calibration: an item of a swarm calibration run (one per labeled fixture)",
)
SESSION_PLUGIN = "swarmgate-session"
CALIBRATION_PLUGIN = "swarmgate-calibration"
stdin_key = pytest.StashKey[bytes]()


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    # One plugin object per role, as pytest-xdist registers dsession or remote: the controller
    # (or a run without xdist) calls the API; a worker only reads what the controller sent it.
    worker = hasattr(config, "workerinput")
    if options.get(config, "review"):
        from .review_session import ReviewController, ReviewWorker

        review = ReviewWorker(config) if worker else ReviewController(config, config.stash.get(stdin_key, None))
        config.pluginmanager.register(review, SESSION_PLUGIN)
    if options.get(config, "batch") and options.get(config, "calibrate") is None:
        raise pytest.UsageError("swarmgate: --swarm-batch applies to --swarm-calibrate only")
    if options.get(config, "calibrate") is not None:
        from .calibration_session import CalibrationController, CalibrationWorker

        calibration = CalibrationWorker(config) if worker else CalibrationController(config)
        config.pluginmanager.register(calibration, CALIBRATION_PLUGIN)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> Any:
    # `--swarm-diff -` must be read before pytest's capture replaces stdin with /dev/null,
    # and this wrapper runs before the capture plugin's.
    ns = early_config.known_args_namespace
    review = getattr(ns, "swarm_review", None) or early_config.getini("swarm_review")
    if review and (getattr(ns, "swarm_diff", None) or early_config.getini("swarm_diff")) == "-":
        import sys

        early_config.stash[stdin_key] = sys.stdin.buffer.read() if sys.stdin is not None else b""
    return (yield)


@pytest.hookimpl(trylast=True)
def pytest_swarmgate_make_client(config: pytest.Config, settings: GateSettings) -> Any:
    from .core.voters import make_client

    return make_client(timeout=settings.timeout, max_retries=settings.max_retries)


@pytest.hookimpl(trylast=True)
def pytest_swarmgate_make_voter(config: pytest.Config, settings: GateSettings, client: Any) -> Any:
    from .core.voters import AnthropicVoter

    return AnthropicVoter(client, timeout=settings.timeout, max_tokens=settings.max_tokens)


def is_diff_text(value: str) -> bool:
    """A str argument is diff text when it has a newline; otherwise it names a file."""
    return "\n" in value


@pytest.fixture
def swarm_review(request: pytest.FixtureRequest) -> Callable[..., RunResult]:
    """Review a diff (text or path) with the session's panel, a swarm_panel marker and overrides."""
    config = request.config
    marker = request.node.get_closest_marker("swarm_panel")
    marker_settings = dict(marker.kwargs) if marker else {}

    def review(diff: str | os.PathLike[str], **overrides: Any) -> RunResult:
        from .configuration import resolve
        from .runner import check_size, execute, plan, settle_panel

        settings = settle_panel(config, resolve(config, {**marker_settings, **overrides}))
        if isinstance(diff, str) and is_diff_text(diff):
            source, text = "text", diff
        else:
            from .core.diff import DiffError, read_diff_file

            path = Path(diff)
            try:
                source, text = str(path), read_diff_file(str(path))
            except DiffError as exc:
                raise pytest.UsageError(f"swarmgate: {exc}") from None
        review_plan = plan(config, settings, source, text)
        check_size(review_plan, settings)
        return execute(config, settings, review_plan)

    return review
