"""The review gate of one pytest session: plan on configure, review once, report at the end.

Registered by plugin.py only with --swarm-review, so it may import the review machinery at
module level. Under pytest-xdist the controller plans and reviews before the workers start
and hands them the result; a worker never calls the API.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from . import options
from .configuration import resolve
from .core.control import CallProgress
from .core.faults import RunFault
from .core.model import NotReviewed, RunResult, Section, SectionResult, Stopped
from .core.voting import run_passes
from .items import COLLECTOR_NAME, ReviewCollector, policy_key, run_key
from .output.escape import terminal
from .output.publish import github_outputs, now_utc, write_reports
from .output.terminal import gate_line, summary_lines
from .exitcodes import REVIEW_INCOMPLETE
from .runner import Plan, execute, over_ceiling, plan, preflight, read_source, settle_panel, stopped_run
from .sessions import ControllerRun, check_rootdir, from_controller, to_worker

WORKERINPUT_KEY = "swarmgate"


def diff_source(config: pytest.Config) -> tuple[str | None, str | None]:
    """(diff path, base ref), at most one set: command line, then the CI environment, then ini.

    The environment beats the ini file because the ini file is part of the pull request:
    a PR must not be able to point the gate at a diff of its own choosing.
    """
    # Typed by hand only: `addopts` comes from the ini file, so it ranks below the environment.
    typed_diff, typed_base = options.typed_by_hand(config, "diff"), options.typed_by_hand(config, "base")
    if typed_diff:
        return typed_diff, None
    if typed_base:
        return None, typed_base
    github_base = os.environ.get("GITHUB_BASE_REF")
    if github_base:
        return None, f"origin/{github_base}"
    diff, base = options.get(config, "diff"), options.get(config, "base")
    return (str(diff), None) if diff else (None, str(base) if base else None)


INFO_MODES = {"collectonly": ("--collect-only", "--co"), "showfixtures": ("--fixtures",),
              "show_fixtures_per_test": ("--fixtures-per-test",), "markers": ("--markers",)}


def refuse_untyped_info_modes(config: pytest.Config) -> None:
    """A mode that runs no review must be asked for in the job, not by the PR's `addopts`."""
    typed = options.literal_args(config)
    for attr, flags in INFO_MODES.items():
        if getattr(config.option, attr, False) and not any(a in flags for a in typed):
            raise pytest.UsageError(
                f"swarmgate: {flags[0]} came from addopts, not the command line: the gate does not skip its review "
                "for a setting the pull request can make"
            )


def release_held(plan: Plan, allowed: str | None) -> Plan:
    """Release the held changes when a human typed this diff's sha256 prefix (8+ characters).

    Bound to the diff, so an allowance given for one push does not carry over to the next.
    """
    if allowed is None or not plan.held:
        return plan
    if len(allowed) < 8 or not plan.diff_sha256.startswith(allowed.lower()):
        raise pytest.UsageError(
            f"swarmgate: --swarm-allow-held={allowed} does not match this diff (sha256 {plan.diff_sha256[:12]}...): "
            "held changes are released for one exact diff"
        )
    return dataclasses.replace(plan, held=(), released=plan.held)


