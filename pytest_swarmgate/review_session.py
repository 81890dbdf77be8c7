"""The review gate of one pytest session: plan on configure, review once, report at the end.

Registered by plugin.py only with --swarm-review, so it may import the review machinery at
module level: ReviewController in the main process (or the xdist controller), ReviewWorker
in an xdist worker. The controller plans and reviews before the workers start and hands
them the result; a worker never calls the API.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, NoReturn

import pytest

from . import options
from .core.decision import error_summary, nothing_valid, run_passes
from .core.diff import DiffTooLarge
from .core.engine import ReviewStats
from .core.faults import RunFault
from .core.model import NotReviewed, RunResult, Section, SectionResult, Stopped
from .core.origins import origins, shadowing
from .core.text import plural
from .exitcodes import REVIEW_INCOMPLETE, stopped_code
from .items import COLLECTOR_NAME, ReviewCollector
from .output.escape import terminal
from .output.progress import Progress
from .output.publish import github_outputs, now_utc, write_reports
from .output.terminal import Line, report_lines
from .runner import (
    Plan,
    execute,
    load_policy,
    over_ceiling,
    plan,
    preflight,
    read_source,
    settle_panel,
    stopped_run,
)
from .sessions import (
    ControllerRun,
    SessionItems,
    check_rootdir,
    forget_passed_phases,
    from_controller,
    guard_logs,
    to_worker,
)
from .settings import GateSettings, resolve
from .stash import fail_session, gate_finished_key, run_key

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


RELEASE_MIN_HEX = 32  # 128 bits: no second diff can be brute-forced to share the prefix


def release_held(plan: Plan, allowed: str | None) -> Plan:
    """Release the held changes when a human typed this diff's sha256 (all 64 hex, or at least 32).

    Bound to the diff, so an allowance given for one push does not carry over to the next,
    and long enough that nobody can make another diff that shares it.
    """
    if allowed is None:
        return plan
    value = allowed.strip().lower()
    if not RELEASE_MIN_HEX <= len(value) <= 64 or any(c not in "0123456789abcdef" for c in value):
        raise pytest.UsageError(
            f"swarmgate: --swarm-allow-held takes this diff's sha256 ({RELEASE_MIN_HEX} to 64 hex digits), "
            f"got {terminal(allowed[:80])!r}: --swarm-allow-held={plan.diff_sha256}"
        )
    if not plan.held:
        return plan
    if not plan.diff_sha256.startswith(value):
        raise pytest.UsageError(
            f"swarmgate: --swarm-allow-held={terminal(allowed[:80])} does not match this diff "
            f"(sha256 {plan.diff_sha256}): held changes are released for one exact diff"
        )
    return dataclasses.replace(plan, held=(), released=plan.held)


def write_line(terminalreporter: Any, line: Line) -> None:
    """A summary line in its colour, through pytest's terminal writer (which honours --color)."""
    markup = {line.colour: True} if line.colour else {}
    terminalreporter.write_line(line.text, bold=line.bold, **markup)


class ReviewItems(SessionItems):
    """What both roles collect: an item per section, per file not reviewed, and the gate."""

    sections: tuple[Section, ...]
    not_reviewed: tuple[NotReviewed, ...]

    def collector(self, session: pytest.Session) -> pytest.Collector:
        return ReviewCollector.from_parent(
            session, name=COLLECTOR_NAME, nodeid=COLLECTOR_NAME, sections=self.sections, not_reviewed=self.not_reviewed
        )


class ReviewWorker(ReviewItems):
    """An xdist worker's gate: the controller planned and reviewed; never call the API here."""

    def __init__(self, config: pytest.Config) -> None:
        data = from_controller(config, WORKERINPUT_KEY)
        self.sections = tuple(Section.from_dict(s) for s in data["sections"])
        self.not_reviewed = tuple(NotReviewed.from_dict(n) for n in data["not_reviewed"])
        config.stash[run_key] = RunResult.from_dict(data["run"]) if data["run"] is not None else None


def exit_incomplete(
    config: pytest.Config, settings: GateSettings, review_plan: Plan | None, stopped: Stopped, verb: str | None = None
) -> NoReturn:
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
        )
        github_outputs(run, env=os.environ, limit=0, out=published)
        failed = [line for line in published.lines if "could not write" in line]
        note = f" ({'; '.join(failed)})" if failed else ""
    code = stopped_code(stopped.cause)
    pytest.exit(f"swarmgate: {terminal(stopped.line(verb), 1000)}{terminal(note, 500)} [exit {code}]", returncode=code)


