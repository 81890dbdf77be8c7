"""`pytest --swarm-calibrate [PATH]`: score the gate on a labeled corpus, one item per fixture.

The panel runs once, on the controller, over every section of every fixture in a single
`gate.execute` (one engine run under one concurrency limit, the vote cache included), so the
wall time is that of one review. K only moves a threshold over the votes already cast: the
whole K table and curve cost no extra call. xdist workers get the votes through
`workerinput` and collect the same items in the same order.

A fixture's sections are sent exactly as a normal review of that diff would send them: the
section's own path and content, nothing else. The fixture's file name and its label never
reach a voter - names such as `sqli-orders.bad.diff` would give the answer away.

Imported only with --swarm-calibrate.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import pytest

from . import __version__, options
from .core.calibration import (
    CalibrationReport,
    FixtureVotes,
    calibrate,
    fixture_flagged,
    plot_k_curve,
)
from .core.corpus import CorpusError, Fixture, load_corpus
from .core.model import NotReviewed, SectionResult
from .core.write import write_atomic, write_text_atomic
from .items import ReviewItem, SectionFailed, junit_properties
from .output.escape import terminal, terminal_block
from .output.terminal import section_lines
from .sessions import ControllerRun, check_rootdir, from_controller, to_worker

if TYPE_CHECKING:
    from .configuration import GateSettings
    from .core.model import RunResult
    from .runner import Plan

COLLECTOR_NAME = "swarm-calibrate"
WORKERINPUT_KEY = "swarmgate-calibration"
PLOT_SKIPPED = "plot skipped: matplotlib is not installed; pip install pytest-swarmgate[plot]"


@dataclass(frozen=True)
class GatePoint:
    """The gate in force: a fixture is blocked or passed at K of N under this INCONCLUSIVE policy."""

    n: int
    k: int
    on_inconclusive: str


@dataclass(frozen=True)
class FixtureRun:
    """One fixture, its files that were not reviewed, and its sections' results (None before the run)."""

    fixture: Fixture
    not_reviewed: tuple[NotReviewed, ...] = ()
    results: tuple[SectionResult, ...] | None = None

    def votes(self) -> FixtureVotes:
        return FixtureVotes(self.fixture, tuple((r.section.id, r.votes) for r in self.results or ()))

    def blocked(self, gate: GatePoint) -> bool:
        """Whether the gate in force blocks this fixture (`calibration.fixture_flagged`)."""
        return fixture_flagged(self.votes(), gate.n, gate.k, gate.on_inconclusive)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        fixture = dataclasses.asdict(self.fixture)
        fixture["diff_path"] = str(self.fixture.diff_path)
        return {
            "fixture": fixture,
            "not_reviewed": [n.to_dict() for n in self.not_reviewed],
            "results": None if self.results is None else [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FixtureRun:
        fixture = dict(d["fixture"])
        fixture["diff_path"] = Path(fixture["diff_path"])
        results = d.get("results")
        return cls(
            fixture=Fixture(**fixture),
            not_reviewed=tuple(NotReviewed.from_dict(n) for n in d.get("not_reviewed") or ()),
            results=None if results is None else tuple(SectionResult.from_dict(r) for r in results),
        )


runs_key = pytest.StashKey[dict[str, FixtureRun]]()


class CalibrationItem(ReviewItem):
    """One fixture: passes when the gate in force decides as the label says, fails otherwise."""

    def __init__(self, *, run: FixtureRun, gate: GatePoint, **kwargs: Any) -> None:
        super().__init__(marker="swarm_calibration", **kwargs)
        self.run = run
        self.gate = gate

    def runtest(self) -> None:
        # The votes may have come in after collection: take the fixture's run as it is now.
        self.run = self.config.stash.get(runs_key, {}).get(self.run.fixture.id, self.run)
        if self.run.results is None:
            raise SectionFailed(["the calibration did not run in this session, so there is no verdict (fail closed)"])
        blocked = self.run.blocked(self.gate)
        self.user_properties.append(("swarm_expected", self.run.fixture.expected))
        self.user_properties.append(("swarm_gate", "BLOCKED" if blocked else "PASSED"))
        for result in self.run.results:
            self.user_properties.extend(junit_properties(result))
        if blocked != (self.run.fixture.expected == "UNSAFE"):
            raise SectionFailed(mismatch_lines(self.run, self.gate, blocked))

    def reportinfo(self) -> tuple[str, int, str]:
        return str(self.path or ""), 0, f"swarm calibration of {self.name}"


def mismatch_lines(run: FixtureRun, gate: GatePoint, blocked: bool) -> list[str]:
    """The failure text: expected vs got, what the fixture is, then every section's votes."""
    f = run.fixture
    got = "blocks it (UNSAFE)" if blocked else "lets it through (SAFE)"
    lines = [f"{terminal(f.id)}: expected {f.expected}, but the gate at K={gate.k} of N={gate.n} {got}"]
    about = [f"category {f.category}"] + ([f.cwe] if f.cwe else [])
    if f.flaw_path:
        about.append(f"flaw at {f.flaw_path}" + (f":{f.flaw_line}" if f.flaw_line is not None else ""))
    lines.append("  " + terminal(", ".join(about)))
    if f.why:
        lines.append("  why: " + terminal(f.why, 300))
    for result in run.results or ():
        lines.extend("  " + line for line in section_lines(result))
    for nr in run.not_reviewed:
        lines.append(f"  {terminal(nr.path)}: not reviewed ({terminal(nr.reason)})")
    if not run.results:
        lines.append("  no section of this diff was reviewed, so the gate had nothing to block")
    return lines


class CalibrationCollector(pytest.Collector):
    """The parent of the fixture items, so node ids read `swarm-calibrate::<fixture id>`."""

    def __init__(self, *, runs: tuple[FixtureRun, ...], gate: GatePoint, **kwargs: Any) -> None:
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


def read_fixture(fixture: Fixture) -> str:
    """A fixture's diff text; an unreadable file is a one-line usage error."""
    try:
        return fixture.text()
    except OSError as exc:
        raise pytest.UsageError(f"swarmgate: cannot read fixture {fixture.diff_path}: {exc.strerror or exc}") from None


class CalibrationSession(ControllerRun):
    """The calibration run of one pytest session, registered only with --swarm-calibrate."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.report: CalibrationReport | None = None
        self.review: RunResult | None = None
        self.notices: list[str] = []
        self._batching = False
        data = from_controller(config, WORKERINPUT_KEY)
        if data is not None:
            # An xdist worker: the controller ran the panel; never call the API here.
            self.is_controller = False
            self.gate = GatePoint(**data["gate"])
            self.runs = tuple(FixtureRun.from_dict(r) for r in data["fixtures"])
            return
        from .configuration import resolve
        from .runner import plan, settle_panel

        check_rootdir(config, "--swarm-calibrate")
        self.is_controller = True
        self.settings: GateSettings = settle_panel(config, resolve(config))
        self.gate = GatePoint(self.settings.n, self.settings.k, self.settings.on_inconclusive)
        self.target_fpr: float = options.get(config, "target-fpr")
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
                    f"swarmgate: cannot write the calibration report under {self.report_base.parent}: {exc.strerror or exc}"
                ) from None
        self.corpus = corpus_directory(config)
        fixtures = load_fixtures(self.corpus)
        # The source names the fixture for a parse error; it is never part of a prompt.
        self.plans: tuple[Plan, ...] = tuple(
            plan(config, self.settings, str(f.diff_path), read_fixture(f)) for f in fixtures
        )
        self.runs = tuple(FixtureRun(f, p.not_reviewed) for f, p in zip(fixtures, self.plans))

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

    def _write(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        if not self.is_controller:
            return None
        via = ", through the Message Batches API" if self.batch else ""
        return (f"swarmgate calibration: {self.settings.describe_panel()}, corpus: {self.corpus}, "
                f"{len(self.runs)} fixtures, {self.sections} sections{via}")

    def run_once(self) -> None:
        """Run the panel over every fixture and build the report."""
        if not self.is_controller:
            return
        self._write(f"swarmgate: calibrating on {len(self.runs)} fixtures: "
                    f"{self.sections} sections x {self.settings.n} voters ...")
        self.review = self._execute()
        if self.review.stopped is not None:
            # Scores over calls never sent would be noise: say why, with the review-incomplete code.
            from .exitcodes import REVIEW_INCOMPLETE

            pytest.exit(f"swarmgate: calibration {self.review.stopped.line()} [exit {REVIEW_INCOMPLETE}]",
                        returncode=REVIEW_INCOMPLETE)
        # The engine keeps section order, and fixtures' sections were queued fixture by fixture.
        results = iter(self.review.results)
        self.runs = tuple(
            dataclasses.replace(run, results=tuple(itertools.islice(results, len(p.sections))))
            for run, p in zip(self.runs, self.plans)
        )
        self.config.stash[runs_key] = {run.fixture.id: run for run in self.runs}
        self.report = calibrate(
            [run.votes() for run in self.runs],
            self.settings.n,
            target_fpr=self.target_fpr,
            on_inconclusive=self.settings.on_inconclusive,  # type: ignore[arg-type]
            batch=self.batch,
        )
        if self.report_base is not None:
            self.notices = self._write_reports(self.report_base, self.report)

    def _execute(self) -> RunResult:
        """Every section of every fixture in one engine run: gate.execute over one combined plan."""
        from .core.diff import diff_sha256
        from .runner import Plan, execute

        combined = Plan(
            source=f"calibration corpus {self.corpus}",
            diff_sha256=diff_sha256("\n".join(p.diff_sha256 for p in self.plans)),
            sections=tuple(s for p in self.plans for s in p.sections),
            not_reviewed=(),
        )
        settings = self.settings
        if self.batch:
            # One batch for the run: the engine must start every call at once (see batch.BatchVoter).
            settings = dataclasses.replace(settings, concurrency=max(settings.concurrency, self.sections * settings.n))
        self._batching = self.batch
        try:
            return execute(self.config, settings, combined)
        finally:
            self._batching = False

    @pytest.hookimpl(wrapper=True)
    def pytest_swarmgate_make_voter(self, config: pytest.Config, settings: GateSettings, client: Any) -> Any:
        """With --swarm-batch, the calibration run's voter sends its calls as Message Batches."""
        cast = yield
        if not self._batching:
            return cast
        from .core.batch import BatchVoter
        from .core.voters import AnthropicVoter

        if not isinstance(cast, AnthropicVoter):
            raise pytest.UsageError(
                "swarmgate: --swarm-batch sends the built-in voter's calls through the Message Batches API, but "
                f"pytest_swarmgate_make_voter returned a {type(cast).__name__}: drop --swarm-batch or the custom voter"
            )
        return BatchVoter(cast, poll_seconds=self.poll_seconds, progress=self._write)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        to_worker(node, WORKERINPUT_KEY, {"gate": dataclasses.asdict(self.gate), "fixtures": [r.to_dict() for r in self.runs]})

    def collector(self, session: pytest.Session) -> pytest.Collector:
        return CalibrationCollector.from_parent(
            session, name=COLLECTOR_NAME, nodeid=COLLECTOR_NAME, runs=self.runs, gate=self.gate
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.is_controller or self.report is None:
            return
        terminalreporter.section("swarm calibration")
        for line in self.summary_lines(self.report):
            terminalreporter.write_line(line)

    # --- views -------------------------------------------------------------------------

    def summary_lines(self, report: CalibrationReport) -> list[str]:
        """The run in one line, files not reviewed, the report, and the fixtures the gate in force gets wrong."""
        review = self.review
        assert review is not None
        cached = len(review.votes) - review.calls
        via = " through the Message Batches API" if self.batch else ""
        lines = [
            (f"corpus {self.corpus}: {len(self.runs)} fixtures, {len(review.results)} sections x {self.settings.n} "
             f"voters: {review.calls} calls{via}, {cached} votes from cache, wall {review.wall_time_s:.1f}s"),
        ]
        for run in self.runs:
            for nr in run.not_reviewed:
                lines.append(f"{terminal(run.fixture.id)}: {terminal(nr.path)} not reviewed ({terminal(nr.reason)})")
        lines.extend(terminal_block(line) for line in report.render_text().splitlines())
        wrong = [run.fixture.id for run in self.runs if run.blocked(self.gate) != (run.fixture.expected == "UNSAFE")]
        lines.append(
            f"K={self.gate.k} in force: {len(wrong)} of {len(self.runs)} fixtures disagree with their label"
            + (" (their items fail)" if wrong else "")
        )
        lines.extend(self.notices)
        return lines

    def document(self, report: CalibrationReport) -> dict[str, Any]:
        """The JSON report: the calibration report, and every fixture with every vote cast on it."""
        review = self.review
        assert review is not None
        return {
            "generator": {"name": "pytest-swarmgate", "version": __version__},
            "corpus": str(self.corpus),
            "panel": [v.to_dict() for v in self.settings.panel],
            "k": self.gate.k,
            "on_inconclusive": self.gate.on_inconclusive,
            "batch": self.batch,
            "totals": {
                "fixtures": len(self.runs),
                "sections": len(review.results),
                "votes": len(review.votes),
                "calls": review.calls,
                "cached_votes": len(review.votes) - review.calls,
                "wall_time_s": review.wall_time_s,
            },
            "report": report.to_dict(),
            "fixtures": [
                {**run.to_dict(), "blocked": run.blocked(self.gate),
                 "agrees": run.blocked(self.gate) == (run.fixture.expected == "UNSAFE")}
                for run in self.runs
            ],
        }

    def _write_reports(self, base: Path, report: CalibrationReport) -> list[str]:
        """Write BASE.json, BASE.md and (with matplotlib) BASE.png; the lines to show about them."""
        json_path, md_path, png_path = (Path(f"{base}{suffix}") for suffix in (".json", ".md", ".png"))
        heading = (f"# Swarm calibration\n\ncorpus `{self.corpus}`, {self.settings.describe_panel()} in force"
                   f"{', Message Batches' if self.batch else ''}\n\n")
        try:
            write_text_atomic(json_path, json.dumps(self.document(report), indent=2, ensure_ascii=False) + "\n")
            write_text_atomic(md_path, heading + report.render_markdown())
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