class Progress:
    """A line per section as its last vote arrives, during the session's own review only.

    A real review takes as long as the slowest call; silence for a minute looks like a hang.
    Reviews a test makes through the `swarm_review` fixture are not shown.
    """

    # Seconds of silence before a line on the calls alone, and between two rate-limit lines.
    QUIET_S, LIMIT_NOTE_S = 10.0, 5.0

    def __init__(self, reporter: Any, total: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.reporter, self.total, self.done = reporter, total, 0
        self.clock = clock
        self.latest: CallProgress | None = None
        self.last_line = self.last_limit_line = clock()
        self.limits_told = 0

    def line(self, text: str) -> None:
        if self.reporter is not None and self.total:
            self.reporter.write_line(text)
            self.last_line = self.clock()

    def section(self, result: SectionResult) -> None:
        if self.done < self.total:
            self.done += 1
            calls = f" - {describe_calls(self.latest)}" if self.latest is not None else ""
            self.line(f"swarmgate: [{self.done}/{self.total}] {terminal(result.section.id)}: {result.tally()}{calls}")

    def calls(self, progress: CallProgress) -> None:
        """Between sections: say when the run waits on the rate limit, and speak up after a silence."""
        self.latest = progress
        now = self.clock()
        told = progress.rate_limited <= self.limits_told
        if progress.waiting and not told and now - self.last_limit_line >= self.LIMIT_NOTE_S:
            self.limits_told, self.last_limit_line = progress.rate_limited, now
            self.line(f"swarmgate: waiting on the rate limit ({progress.rate_limited} rate-limited answers so far) - "
                      + describe_calls(progress, waiting=False))
        elif now - self.last_line >= self.QUIET_S and progress.done < progress.total:
            self.line(f"swarmgate: {describe_calls(progress)}")

    def stop(self) -> None:
        self.total = 0


def describe_calls(progress: CallProgress, *, waiting: bool = True) -> str:
    """`calls 120/500, 19.8/s, about 19 s left (waiting on the rate limit, 3 rate-limited answers)`."""
    text = f"calls {progress.done}/{progress.total}, {progress.rate:.1f}/s"
    eta = progress.eta_s
    if eta is not None and progress.done < progress.total:
        text += f", about {eta:.0f} s left"
    if waiting and progress.waiting:
        text += f" (waiting on the rate limit, {progress.rate_limited} rate-limited answers so far)"
    return text


def exit_incomplete(config: pytest.Config, settings: Any, review_plan: Plan | None, stopped: Stopped) -> None:
    """End the session before collection: the reports say why, and one line with the exit code."""
    note = ""
    if review_plan is not None:
        run = stopped_run(review_plan, settings, stopped)
        published = write_reports(
            run,
            base=config.invocation_params.dir,
            json_path=options.get(config, "json"),
            sarif_path=options.get(config, "sarif"),  # an upload step that runs always() finds its file
            started_at=now_utc(),
            on_inconclusive=settings.on_inconclusive,
        )
        github_outputs(run, env=os.environ, limit=0, on_inconclusive=settings.on_inconclusive, out=published)
        failed = [line for line in published.lines if "could not write" in line]
        note = f" ({'; '.join(failed)})" if failed else ""
    pytest.exit(
        f"swarmgate: {terminal(stopped.line(), 1000)}{terminal(note, 500)} [exit {REVIEW_INCOMPLETE}]",
        returncode=REVIEW_INCOMPLETE,
    )


class ReviewSession(ControllerRun):
    """The gate for one pytest session, registered only with --swarm-review."""

    def __init__(self, config: pytest.Config, stdin: bytes | None = None) -> None:
        self.config = config
        self.settings = resolve(config)
        config.stash[policy_key] = self.settings.on_inconclusive
        self.run: RunResult | None = None
        self.published: list[str] = []
        self.started_at = ""
        self.progress = Progress(None, 0)
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
        options.get(config, "annotations-max")  # checked now, not after the review was paid for
        refuse_untyped_info_modes(config)
        for name in ("json", "sarif"):
            target = options.get(config, name)
            if target and (config.invocation_params.dir / target).is_dir():
                raise pytest.UsageError(f"swarmgate: --swarm-{name}={target} is a directory; give a file path")
        self.settings = settle_panel(config, self.settings)
        if options.typed_by_hand(config, "preflight") is not None:
            self.preflight_only(config)
        diff_arg, base = diff_source(config)
        source, text = read_source(config, diff_arg, base, stdin)
        if diff_arg and not text.strip() and options.typed_by_hand(config, "allow-empty") is None:
            # Fail closed: `git diff ... | pytest --swarm-diff=-` gives empty input when git fails.
            raise pytest.UsageError(
                f"swarmgate: the diff from {source} is empty; if nothing changed, pass --swarm-allow-empty "
                "(or review with --swarm-base, where an empty diff is git's own answer)"
            )
        self.plan = plan(config, self.settings, source, text)
        ceiling = over_ceiling(self.plan, self.settings)
        if ceiling:
            exit_incomplete(config, self.settings, self.plan, Stopped("ceiling", ceiling))
        self.plan = release_held(self.plan, options.typed_by_hand(config, "allow-held"))
        try:
            # Before collection: a wrong key or a dead endpoint costs seconds, not the project's collection.
            # Not in a mode that reviews nothing (--collect-only, --fixtures, ...).
            if not any(getattr(config.option, attr, False) for attr in INFO_MODES):
                preflight(config, self.settings, self.plan)
        except RunFault as exc:
            exit_incomplete(config, self.settings, self.plan, Stopped("preflight", str(exc)))
        self.sections, self.not_reviewed, self.source = self.plan.sections, self.plan.not_reviewed, source

    def preflight_only(self, config: pytest.Config) -> None:
        """--swarm-preflight: check the set-up, say so in one line, and end the session."""
        try:
            checked = preflight(config, self.settings, None, force=True)
        except RunFault as exc:
            exit_incomplete(config, self.settings, None, Stopped("preflight", str(exc)))
        endpoint = os.environ.get("ANTHROPIC_BASE_URL") or "the default endpoint"
        nothing = "nothing to check (a custom voter, or a client without a Models API)"
        what = f"{checked} model(s) answered" if checked else nothing
        pytest.exit(f"swarmgate: preflight passed: {what} at {terminal(endpoint)}", returncode=0)

    @property
    def is_controller(self) -> bool:
        return self.plan is not None

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        skipped = f", {len(self.not_reviewed)} not reviewed" if self.not_reviewed else ""
        lines = [
            f"swarmgate: {self.settings.describe_panel()}, diff: {terminal(self.source)}, "
            f"{len(self.sections)} sections{skipped}"
        ]
        lines += [f"swarmgate: released by hand: {terminal(c)}" for c in (self.plan.released if self.plan else ())]
        return lines

    def run_once(self) -> None:
        """Cast every vote of the plan."""
        if self.plan is None:
            return
        self.progress = Progress(self.config.pluginmanager.get_plugin("terminalreporter"), len(self.plan.sections))
        self.progress.line(f"swarmgate: reviewing {len(self.plan.sections)} sections x {self.settings.n} voters ...")
        self.started_at = now_utc()
        try:
            self.run = execute(self.config, self.settings, self.plan, on_progress=self.progress.calls)
        finally:
            self.progress.stop()
        self.config.stash[run_key] = self.run
        self.config.hook.pytest_swarmgate_session_result(config=self.config, result=self.run)

    def pytest_swarmgate_section_result(self, config: pytest.Config, result: SectionResult) -> None:
        self.progress.section(result)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
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

    def collector(self, session: pytest.Session) -> pytest.Collector:
        return ReviewCollector.from_parent(
            session, name=COLLECTOR_NAME, nodeid=COLLECTOR_NAME, sections=self.sections, not_reviewed=self.not_reviewed
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.is_controller:
            return
        if self.run is None:
            for line in self.published:
                terminalreporter.write_line(line, red=True)
            return
        terminalreporter.section("swarm review")
        # A stopped run lists its sections' tallies, not a line per vote that repeats the fault.
        for line in summary_lines(self.run, votes=self.run.stopped is None):
            terminalreporter.write_line(line)
        terminalreporter.write_line(gate_line(self.run), bold=True)
        for line in self.published:
            terminalreporter.write_line(line)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # tryfirst: before the terminal summary, which lists what was written.
        if self.is_controller and self.run is None and not self.config.option.collectonly:
            # Planned but never reviewed (pytest.exit, another runner): never a pass.
            self.published = ["swarmgate: the review did not run in this session, so the gate fails (fail closed)"]
            if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return
        if not self.is_controller or self.run is None:
            return
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
        if self.run.stopped is not None and session.exitstatus in (
            pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED, pytest.ExitCode.TESTS_FAILED
        ):
            # "The review could not be completed", never read as "the code is unsafe".
            session.exitstatus = REVIEW_INCOMPLETE
            return
        # The gate does not depend on which items ran: deselecting a failing section item
        # with -k or -m does not let an UNSAFE diff through.
        if not run_passes(self.run, self.settings.on_inconclusive):  # type: ignore[arg-type]
            if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
