"""`pytest --swarm-calibrate [PATH]`: score the gate on a labeled corpus, one item per fixture.

The panel runs once, on the controller, over every section of every fixture in a single
`runner.execute` (one engine run under one concurrency limit, the vote cache included), so the
wall time is that of one review. K only moves a threshold over the votes already cast: the
whole K table and curve cost no extra call. xdist workers get the votes through
`workerinput` and collect the same items in the same order.

Quick calibrations the pytest way: `-k`, `-m` and `--deselect` on the fixture items limit the
calls to the selected fixtures. Without xdist the run waits for pytest's own deselection and
reviews the items left. Under xdist the controller must call before its workers start, so before
any collection: it matches the same expressions with pytest's own Expression, KeywordMatcher
and MarkMatcher against each fixture item's names (`swarm-calibrate`, the fixture id, the
`swarm_calibration` marker) and its node id. A deselection made by another plugin's
`pytest_collection_modifyitems` is seen without xdist only; under xdist such an item still
fails closed, since its fixture did not run. The report says how many of the corpus ran.

plugin.py registers CalibrationController in the main process (or the xdist controller) and
CalibrationWorker in an xdist worker. With --swarm-batch the controller hands `runner.execute`
a BatchCaster around the hooks' voter.

A fixture's sections are sent exactly as a normal review of that diff would send them: the
section's own path and content, nothing else. The fixture's file name and its label never
reach a voter - names such as `sqli-orders.bad.diff` would give the answer away.

Imported only with --swarm-calibrate.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import __version__, options
from .core.calibration import CalibrationReport, FixtureRun, calibrate
from .core.corpus import CorpusError, Fixture, load_corpus
from .core.gate import Gate
from .core.text import plural
from .core.texts import TreeFiles
from .core.write import write_atomic, write_text_atomic
from .items import ReviewItem, SectionFailed, junit_properties
from .output.calibration import render_markdown, render_text
from .output.escape import terminal, terminal_block
from .output.plot import plot_k_curve
from .output.terminal import not_reviewed_line, section_line, section_lines
from .sessions import (
    ControllerRun,
    SessionItems,
    check_rootdir,
    forget_passed_phases,
    from_controller,
    guard_logs,
    to_worker,
)
from .stash import fail_session, runs_key

if TYPE_CHECKING:
    from .core.model import RunResult
    from .runner import Plan, VoterChoice
    from .settings import GateSettings

COLLECTOR_NAME = "swarm-calibrate"
WORKERINPUT_KEY = "swarmgate-calibration"
PLOT_SKIPPED = "plot skipped: matplotlib is not installed; pip install 'pytest-swarmgate[plot]'"


class CalibrationItem(ReviewItem):
    """One fixture: passes when the gate in force decides as the label says, fails otherwise."""

    def __init__(self, *, run: FixtureRun, gate: Gate, **kwargs: Any) -> None:
        super().__init__(marker="swarm_calibration", **kwargs)
        self.run = run
        self.gate = gate

    def runtest(self) -> None:
        # The votes may have come in after collection: take the fixture's run as it is now.
        self.run = self.config.stash.get(runs_key, {}).get(self.run.fixture.id, self.run)
        if self.run.results is None:
            raise SectionFailed(["the calibration did not run in this session, so there is no verdict (fail closed)"])
        unjudged = self.run.not_scored(self.gate)
        if unjudged is not None and unjudged.kind == "errors":
            # Never a pass on errors, and never called UNSAFE: the panel decided nothing.
            raise SectionFailed(unjudged_lines(self.run, self.gate, unjudged.reason))
        if unjudged is not None:
            pytest.skip(f"not scored: {terminal(unjudged.reason)}")
        blocked = self.run.blocked(self.gate)
        self.user_properties.append(("swarm_expected", self.run.fixture.expected))
        self.user_properties.append(("swarm_gate", "BLOCKED" if blocked else "PASSED"))
        for result in self.run.results:
            self.user_properties.extend(junit_properties(result))
        if blocked != (self.run.fixture.expected == "UNSAFE"):
            raise SectionFailed(mismatch_lines(self.run, self.gate, blocked, verbose=self.config.get_verbosity() > 0))

    def reportinfo(self) -> tuple[str, int, str]:
        return str(self.path or ""), 0, f"swarm calibration of {self.name}"


def mismatch_lines(run: FixtureRun, gate: Gate, blocked: bool, *, verbose: bool = False) -> list[str]:
    """The failure text: expected vs got, what the fixture is, a line per section (verbose: every vote)."""
    f = run.fixture
    got = "blocks it (UNSAFE)" if blocked else "lets it through (SAFE)"
    lines = [f"{terminal(f.id)}: expected {f.expected}, but the gate at K={gate.k} of N={gate.n} {got}"]
    about = [f"category {f.category}"] + ([f.cwe] if f.cwe else [])
    if f.flaw_path:
        about.append(f"flaw at {f.flaw_path}" + (f":{f.flaw_line}" if f.flaw_line is not None else ""))
    if not verbose:
        lines[0] += " - " + terminal(", ".join(about))
    else:
        lines.append("  " + terminal(", ".join(about)))
        if f.why:
            lines.append("  why: " + terminal(f.why, 300))
    for result in run.results or ():
        shown = section_lines(result, detail=True) if verbose else [section_line(result)]
        lines.extend("  " + line for line in shown)
    for nr in run.not_reviewed:
        lines.append("  " + not_reviewed_line(nr))
    if not run.results:
        lines.append("  no section of this diff was reviewed, so the gate had nothing to block")
    return lines


def unjudged_lines(run: FixtureRun, gate: Gate, reason: str) -> list[str]:
    """The failure text of a fixture the panel did not judge: INCONCLUSIVE, with every vote."""
    f = run.fixture
    lines = [
        f"{terminal(f.id)}: expected {f.expected}, but the gate at K={gate.k} of N={gate.n} is INCONCLUSIVE: "
        f"not scored ({terminal(reason)})"
    ]
    for result in run.results or ():
        lines.extend("  " + line for line in section_lines(result))
    return lines


def preselected(config: pytest.Config, fixture_ids: list[str]) -> set[str]:
    """The fixtures whose items `-k`, `-m` and `--deselect` keep, matched as pytest matches them.

    For the controller under xdist, which must call before any collection (see the module
    docstring). A bad expression is pytest's own usage error.
    """
    from _pytest.mark import KeywordMatcher, MarkMatcher  # no public API for matching a name set
    from _pytest.mark.expression import Expression

    prefixes = tuple(config.getoption("deselect", None) or ())
    try:
        keyword = Expression.compile(config.option.keyword) if config.option.keyword else None
        mark = Expression.compile(config.option.markexpr) if config.option.markexpr else None
    except SyntaxError as exc:  # what Expression raises for a bad expression
        raise pytest.UsageError(f"Wrong expression passed to '-k' or '-m': {exc}") from None
    marks = MarkMatcher.from_markers([pytest.mark.swarm_calibration.mark])
    kept = set()
    for fixture_id in fixture_ids:
        if keyword and not keyword.evaluate(KeywordMatcher({COLLECTOR_NAME, fixture_id, "swarm_calibration"})):
            continue
        if mark and not mark.evaluate(marks):
            continue
        if prefixes and f"{COLLECTOR_NAME}::{fixture_id}".startswith(prefixes):
            continue
        kept.add(fixture_id)
    return kept


class CalibrationCollector(pytest.Collector):
    """The parent of the fixture items, so node ids read `swarm-calibrate::<fixture id>`."""

    def __init__(self, *, runs: tuple[FixtureRun, ...], gate: Gate, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runs = runs
        self.gate = gate

    def collect(self) -> Iterator[pytest.Item]:
        for run in self.runs:
            yield CalibrationItem.from_parent(self, name=run.fixture.id, run=run, gate=self.gate)


def corpus_directory(config: pytest.Config) -> Path:
    """--swarm-calibrate's PATH relative to the invocation directory, or the bundled corpus."""
    raw = options.get(config, "calibrate")
    if not raw:
        # A real directory for any normal install (the package ships it as files).
        return Path(str(files("pytest_swarmgate") / "corpus"))
    return config.invocation_params.dir / Path(raw).expanduser()


