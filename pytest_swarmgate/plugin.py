"""pytest entry point. Imports only pytest and the standard library at module level.

With `--swarm-review` absent this module registers options, markers and a fixture and
does nothing else: the review machinery (unidiff, anthropic) is imported only when asked for.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

from . import options

if TYPE_CHECKING:
    from .gate import Plan
    from .model import RunResult
    from .settings import GateSettings

MARKERS = (
    "swarm_review: an item of the swarm review gate (one per diff section)",
    "swarm_panel(**settings): panel settings for the swarm_review fixture in this test "
    "(voters, threshold, models, temperatures, effort, lenses, panel, ...)",
    "swarm_calibration: an item of a swarm calibration run (one per labeled fixture)",
)
SESSION_PLUGIN = "swarmgate-session"
CALIBRATION_PLUGIN = "swarmgate-calibration"
stdin_key = pytest.StashKey[bytes]()
WORKERINPUT_KEY = "swarmgate"


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    if options.get(config, "review"):
        config.pluginmanager.register(ReviewSession(config), SESSION_PLUGIN)
    if options.get(config, "batch") and options.get(config, "calibrate") is None:
        raise pytest.UsageError("swarmgate: --swarm-batch applies to --swarm-calibrate only")
    if options.get(config, "calibrate") is not None:
        from .calibration_session import CalibrationSession

        config.pluginmanager.register(CalibrationSession(config), CALIBRATION_PLUGIN)


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
    from .voters import make_client

    return make_client(timeout=settings.timeout, max_retries=settings.max_retries)


@pytest.hookimpl(trylast=True)
def pytest_swarmgate_make_voter(config: pytest.Config, settings: GateSettings, client: Any) -> Any:
    from .voters import AnthropicVoter

    return AnthropicVoter(client, timeout=settings.timeout, max_tokens=settings.max_tokens)


def diff_source(config: pytest.Config) -> tuple[str | None, str | None]:
    """(diff path, base ref), at most one set: command line, then the CI environment, then ini.

    The environment beats the ini file because the ini file is part of the pull request:
    a PR must not be able to point the gate at a diff of its own choosing.
    """
    if options.from_command_line(config, "diff"):
        return str(options.get(config, "diff")), None
    if options.from_command_line(config, "base"):
        return None, str(options.get(config, "base"))
    github_base = os.environ.get("GITHUB_BASE_REF")
    if github_base:
        return None, f"origin/{github_base}"
    diff, base = options.get(config, "diff"), options.get(config, "base")
    return (str(diff), None) if diff else (None, str(base) if base else None)


class ReviewSession:
    """The gate for one pytest session, registered only with --swarm-review."""

    def __init__(self, config: pytest.Config) -> None:
        from .items import policy_key, run_key
        from .model import NotReviewed, RunResult, Section
        from .settings import resolve

        self.config = config
        self.settings = resolve(config)
        config.stash[policy_key] = self.settings.on_inconclusive
        self.run: RunResult | None = None
        self.published: list[str] = []
        self.started_at = ""
        self.allowed_changes: tuple[str, ...] = ()
        from .shared_run import check_rootdir, from_controller

        data = from_controller(config, WORKERINPUT_KEY)
        if data is not None:
            # An xdist worker: the controller planned and reviewed; never call the API here.
            self.sections = tuple(Section.from_dict(s) for s in data["sections"])
            self.not_reviewed = tuple(NotReviewed.from_dict(n) for n in data["not_reviewed"])
            self.source = data["source"]
            if data["run"] is not None:
                self.run = RunResult.from_dict(data["run"])
            config.stash[run_key] = self.run
            self.plan: Plan | None = None
            return
        check_rootdir(config, "--swarm-diff")
        for name in ("json", "sarif"):
            target = options.get(config, name)
            if target and (config.invocation_params.dir / target).is_dir():
                raise pytest.UsageError(f"swarmgate: --swarm-{name}={target} is a directory; give a file path")
        from .gate import check_size, plan, read_source, settle_panel

        self.settings = settle_panel(config, self.settings)
        source, text = read_source(config, *diff_source(config), config.stash.get(stdin_key, None))
        self.plan = plan(config, self.settings, source, text)
        check_size(self.plan, self.settings)
        if self.plan.config_changes and options.typed_by_hand(config, "allow-config-change"):
            self.allowed_changes = self.plan.config_changes
            self.plan = dataclasses.replace(self.plan, config_changes=())
        self.sections, self.not_reviewed, self.source = self.plan.sections, self.plan.not_reviewed, source

    @property
    def is_controller(self) -> bool:
        return self.plan is not None

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        from .report import printable

        skipped = f", {len(self.not_reviewed)} not reviewed" if self.not_reviewed else ""
        lines = [
            f"swarmgate: {self.settings.describe_panel()}, diff: {printable(self.source)}, "
            f"{len(self.sections)} sections{skipped}"
        ]
        lines += [f"swarmgate: allowed change to the gate's configuration: {printable(c)}" for c in self.allowed_changes]
        return lines

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # Before xdist starts its workers (its sessionstart is trylast), so they get the result.
        if self.plan is None or self.config.option.collectonly:
            return
        from .gate import execute
        from .items import run_key

        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and self.plan.sections:
            reporter.write_line(
                f"swarmgate: reviewing {len(self.plan.sections)} sections x {self.settings.n} voters ..."
            )
        from .publish import now_utc

        self.started_at = now_utc()
        self.run = execute(self.config, self.settings, self.plan)
        self.config.stash[run_key] = self.run
        self.config.hook.pytest_swarmgate_session_result(config=self.config, result=self.run)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        from .shared_run import to_worker

        to_worker(
            node,
            WORKERINPUT_KEY,
            {
                "source": self.source,
                "sections": [s.to_dict() for s in self.sections],
                "not_reviewed": [n.to_dict() for n in self.not_reviewed],
                "run": self.run.to_dict() if self.run is not None else None,
            },
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
        # tryfirst: our items must exist before -m / -k deselection runs.
        from .items import COLLECTOR_NAME, ReviewCollector
        from .shared_run import prepend_collected

        collector = ReviewCollector.from_parent(
            session, name=COLLECTOR_NAME, nodeid=COLLECTOR_NAME, sections=self.sections, not_reviewed=self.not_reviewed
        )
        prepend_collected(session, collector, items)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.is_controller or self.run is None:
            return
        from .report import gate_line, summary_lines

        terminalreporter.section("swarm review")
        for line in summary_lines(self.run):
            terminalreporter.write_line(line)
        terminalreporter.write_line(gate_line(self.run), bold=True)
        for line in self.published:
            terminalreporter.write_line(line)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # tryfirst: before the terminal summary, which lists what was written.
        if not self.is_controller or self.run is None:
            return
        from .publish import github_outputs, write_reports
        from .voting import run_passes

        published = write_reports(
            self.run,
            base=self.config.invocation_params.dir,
            json_path=options.get(self.config, "json"),
            sarif_path=options.get(self.config, "sarif"),
            started_at=self.started_at,
            on_inconclusive=self.settings.on_inconclusive,
        )
        annotations = github_outputs(
            self.run,
            env=os.environ,
            limit=options.get(self.config, "annotations-max"),
            on_inconclusive=self.settings.on_inconclusive,
            out=published,
        )
        self.published = published.lines + annotations
        if published.failed:
            # An output CI relies on is missing: never let that look like a clean pass.
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        # The gate does not depend on which items ran: deselecting a failing section item
        # with -k or -m does not let an UNSAFE diff through.
        if not run_passes(self.run, self.settings.on_inconclusive):  # type: ignore[arg-type]
            if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
                session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
        from .gate import check_size, execute, plan, settle_panel
        from .settings import resolve

        settings = settle_panel(config, resolve(config, {**marker_settings, **overrides}))
        if isinstance(diff, str) and is_diff_text(diff):
            source, text = "text", diff
        else:
            from .diff import DiffError, read_diff_file

            path = Path(diff)
            try:
                source, text = str(path), read_diff_file(str(path))
            except DiffError as exc:
                raise pytest.UsageError(f"swarmgate: {exc}") from None
        review_plan = plan(config, settings, source, text)
        check_size(review_plan, settings)
        return execute(config, settings, review_plan)

    return review