@dataclass(frozen=True)
class Prepared:
    """What the controller knows before collection: the settings, the plan, and where the diff came from."""

    settings: GateSettings
    plan: Plan
    source: str


def prepare(config: pytest.Config, stdin: bytes | None = None) -> Prepared:
    """Everything before collection: check the options, settle the panel, read and plan the diff, preflight.

    Ends the session when the review cannot run: a UsageError for bad input, `pytest.exit` with
    REVIEW_INCOMPLETE (and the reports) when the endpoint or a ceiling stops it.
    """
    guard_logs(config)  # first: the SDK may log from the first call it makes (the preflight)
    check_rootdir(config, "--swarm-diff")
    options.get(config, "annotations-max")  # checked now, not after the review was paid for
    for name in ("json", "sarif"):
        target = options.get(config, name)
        if target and (config.invocation_params.dir / target).is_dir():
            raise pytest.UsageError(f"swarmgate: --swarm-{name}={target} is a directory; give a file path")
    settings = settle_panel(config, resolve(config))
    preflight_mode = options.preflight_mode(config)
    if preflight_mode == "only":
        preflight_only(config, settings)
    diff_arg, base = diff_source(config)
    settings = load_policy(config, settings, base)
    try:
        source, text = read_source(config, diff_arg, base, stdin, settings.max_diff_bytes)
    except DiffTooLarge as exc:
        exit_incomplete(config, settings, None, Stopped("ceiling", str(exc)))
    if diff_arg and (not text or text.isspace()) and options.typed_by_hand(config, "allow-empty") is None:
        # Fail closed: `git diff ... | pytest --swarm-diff=-` gives empty input when git fails.
        raise pytest.UsageError(
            f"swarmgate: the diff from {source} is empty; if nothing changed, pass --swarm-allow-empty "
            "(or review with --swarm-base, where an empty diff is git's own answer)"
        )
    review_plan = plan(config, settings, source, text, base=base, tree=config.invocation_params.dir)
    ceiling = over_ceiling(review_plan, settings)
    if ceiling:
        exit_incomplete(config, settings, review_plan, Stopped("ceiling", ceiling))
    review_plan = release_held(review_plan, options.typed_by_hand(config, "allow-held"))
    refuse_shadowed_modules(config, review_plan)  # before the SDK is imported (preflight builds the client)
    try:
        # Before collection: a wrong key or a dead endpoint costs seconds, not the project's collection.
        # Not in a mode that reviews nothing (--collect-only, --fixtures, ...).
        if not options.info_mode(config) and preflight_mode == "auto":
            preflight(config, settings, review_plan)
    except RunFault as exc:
        exit_incomplete(config, settings, review_plan, preflight_stop(exc))
    return Prepared(settings, review_plan, source)


def refuse_shadowed_modules(config: pytest.Config, review_plan: Plan) -> None:
    """A module the gate imports must not be a file this diff changes (see `core/origins.py`)."""
    changed = [p for s in review_plan.sections for p in (s.path, s.old_path) if p]
    changed += [p for nr in review_plan.not_reviewed for p in (nr.path, nr.old_path) if p]
    changed += [h.path for h in (*review_plan.held, *review_plan.released)]
    trees = {config.invocation_params.dir, config.rootpath}
    hits = shadowing(origins(), trees, changed)
    if hits:
        name, path = hits[0]
        raise pytest.UsageError(
            f"swarmgate: the module {name} would be imported from {terminal(path)}, a file this diff changes, "
            "so the pull request would decide its own review; run the gate from the base checkout (README: CI)"
        )


def preflight_stop(exc: RunFault) -> Stopped:
    return Stopped("preflight" if exc.retry else "config", str(exc))


def preflight_only(config: pytest.Config, settings: GateSettings) -> None:
    """--swarm-preflight: check the set-up, say so in one line, and end the session."""
    try:
        checked = preflight(config, settings, None, force=True)
    except RunFault as exc:
        exit_incomplete(config, settings, None, preflight_stop(exc), verb="preflight failed")
    # Without any user:password@ a base URL may carry: the line is printed and logged.
    base_url = os.environ.get("ANTHROPIC_BASE_URL", "")
    scheme, sep, rest = base_url.partition("://")
    host, slash, path = rest.partition("/")
    endpoint = f"{scheme}{sep}{host.rpartition('@')[2]}{slash}{path}" if base_url else "the default endpoint"
    nothing = "nothing to check (a custom voter, or a client without a Models API)"
    what = "; ".join(terminal(c) for c in checked) if checked else nothing
    pytest.exit(f"swarmgate: preflight passed at {terminal(endpoint)}: {what}", returncode=0)