def load_fixtures(directory: Path) -> list[Fixture]:
    """The corpus's fixtures; a problem is a one-line usage error."""
    try:
        return load_corpus(directory)
    except CorpusError as exc:
        raise pytest.UsageError(f"swarmgate: {exc}") from None


def fixture_files(fixture: Fixture) -> TreeFiles | None:
    """The fixture's tree, read like a checkout (confined to it, regular files, size-capped); None without one.

    Its label reaches the prompt, so it never names the tree: a tree's name may carry the label."""
    return None if fixture.tree is None else TreeFiles(fixture.tree, label="base tree")


def read_fixture(fixture: Fixture) -> str:
    """A fixture's diff text; an unreadable file is a one-line usage error."""
    try:
        return fixture.text()
    except OSError as exc:
        raise pytest.UsageError(f"swarmgate: cannot read fixture {fixture.diff_path}: {exc.strerror or exc}") from None


class CalibrationItems(SessionItems):
    """What both roles collect: one item per fixture, judged by the gate in force."""

    gate: Gate
    runs: tuple[FixtureRun, ...]

    def collector(self, session: pytest.Session) -> pytest.Collector:
        return CalibrationCollector.from_parent(
            session, name=COLLECTOR_NAME, nodeid=COLLECTOR_NAME, runs=self.runs, gate=self.gate
        )


