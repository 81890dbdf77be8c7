"""pytest entry point. Imports only pytest and the standard library at module level.

With `--swarm-review` absent this module registers options, markers and a fixture and
does nothing else: the review machinery (unidiff, anthropic) is imported only when asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import options
from .stash import fail_session, gate_finished_key, gate_missing_key, reviews_key, stdin_key

if TYPE_CHECKING:
    from .core.model import RunResult
    from .settings import GateSettings

MARKERS = (
    "swarm_review: an item of the swarm review gate (one per diff section)",
    "swarm_panel(**settings): panel settings for the swarm_review fixture in this test "
    "(voters, threshold, models, temperatures, effort, lenses, panel, ...)",
    "swarm_calibration: an item of a swarm calibration run (one per labeled fixture)",
)
SESSION_PLUGIN = "swarmgate-session"
CALIBRATION_PLUGIN = "swarmgate-calibration"
ONLY_PLUGIN = "swarmgate-only"


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    # Before pytest's own: `--help` and a repeated `--version` print and exit 0 right there,
    # before any pytest_configure, so this is the last moment to refuse them from addopts.
    options.refuse_untyped_info_modes(config)


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    # One plugin object per role, as pytest-xdist registers dsession or remote: the controller
    # (or a run without xdist) calls the API; a worker only reads what the controller sent it.
    worker = hasattr(config, "workerinput")
    # Under --help pytest configures the plugins only to print their options: nothing to set up.
    if (options.get(config, "review") or options.preflight_alone(config)) and not config.option.help:
        refuse_blocked(config, SESSION_PLUGIN)
        from .review_session import ReviewController, ReviewWorker, prepare

        review = (
            ReviewWorker(config)
            if worker
            else ReviewController(config, prepare(config, config.stash.get(stdin_key, None)))
        )
        register(config, review, SESSION_PLUGIN)
        if not worker:  # the controller decides the exit status; it says when its end of session ran
            config.stash[gate_finished_key] = False
    if options.get(config, "batch") and options.get(config, "calibrate") is None:
        raise pytest.UsageError("swarmgate: --swarm-batch applies to --swarm-calibrate only")
    if options.get(config, "calibrate") is not None:
        refuse_blocked(config, CALIBRATION_PLUGIN)
        from .calibration_session import CalibrationController, CalibrationWorker

        calibration = CalibrationWorker(config) if worker else CalibrationController(config)
        register(config, calibration, CALIBRATION_PLUGIN)
    if options.get(config, "only"):
        if not (options.get(config, "review") or options.get(config, "calibrate") is not None):
            raise pytest.UsageError("swarmgate: --swarm-only needs --swarm-review or --swarm-calibrate")
        from .sessions import ReviewOnly

        register(config, ReviewOnly(), ONLY_PLUGIN)


def refuse_blocked(config: pytest.Config, name: str) -> None:
    """`-p no:<name>` (from addopts, the ini file or anywhere) must not switch the gate off while it is asked for."""
    if config.pluginmanager.is_blocked(name):
        raise pytest.UsageError(
            f"swarmgate: the plugin {name} is blocked (-p no:{name}), so the review cannot run; "
            "remove the -p no: option (check addopts in the ini file)"
        )


def register(config: pytest.Config, plugin: object, name: str) -> None:
    """Register a session plugin, or stop: a gate that is asked for and not there must never pass."""
    if config.pluginmanager.register(plugin, name) is None or not config.pluginmanager.is_registered(plugin):
        raise pytest.UsageError(f"swarmgate: the plugin {name} could not be registered, so the review cannot run")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # trylast: after the session plugin's own (tryfirst) end of session, which sets the flag.
    config = session.config
    if config.stash.get(gate_finished_key, True):
        return
    line = f"swarmgate: the plugin {SESSION_PLUGIN} was removed before the end of the session, so no review decided"
    config.stash[gate_missing_key] = line
    fail_session(session, pytest.ExitCode.INTERNAL_ERROR)
    if config.pluginmanager.get_plugin("terminalreporter") is None:
        import sys

        sys.stderr.write(line + "\n")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    line = config.stash.get(gate_missing_key, None)
    if line:
        terminalreporter.write_line(line, red=True, bold=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> Any:
    # `--swarm-diff -` must be read before pytest's capture replaces stdin with /dev/null,
    # and this wrapper runs before the capture plugin's.
    ns = early_config.known_args_namespace
    review = getattr(ns, "swarm_review", None) or early_config.getini("swarm_review")
    if review and (getattr(ns, "swarm_diff", None) or early_config.getini("swarm_diff")) == "-":
        import sys

        # One byte past the ceiling is enough to know the diff is over it (read_source says so).
        limit = options.early(early_config, "max-diff-bytes")
        early_config.stash[stdin_key] = sys.stdin.buffer.read(limit + 1) if sys.stdin is not None else b""
    return (yield)


@pytest.hookimpl(trylast=True)
def pytest_swarmgate_make_client(config: pytest.Config, settings: GateSettings) -> Any:
    from .core.voters import make_client

    return make_client(timeout=settings.timeout, max_retries=settings.max_retries)


@pytest.hookimpl(trylast=True)
def pytest_swarmgate_make_voter(config: pytest.Config, settings: GateSettings, client: Any) -> Any:
    from .core.voters import AnthropicCaster

    return AnthropicCaster(
        client,
        timeout=settings.timeout,
        max_tokens=settings.max_tokens,
        cache_ttl=settings.cache_ttl,
        guidance=settings.policy.block() if settings.policy else "",
    )


def is_diff_text(value: str) -> bool:
    """A str argument is diff text when it has a newline; otherwise it names a file."""
    return "\n" in value


@pytest.fixture
def swarm_review(request: pytest.FixtureRequest) -> Iterator[Callable[..., RunResult]]:
    """Review a diff (text or path) with the session's panel, a swarm_panel marker and overrides."""
    config = request.config
    marker = request.node.get_closest_marker("swarm_panel")
    marker_settings = dict(marker.kwargs) if marker else {}

    reviews = config.stash[reviews_key] = []

    def review(diff: str | os.PathLike[str], **overrides: Any) -> RunResult:
        __tracebackhide__ = True  # a bad argument shows the test's line and the message, not our frames
        from .runner import check_size, execute, plan, settle_panel
        from .settings import resolve

        settings = settle_panel(config, resolve(config, {**marker_settings, **overrides}))
        if isinstance(diff, str) and is_diff_text(diff):
            source, text = "text", diff
        else:
            from .core.diff import DiffError, read_diff_file

            # Relative to the test file, so the test runs the same from any directory.
            path = request.path.parent / Path(diff)
            try:
                source, text = str(path), read_diff_file(str(path), settings.max_diff_bytes)
            except DiffError as exc:
                raise pytest.UsageError(f"swarmgate: {exc}") from None
        review_plan = plan(config, settings, source, text)
        check_size(review_plan, settings)
        result = execute(config, settings, review_plan)
        reviews.append(result)
        return result

    yield review
    # Only this test's reviews explain its assertions.
    del config.stash[reviews_key]


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: object, right: object) -> list[str] | None:
    """A failed comparison on a review result, or on an outcome word of one, shows the tally, votes and findings."""
    if op not in ("==", "!="):
        return None
    explained = compared_results(config, left, right)
    if not explained:
        return None
    from .output.terminal import explain_lines

    lines = [f"{_short(left)} {op} {_short(right)}"]
    for result in explained:
        lines.extend(explain_lines(result))
    return lines


def compared_results(config: pytest.Config, left: object, right: object) -> list[Any]:
    """The RunResults / SectionResults a comparison is about: compared directly, or whose outcome is compared.

    An outcome word (`result.outcome == "SAFE"`) leads back to the reviews this test made through
    the `swarm_review` fixture. Nothing is imported: without a review no result can exist.
    """
    import sys

    model = sys.modules.get("pytest_swarmgate.core.model")
    if model is None:
        return []
    direct = [x for x in (left, right) if isinstance(x, (model.RunResult, model.SectionResult))]
    if direct:
        return direct
    from .core.choices import OUTCOMES  # loaded with the model: costs nothing now
    from .core.decision import status

    words = {x for x in (left, right) if isinstance(x, str) and x in (*OUTCOMES, "HELD")}
    if not words:
        return []
    found: list[Any] = []
    for run in config.stash.get(reviews_key, []):
        if run.outcome in words or status(run) in words:
            found.append(run)
        else:
            found.extend(r for r in run.results if r.outcome in words)
    return found[:3]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"<{type(value).__name__}>"