class ReviewController(ControllerRun, ReviewItems):
    """The gate for one pytest session (the xdist controller, or the only process without xdist)."""

    def __init__(self, config: pytest.Config, ready: Prepared) -> None:
        self.config = config
        self.settings, self.plan, self.source = ready.settings, ready.plan, ready.source
        self.sections, self.not_reviewed = ready.plan.sections, ready.plan.not_reviewed
        self.run: RunResult | None = None
        self.published: list[str] = []
        self.started_at = ""
        self.progress = Progress(None, 0)

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        skipped = f", {len(self.not_reviewed)} not reviewed" if self.not_reviewed else ""
        lines = [
            f"swarmgate: {terminal(self.settings.describe_panel())}, diff: {terminal(self.source)}, "
            f"{plural(len(self.sections), 'section')}{skipped}"
        ]
        lines += [f"swarmgate: released by hand: {terminal(c.line())}" for c in self.plan.released]
        policy = self.settings.policy
        if policy is not None:
            lines.append(
                f"swarmgate: team guidance {terminal(policy.path)} from the {terminal(policy.source)}, "
                f"sha256 {policy.sha256[:12]}"
            )
        return lines + self.progress.release()

    def run_once(self) -> None:
        """Cast every vote of the plan."""
        stats = ReviewStats()
        # -q: only what fails and the gate line.
        quiet = self.config.get_verbosity() < 0
        reporter = None if quiet else self.config.pluginmanager.get_plugin("terminalreporter")
        # Under xdist the review runs in sessionstart, before pytest has printed its header.
        hold = self.config.pluginmanager.has_plugin("dsession")
        self.progress = Progress(reporter, len(self.plan.sections), stats, hold=hold)
        sections, voters = plural(len(self.plan.sections), "section"), plural(self.settings.n, "voter")
        self.progress.line(f"swarmgate: reviewing {sections} x {voters} ...")
        self.started_at = now_utc()
        try:
            run = execute(self.config, self.settings, self.plan, stats=stats, on_progress=self.progress.calls)
            # The gate's run only: a calibration scores each fixture's errors, the fixture returns them.
            unvoted = None if run.stopped else nothing_valid(run.results)
            errors = error_summary(run.results)
            notes = (*run.notes, errors) if errors and not unvoted else run.notes
            self.run = dataclasses.replace(run, stopped=unvoted or run.stopped, notes=notes)
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
                "sections": [s.to_dict() for s in self.sections],
                "not_reviewed": [n.to_dict() for n in self.not_reviewed],
                "run": self.run.to_dict() if self.run is not None else None,
            },
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.run is None:
            for line in self.published:
                terminalreporter.write_line(line, red=True)
            return
        terminalreporter.write_sep("=", "swarm review")
        lines = report_lines(self.run, verbosity=self.config.get_verbosity())
        for each in lines[:-1]:
            write_line(terminalreporter, each)
        for text in self.published:
            terminalreporter.write_line(text)
        write_line(terminalreporter, lines[-1])

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # tryfirst: before the terminal summary, which lists what was written.
        self.config.stash[gate_finished_key] = True
        forget_passed_phases(self.config, COLLECTOR_NAME)
        if self.run is None:
            if not self.config.option.collectonly:
                # Planned but never reviewed (pytest.exit, another runner): never a pass.
                # Not 1: nothing was judged UNSAFE; the review could not be completed.
                self.published = [
                    f"swarmgate: the review did not run in this session, so the gate fails (fail closed) "
                    f"[exit {REVIEW_INCOMPLETE}]"
                ]
                fail_session(session, REVIEW_INCOMPLETE)
            return
        published = write_reports(
            self.run,
            base=self.config.invocation_params.dir,
            json_path=options.get(self.config, "json"),
            sarif_path=options.get(self.config, "sarif"),
            started_at=self.started_at,
        )
        annotations = github_outputs(
            self.run,
            env=os.environ,
            limit=options.get(self.config, "annotations-max"),
            out=published,
        )
        self.published = published.lines + annotations
        if published.failed:
            # An output CI relies on is missing: never let that look like a clean pass.
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        if self.run.stopped is not None:
            # "The review could not be completed", never read as "the code is unsafe".
            fail_session(session, stopped_code(self.run.stopped.cause))
        elif not run_passes(self.run):
            # The gate does not depend on which items ran: deselecting a failing section item
            # with -k or -m does not let an UNSAFE diff through.
            fail_session(session, pytest.ExitCode.TESTS_FAILED)
