"""Review results as collected items: one per section, one per file not reviewed, one for the gate.

Items only read a RunResult that is already in `config.stash`; they never call the API, so
under pytest-xdist every worker collects the same items and no section is sent twice.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from .core.decision import run_passes, section_passes, status, warns
from .core.model import NotReviewed, RunResult, Section, SectionResult, Vote
from .output.escape import junit_text, terminal
from .output.terminal import gate_line, section_line
from .stash import run_key

COLLECTOR_NAME = "swarm-review"


class SectionFailed(Exception):
    """Raised by a review item whose outcome fails the gate; shown as the panel's text."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


class ReviewItem(pytest.Item):
    """Common ground of the review items: marker, no traceback, a location that names the review."""

    def __init__(self, *, marker: str = "swarm_review", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_marker(marker)

    def run_result(self) -> RunResult:
        run = self.config.stash.get(run_key, None)
        if run is None:
            raise SectionFailed(["the review did not run in this session, so there is no verdict (fail closed)"])
        return run

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        if isinstance(excinfo.value, SectionFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[str | os.PathLike[str], int, str]:
        # A domain that is not the node id's tail: pytest would print its dots as "::".
        return self.path or "", 0, f"swarm review of {self.name}"


class SectionItem(ReviewItem):
    """One section: fails when the gate does not pass its outcome, warns when the gate says so."""

    def __init__(self, *, section: Section, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.section = section

    def runtest(self) -> None:
        result = self.run_result().result_for(self.section.id)
        if result is None:
            raise SectionFailed([f"{self.section.id}: no votes were recorded for this section (fail closed)"])
        self.user_properties.extend(junit_properties(result))
        run = self.run_result()
        if run.stopped is not None and result.outcome == "INCONCLUSIVE":
            # The votes it lacks were never sent: the gate item and the summary say why, once.
            pytest.skip(terminal(f"not reviewed: {run.stopped.line()}", 300))
        if not section_passes(run.gate, result.outcome):
            # One line: the votes and findings are printed once, in the swarm review summary.
            raise SectionFailed([section_line(result)])
        if warns(run.gate, result.outcome):
            # The warnings summary prints the message raw: the file name is the pull request's.
            warnings.warn(
                pytest.PytestWarning(f"swarm review of {terminal(self.section.id)} is {result.tally()}"), stacklevel=2
            )


class NotReviewedItem(ReviewItem):
    """A changed file the panel did not see: skipped with the reason, never silently dropped."""

    def __init__(self, *, not_reviewed: NotReviewed, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.not_reviewed = not_reviewed
        self.user_properties.append(("swarm_outcome", "NOT_REVIEWED"))
        # A skip marker, so the skip is reported at this item rather than at a line of ours.
        self.add_marker(pytest.mark.skip(reason=terminal(f"{not_reviewed.path} not reviewed: {not_reviewed.reason}")))

    def runtest(self) -> None:
        raise AssertionError("unreachable: the item carries a skip marker")


class GateItem(ReviewItem):
    """The whole gate as one item, so even an empty diff gives CI a passing test to count."""

    def runtest(self) -> None:
        run = self.run_result()
        self.user_properties.append(("swarm_gate", status(run) if run.results or run.held else "NOTHING_TO_REVIEW"))
        if not run_passes(run):
            raise SectionFailed([gate_line(run)])


def junit_properties(result: SectionResult) -> list[tuple[str, object]]:
    """JSON-safe properties: they travel from xdist workers and land in JUnit XML."""
    properties: list[tuple[str, object]] = [
        ("swarm_outcome", result.outcome),
        ("swarm_tally", result.tally()),
        ("swarm_votes", json.dumps([_vote_summary(v) for v in result.votes])),
    ]
    synthesis = result.synthesis
    if synthesis is not None:
        said = synthesis.title if synthesis.error is None else f"synthesis failed: {synthesis.error}"
        properties.append(("swarm_review", junit_text(said, 300)))
    return properties


def _vote_summary(vote: Vote) -> dict[str, object]:
    top = vote.top_finding()
    return {
        "voter": junit_text(vote.voter_id),
        "model": junit_text(vote.model),
        "answered_model": junit_text(vote.answered_model) if vote.answered_model else None,
        "verdict": vote.verdict,
        "confidence": vote.confidence,
        "top_finding": junit_text(f"{top.where()} {top.title}") if top else None,
        "error": junit_text(vote.error) if vote.error is not None else None,
    }


class ReviewCollector(pytest.Collector):
    """The parent of every review item, so node ids read `swarm-review::<section>`."""

    def __init__(self, *, sections: tuple[Section, ...], not_reviewed: tuple[NotReviewed, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sections = sections
        self.not_reviewed = not_reviewed

    def collect(self) -> Iterator[pytest.Item]:
        # Names are printable: pytest shows node ids raw, and paths come from the pull request.
        for section in self.sections:
            yield SectionItem.from_parent(self, name=terminal(section.id), section=section)
        for nr in self.not_reviewed:
            yield NotReviewedItem.from_parent(self, name=terminal(nr.path), not_reviewed=nr)
        yield GateItem.from_parent(self, name="gate")