class CalibrationWorker(CalibrationItems):
    """An xdist worker's calibration: the controller ran the panel; never call the API here."""

    def __init__(self, config: pytest.Config) -> None:
        data = from_controller(config, WORKERINPUT_KEY)
        self.gate = Gate.from_dict(data["gate"])
        self.runs = tuple(FixtureRun.from_dict(r) for r in data["fixtures"])


class CalibrationController(ControllerRun, CalibrationItems):
    """The calibration run of one pytest session (the xdist controller, or the only process without xdist)."""

    def __init__(self, config: pytest.Config) -> None:
        from .runner import load_policy, plan, settle_panel
        from .settings import resolve

        self.config = config
        self.report: CalibrationReport | None = None
        self.review: RunResult | None = None
        self.notices: list[str] = []
        # Under xdist the run happens before pytest prints its header: progress is held and
        # printed under the header. Not for a batch, whose polls may take hours.
        self.held_lines: list[str] | None = None
        guard_logs(config)
        check_rootdir(config, "--swarm-calibrate")
        # The team's guidance applies to calibration too: that is how a team measures what it changes.
        # Calibration scores verdicts: no fixture's author reads a synthesis, so none is paid for.
        settings = dataclasses.replace(settle_panel(config, resolve(config)), aggregate="off")
        self.settings: GateSettings = load_policy(config, settings, None)
        self.gate = self.settings.gate
        self.target_fpr: float = options.get(config, "target-fpr")
        self.min_scored: float = options.get(config, "min-scored")
        self.chosen: list[bool] = []
        self.batch = bool(options.get(config, "batch"))
        self.poll_seconds = self._poll_seconds() if self.batch else 0.0
        raw_report = options.get(config, "calibration-report")
        self.report_base = config.invocation_params.dir / Path(raw_report).expanduser() if raw_report else None
        if self.report_base is not None:
            # Now, not after a run that may have cost a batch of calls.
            try:
                self.report_base.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise pytest.UsageError(
                    f"swarmgate: cannot write the calibration report under {self.report_base.parent}: "
                    f"{exc.strerror or exc}"
                ) from None
        self.corpus = corpus_directory(config)
        fixtures = load_fixtures(self.corpus)
        # The source names the fixture for a parse error; it is never part of a prompt.
        self.plans: tuple[Plan, ...] = tuple(
            plan(config, self.settings, str(f.diff_path), read_fixture(f), base_files=fixture_files(f))
            for f in fixtures
        )
        self.runs = tuple(FixtureRun(f, p.not_reviewed) for f, p in zip(fixtures, self.plans, strict=True))
        # The fixture ids pytest kept after deselection; None until collection finished here.
        self.collected: set[str] | None = None

    @staticmethod
    def _poll_seconds() -> float:
        from .core.batch import poll_seconds

        try:
            return poll_seconds()
        except ValueError as exc:
            raise pytest.UsageError(f"swarmgate: {exc}") from None

    @property
    def sections(self) -> int:
        return sum(len(p.sections) for p in self.plans)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # After every deselection: the items left are the fixtures to run (no xdist).
        self.collected = {i.run.fixture.id for i in session.items if isinstance(i, CalibrationItem)}

    def selected(self) -> list[bool]:
        """Per fixture, whether this run calls the panel on it."""
        ids = [run.fixture.id for run in self.runs]
        kept = self.collected if self.collected is not None else preselected(self.config, ids)
        return [fixture_id in kept for fixture_id in ids]

    def _write(self, line: str) -> None:
        if self.held_lines is not None:
            self.held_lines.append(line)
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and (self.config.get_verbosity() >= 0 or self.batch):  # a batch may take hours
            reporter.write_line(line)

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        via = ", through the Message Batches API" if self.batch else ""
        held, self.held_lines = self.held_lines or [], None
        return [
            (
                f"swarmgate calibration: {self.settings.describe_panel()}, corpus: {self.corpus}, "
                f"{plural(len(self.runs), 'fixture')}, {plural(self.sections, 'section')}{via}"
            ),
            *held,
        ]

    def run_once(self) -> None:
        """Run the panel over every fixture and build the report."""
        self.chosen = self.selected()
        if not any(self.chosen):
            # Every fixture item deselected (`-m "not swarm_calibration"`): nothing to call or score.
            self._write(f"swarmgate: no calibration fixture selected of {len(self.runs)}: no calls made")
            return
        plans = [p for p, keep in zip(self.plans, self.chosen, strict=True) if keep]
        if self.config.pluginmanager.has_plugin("dsession") and not self.batch:
            self.held_lines = []
        self._write(
            f"swarmgate: calibrating on {len(plans)} of {plural(len(self.runs), 'fixture')}: "
            f"{plural(sum(len(p.sections) for p in plans), 'section')} x {plural(self.settings.n, 'voter')} ..."
        )
        self.review = self._execute(plans)
        if self.review.stopped is not None:
            # Scores over calls never sent would be noise: say why, with the review-incomplete code.
            from .exitcodes import stopped_code

            code = stopped_code(self.review.stopped.cause)
            pytest.exit(f"swarmgate: calibration {self.review.stopped.line()} [exit {code}]", returncode=code)
        # The engine keeps section order, and fixtures' sections were queued fixture by fixture.
        results = iter(self.review.results)
        self.runs = tuple(
            dataclasses.replace(run, results=tuple(itertools.islice(results, len(p.sections)))) if keep else run
            for run, p, keep in zip(self.runs, self.plans, self.chosen, strict=True)
        )
        self.config.stash[runs_key] = {run.fixture.id: run for run in self.runs}
        self.report = calibrate(
            [run.votes() for run in self.ran],
            self.gate.n,
            on_inconclusive=self.gate.on_inconclusive,
            target_fpr=self.target_fpr,
            batch=self.batch,
            min_scored=self.min_scored,
        )
        if self.report_base is not None:
            self.notices = self._write_reports(self.report_base, self.report)

    @property
    def ran(self) -> list[FixtureRun]:
        """The fixtures this run called the panel on (all, unless -k, -m or --deselect narrowed them)."""
        return [run for run, keep in zip(self.runs, self.chosen, strict=True) if keep]

    def _execute(self, plans: list[Plan]) -> RunResult:
        """Every section of every selected fixture in one engine run: runner.execute over one combined plan."""
        from .core.diff import diff_sha256
        from .runner import Plan, execute

        combined = Plan(
            source=f"calibration corpus {self.corpus}",
            diff_sha256=diff_sha256("\n".join(p.diff_sha256 for p in plans)),
            sections=tuple(s for p in plans for s in p.sections),
            not_reviewed=(),
        )
        if not self.batch or not combined.sections:
            return execute(self.config, self.settings, combined)
        # One batch for the run: the engine must start every call at once (see batch.BatchCaster).
        calls = len(combined.sections) * self.settings.n
        # A batch takes minutes to hours: only a deadline the job gave bounds it, never the default.
        given = options.from_command_line(self.config, "deadline") or self.config.getini("swarm_deadline")
        settings = dataclasses.replace(
            self.settings,
            concurrency=max(self.settings.concurrency, calls),
            deadline=self.settings.deadline if given else None,
        )
        return execute(self.config, settings, combined, self._batch_voter(settings))

    def _batch_voter(self, settings: GateSettings) -> VoterChoice:
        """The hooks' voter, sending its calls as Message Batches (--swarm-batch)."""
        from .core.batch import BatchCaster
        from .core.voters import AnthropicCaster
        from .runner import VoterChoice, hook_voter

        choice = hook_voter(self.config, settings)
        if not isinstance(choice.cast, AnthropicCaster):
            raise pytest.UsageError(
                "swarmgate: --swarm-batch sends the built-in voter's calls through the Message Batches API, but "
                f"pytest_swarmgate_make_voter returned a {type(choice.cast).__name__}: drop --swarm-batch or the "
                "custom voter"
            )
        return VoterChoice(
            choice.client, BatchCaster(choice.cast, poll_seconds=self.poll_seconds, progress=self._write)
        )

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        to_worker(node, WORKERINPUT_KEY, {"gate": self.gate.to_dict(), "fixtures": [r.to_dict() for r in self.runs]})

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report is None:
            return
        terminalreporter.write_sep("=", "swarm calibration")
        for line in self.summary_lines(self.report):
            terminalreporter.write_line(line)

    # --- views -------------------------------------------------------------------------

    def summary_lines(self, report: CalibrationReport) -> list[str]:
        """The run in one line, files not reviewed, the report, and the fixtures the gate in force gets wrong."""
        review = self.review
        assert review is not None
        cached = review.cached_votes
        via = " through the Message Batches API" if self.batch else ""
        lines = [
            (
                f"corpus {self.corpus}: {len(self.ran)} of {plural(len(self.runs), 'fixture')} run{self._narrowed()}, "
                f"{plural(len(review.results), 'section')} x {plural(self.settings.n, 'voter')}: "
                f"{plural(review.calls, 'call')}{via}, {plural(cached, 'vote')} from cache, wall "
                f"{review.wall_time_s:.1f}s"
            ),
        ]
        lines.extend(f"note: {terminal(note, 300)}" for note in review.notes)
        for run in self.ran:
            for nr in run.not_reviewed:
                lines.append(f"{terminal(run.fixture.id)}: {not_reviewed_line(nr)}")
        verbose = self.config.get_verbosity() > 0
        lines.extend(terminal_block(line) for line in render_text(report, brief=not verbose).splitlines())
        if not verbose:
            lines.append("per-voter, per-category and pairwise tables: -v or --swarm-calibration-report")
        scored = [run for run in self.ran if run.not_scored(self.gate) is None]
        wrong = [run.fixture.id for run in scored if run.blocked(self.gate) != (run.fixture.expected == "UNSAFE")]
        lines.append(
            f"K={self.gate.k} in force: {len(wrong)} of {plural(len(scored), 'scored fixture')} "
            f"{'disagrees' if len(wrong) == 1 else 'disagree'} with their label"
            + (" (their items fail)" if wrong else "")
            + (f"; {len(self.ran) - len(scored)} not scored" if len(scored) < len(self.ran) else "")
        )
        lines.extend(self.notices)
        return lines

    def _narrowed(self) -> str:
        return " (selected with -k, -m or --deselect)" if len(self.ran) < len(self.runs) else ""

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """No K to recommend from what was measured: the run fails, and says why in one line (and the
        fixtures' passed setup and teardown reports leave the terminal's stats, see forget_passed_phases).

        Too few fixtures judged: exit 3, not 1 - the panel could not judge (an endpoint problem),
        which is not a gate that disagrees. Judged, but no K within the target FPR flags a known-bad
        fixture: exit 1, as for any fixture the gate gets wrong - the panel judged and missed."""
        forget_passed_phases(self.config, COLLECTOR_NAME)
        report = self.report
        if report is None or (report.judged_enough and not report.found_nothing):
            return
        self.notices.append(f"swarmgate: calibration failed: {report.recommendation}")
        if not report.judged_enough:
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
        else:
            fail_session(session, pytest.ExitCode.TESTS_FAILED)

    def document(self, report: CalibrationReport) -> dict[str, Any]:
        """The JSON report: the calibration report, and every fixture with every vote cast on it."""
        review = self.review
        assert review is not None
        return {
            "generator": {"name": "pytest-swarmgate", "version": __version__},
            "corpus": str(self.corpus),
            "panel": [v.to_dict() for v in self.settings.panel],
            **self.gate.to_dict(),
            "batch": self.batch,
            "totals": {
                "fixtures": len(self.ran),
                "corpus_fixtures": len(self.runs),
                "sections": len(review.results),
                "votes": len(review.votes),
                "calls": review.calls,
                "cached_votes": review.cached_votes,
                "wall_time_s": review.wall_time_s,
            },
            "report": report.to_dict(),
            "fixtures": [self._fixture_document(run) for run in self.ran],
        }

    def _fixture_document(self, run: FixtureRun) -> dict[str, Any]:
        """One fixture of the JSON report: its run, and what the gate in force made of it."""
        unjudged = run.not_scored(self.gate)
        blocked = run.blocked(self.gate)
        return {
            **run.to_dict(),
            "blocked": blocked,
            "not_scored": None if unjudged is None else unjudged.reason,
            "agrees": unjudged is None and blocked == (run.fixture.expected == "UNSAFE"),
        }

    def _write_reports(self, base: Path, report: CalibrationReport) -> list[str]:
        """Write BASE.json, BASE.md and (with matplotlib) BASE.png; the lines to show about them."""
        json_path, md_path, png_path = (Path(f"{base}{suffix}") for suffix in (".json", ".md", ".png"))
        heading = (
            f"# Swarm calibration\n\ncorpus `{self.corpus}`, {self.settings.describe_panel()} in force"
            f"{', Message Batches' if self.batch else ''}\n\n"
        )
        try:
            write_text_atomic(json_path, json.dumps(self.document(report), indent=2, ensure_ascii=False) + "\n")
            write_text_atomic(md_path, heading + render_markdown(report))
            plotted = write_plot(report, png_path)
        except OSError as exc:
            raise pytest.UsageError(f"swarmgate: cannot write the calibration report {base}: {exc}") from None
        written = [json_path, md_path] + ([png_path] if plotted else [])
        lines = ["calibration report written: " + ", ".join(str(p) for p in written)]
        if not plotted:
            lines.append(PLOT_SKIPPED)
        return lines


def write_plot(report: CalibrationReport, target: Path) -> bool:
    """plot_k_curve, atomically: False (and no file) when matplotlib is not installed."""
    return write_atomic(target, lambda tmp: plot_k_curve(report, tmp))
