"""GitHub Actions output: workflow-command annotations and the job step summary. Pure.

Both are views of `alerts.alerts(run)`. The diff and the model's text are untrusted, so
every piece of it is escaped for where it lands: workflow-command data and properties exactly
as GitHub's toolkit escapes them (a title holding `::` or a newline can never start a command
of its own), and Markdown cells with no HTML, no links and no row breaks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..core.decision import section_passes, status
from ..core.model import RunResult, SectionResult
from ..core.text import plural
from ..core.write import write_text_atomic
from . import alerts, escape
from .alerts import Alert
from .terminal import gate_line, held_lines, votes_line

STEP_SUMMARY_LIMIT = 1_000_000  # GitHub takes at most 1 MiB per step summary file; stay under it
CELL_CHARS = 200
HEADLINE = {
    "SAFE": "✅ SAFE",
    "UNSAFE": "❌ UNSAFE",
    "INCONCLUSIVE": "⚠️ INCONCLUSIVE",
    "HELD": "✋ HELD for a human",
    "NOT_REVIEWED": "⛔ not reviewed",
}


# --- annotations ------------------------------------------------------------------------


def workflow_command(command: str, message: str, **properties: str | int | None) -> str:
    """`::command k=v,k=v::message`, with properties that are None left out."""
    props = ",".join(f"{k}={escape.workflow_property(str(v))}" for k, v in properties.items() if v is not None)
    return f"::{command}{' ' + props if props else ''}::{escape.workflow_data(message)}"


def github_annotations(run: RunResult, *, limit: int) -> list[str]:
    """At most `limit` annotation lines, most severe first, the last a notice when some were left out.

    UNSAFE-section findings are errors; dissent on SAFE sections and INCONCLUSIVE sections
    (one line naming the ERROR votes, then their UNSAFE votes' findings) are warnings.
    """
    keyed = [(a.sort_key(), _alert_annotation(a)) for a in alerts.alerts(run)]
    # An INCONCLUSIVE section's own warning goes before its findings: it is why the gate fails.
    rank = alerts.KIND_ORDER.index("inconclusive")
    keyed += [
        ((rank, -1, r.section.path, 0, ""), _inconclusive_annotation(r))
        for r in run.results
        if r.outcome == "INCONCLUSIVE"
    ]
    # Held changes come first: they fail the gate whatever the panel said.
    release = alerts.release_hint(run)
    lines = [
        workflow_command("error", f"{reason} - {release}", file=path, title="swarm review: held for a human")
        for path, reason in alerts.held_entries(run)
    ]
    lines += [line for _, line in sorted(keyed, key=lambda kl: kl[0])]
    if len(lines) <= limit:
        return lines
    if limit <= 0:
        return []
    kept = lines[: limit - 1]
    left_out = len(lines) - len(kept)
    notice = (
        f"{left_out} more swarm review annotations left out (limit {limit}): see the step summary, SARIF or JSON report"
    )
    return [*kept, workflow_command("notice", notice)]


def _alert_annotation(alert: Alert) -> str:
    return workflow_command(
        "error" if alert.kind == "unsafe" else "warning",
        alert.message(),
        file=alert.path,
        line=alert.line,
        title=escape.collapsed(f"{alert.rule_id} ({alert.severity}): {alert.title}", CELL_CHARS),
    )


def _inconclusive_annotation(result: SectionResult) -> str:
    errors = "; ".join(f"{v.voter_id}: {v.error or 'no verdict'}" for v in result.votes if v.verdict == "ERROR")
    return workflow_command(
        "warning",
        f"{result.tally()}: the panel reached no decision; ERROR votes: {errors or 'none'}",
        file=alerts.safe_path(result.section.path, result.section.path),
        title=f"INCONCLUSIVE: {result.section.id}",
    )


# --- step summary -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Detail:
    """How much the summary shows; each step down drops detail to fit the size limit."""

    findings: int | None  # None: all of them
    votes: bool
    safe_rows: bool  # a SAFE section's outcome row (UNSAFE and INCONCLUSIVE rows always stay)


DETAIL_STEPS = (
    _Detail(None, True, True),
    _Detail(100, True, True),
    _Detail(100, False, True),
    _Detail(10, False, True),
    _Detail(10, False, False),
)


def step_summary(run: RunResult, *, max_bytes: int = STEP_SUMMARY_LIMIT) -> str:
    """Markdown for $GITHUB_STEP_SUMMARY, at most `max_bytes` UTF-8 bytes; what was cut is noted last."""
    found = alerts.alerts(run)
    parts = _Parts(run, found)
    lines: list[str] = []
    cuts: list[str] = []
    for detail in DETAIL_STEPS:
        lines = parts.summary(detail)
        cuts = _cuts(run, found, detail)
        text = _join(lines + (_cut_note(cuts, max_bytes) if cuts else []))
        if _size(text) <= max_bytes:
            return text
    return _truncate(lines, cuts, max_bytes)


class _Parts:
    """The summary's pieces, each rendered once however many detail steps it takes to fit.

    The verdict first, then what to fix: each failing section with its merged findings and the
    votes that decided it; the held changes (the release command only when releasing would pass);
    one line counting the SAFE sections; every outcome and vote collapsed in `<details>`; cost last.
    """

    def __init__(self, run: RunResult, found: tuple[Alert, ...]) -> None:
        self.run = run
        self.head = [f"## Swarm review: {HEADLINE[status(run)]}", "", _gate_text(run), ""]
        self.found = found
        self._outcomes: dict[bool, list[str]] = {}
        self._votes: list[str] | None = None
        self.tail = _not_reviewed_list(run)

    def outcomes(self, safe_rows: bool) -> list[str]:
        if safe_rows not in self._outcomes:
            self._outcomes[safe_rows] = _outcomes_table(self.run, safe_rows)
        return self._outcomes[safe_rows]

    def votes(self) -> list[str]:
        if self._votes is None:
            self._votes = _votes_table(self.run)
        return self._votes

    def summary(self, detail: _Detail) -> list[str]:
        """The sections in order of importance, so the last resort (cutting whole lines off the end) loses the least."""
        run = self.run
        if not run.results and not run.not_reviewed:
            return [*self.head, f"Nothing to review: {_md(run.source)} has no changed files."]
        shown = self.found if detail.findings is None else self.found[: detail.findings]
        failing = _failing_sections(run, shown)
        votes = self.votes() if detail.votes else []
        everything = [*self.outcomes(detail.safe_rows), *_panel_table(run), *votes]
        details = ["<details><summary>Every outcome and vote</summary>", "", *everything, "</details>", ""]
        return (
            self.head
            + failing
            + _held_list(run)
            + self.tail
            + _safe_count(run, detail.safe_rows)
            + details
            + _cost_table(run)
        )


def _failing_sections(run: RunResult, shown: Sequence[Alert]) -> list[str]:
    """Each section that is not SAFE, UNSAFE first: its findings merged over voters, and its votes."""
    lines: list[str] = []
    for outcome in ("UNSAFE", "INCONCLUSIVE"):
        for result in (r for r in run.results if r.outcome == outcome):
            findings = [a for a in shown if a.result is result]
            lines += [f"### {HEADLINE[outcome][:1]} {_md(result.section.id)}: {_md(result.tally())}", ""]
            if result.synthesis is not None:
                lines += alerts.synthesis_markdown(result.synthesis)
                # Below the model's prose, what the votes themselves said: the facts the outcome rests on.
                lines += ["*The panel's findings and votes:*", ""] if result.synthesis.error is None else []
            lines += [_finding_item(a) for a in findings]
            lines += [f"- {_md(votes_line(result))}", ""]
    return lines


def _safe_count(run: RunResult, listed: bool) -> list[str]:
    safe = run.counts["SAFE"]
    where = "each listed under *Every outcome and vote*" if listed else "their rows left out to fit (see the note)"
    return [f"{plural(safe, 'section')} SAFE, {where}.", ""] if safe else []


def _gate_text(run: RunResult) -> str:
    text = f"{gate_line(run)}. Diff: {_md(run.source)}, sha256 {run.diff_sha256}."
    if status(run) == "INCONCLUSIVE" and section_passes(run.gate, "INCONCLUSIVE"):
        text += f" INCONCLUSIVE is allowed here (on-inconclusive={_md(run.gate.on_inconclusive)})."
    return text


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    """A Markdown table; cells must already be escaped (`_md`)."""
    head = list(header)
    body = ["| " + " | ".join(r) + " |" for r in rows]
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *body, ""]


def _outcomes_table(run: RunResult, safe_rows: bool) -> list[str]:
    rows = [
        [_md(r.section.id), r.outcome, _md(r.tally()), _md(", ".join(v.voter_id for v in r.dissent)) or "-"]
        for r in run.results
        if safe_rows or r.outcome != "SAFE"
    ]
    return ["### Outcomes", "", *_table(["section", "outcome", "tally", "dissent"], rows)]


def _panel_table(run: RunResult) -> list[str]:
    rows = [[_md(v.id), _md(v.model), _md(v.describe())] for v in run.panel]
    return [f"### Panel: K={run.k} of N={len(run.panel)}", "", *_table(["voter", "model", "configured"], rows)]


def _votes_table(run: RunResult) -> list[str]:
    rows = []
    for r in run.results:
        for v in r.votes:
            settings = v.settings.describe() + (f" ({'; '.join(v.settings.notes)})" if v.settings.notes else "")
            top = v.top_finding()
            note = f"{top.severity} {top.where()} {top.title}" if top else (f"error: {v.error}" if v.error else "-")
            verdict = v.verdict + (" (cached)" if v.cached else "")
            conf = f"{v.confidence:.2f}" if v.confidence is not None else "-"
            rows.append(
                [
                    _md(r.section.id),
                    _md(v.voter_id),
                    _md(v.credited_model),
                    _md(settings),
                    _md(verdict),
                    conf,
                    _md(note),
                ]
            )
    header = ["section", "voter", "model", "effective settings", "verdict", "confidence", "top finding"]
    return ["### Votes", "", *_table(header, rows)]


def _finding_item(a: Alert) -> str:
    """One merged finding as a list item, its rationale on the same line."""
    why = f" {_md(a.rationale)}" if a.rationale else ""
    by = _md(", ".join(a.voters))
    return f"- **{_md(a.severity)}** {_md(a.rule_id)} {_md(a.where())}: {_md(a.title)}.{why} (raised by {by})"


def _held_list(run: RunResult) -> list[str]:
    """Held and released changes, in the words of the terminal report."""
    lines = held_lines(run)
    heading = "### Held for a human" if run.held else "### Released by hand"
    return [heading, ""] + [f"- {_md(line)}" for line in lines] + [""] if lines else []


def _not_reviewed_list(run: RunResult) -> list[str]:
    if not run.not_reviewed:
        return []
    return ["### Not reviewed", ""] + [f"- {_md(n.path)}: {_md(n.reason)}" for n in run.not_reviewed] + [""]


def _cost_table(run: RunResult) -> list[str]:
    u = run.usage
    row = [
        str(run.calls),
        str(run.cached_votes),
        str(u.input_tokens),
        str(u.output_tokens),
        str(u.cache_read_tokens),
        str(u.cache_write_tokens),
        f"{run.wall_time_s:.2f}s",
    ]
    header = ["calls", "cached votes", "input tokens", "output tokens", "cache read", "cache write", "wall time"]
    return ["### Cost", "", *_table(header, [row])]


def _cuts(run: RunResult, found: tuple[Alert, ...], detail: _Detail) -> list[str]:
    cuts = []
    if detail.findings is not None and len(found) > detail.findings:
        cuts.append(f"{len(found) - detail.findings} of {len(found)} findings not listed")
    if not detail.votes and run.votes:
        cuts.append(f"the {len(run.votes)} per-voter rows left out")
    safe = run.counts["SAFE"]
    if not detail.safe_rows and safe:
        cuts.append(f"the outcome rows of {safe} SAFE sections left out")
    return cuts


def _cut_note(cuts: list[str], max_bytes: int) -> list[str]:
    """The closing note, after a blank line so it can never run into a table above it."""
    what = "; ".join(cuts)
    return [
        "",
        f"> Cut to fit the {max_bytes}-byte step summary limit: {what}. The JSON and SARIF reports have everything.",
    ]


def _truncate(lines: list[str], cuts: list[str], max_bytes: int) -> str:
    """Whole lines from the top while they fit with the note: never half a row or half a character."""
    sizes = [0]
    for line in lines:
        sizes.append(sizes[-1] + _size(line) + 1)
    count = len(lines)
    while count >= 0:
        kept = _drop_dangling(lines, count)
        note = _cut_note([*cuts, f"the last {len(lines) - len(kept)} lines cut"], max_bytes)
        room = max_bytes - _size(_join(note))
        if sizes[len(kept)] <= room:
            return _join(kept + note)
        # Jump straight to the longest prefix that can fit, instead of trying every line.
        count = min(len(kept) - 1, max((i for i, total in enumerate(sizes) if total <= room), default=-1))
    return ""  # not even the note fits: an empty summary is still a valid one


def _drop_dangling(lines: list[str], count: int) -> list[str]:
    """`lines[:count]` less a trailing blank, heading, or table header cut off from its rows."""
    while count and (
        not lines[count - 1]
        or lines[count - 1].startswith(("#", "|---"))
        or (count < len(lines) and lines[count].startswith("|---"))
    ):
        count -= 1
    return lines[:count]


def _md(text: str) -> str:
    return escape.markdown(text, CELL_CHARS)


def _join(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def write_step_summary(path: str | os.PathLike[str], markdown: str) -> None:
    """Append `markdown` to the step summary file at `path` (other steps' text is kept), atomically."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            existing = f.read()
    except FileNotFoundError:
        existing = ""
    write_text_atomic(path, existing + markdown)
