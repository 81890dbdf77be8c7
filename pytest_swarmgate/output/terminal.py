"""Plain-text views of a review: the failure text of a section and the terminal summary. Pure.

Everything shown here may come from the pull request (paths) or from a model that read it
(titles, summaries), so it goes through `escape.terminal`: a file name with terminal escape codes
must not be able to rewrite the lines that carry the verdict.

The summary is compact by default: what fails first, with its detail, one line counting the
SAFE sections, the gate line last. `verbosity` is pytest's (-q is -1, -v is 1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from ..core.choices import severity_rank
from ..core.decision import section_passes, status
from ..core.model import Finding, NotReviewed, RunResult, Section, SectionResult, Synthesis, Vote
from ..core.synthesis import merged_locations
from ..core.text import plural
from .alerts import SYNTHESIS_LABEL, release_hint
from .escape import terminal

# Colours by pytest's terminal-writer markup names; the writer honours --color.
COLOURS = {"SAFE": "green", "UNSAFE": "red", "INCONCLUSIVE": "yellow", "HELD": "yellow"}


@dataclass(frozen=True)
class Line:
    """A line of the summary and its colour (a COLOURS value, or None for plain)."""

    text: str
    colour: str | None = None
    bold: bool = False


@dataclass(frozen=True)
class MergedFinding:
    """One finding as several voters raised it: same path, line and category."""

    finding: Finding
    voters: tuple[str, ...]


def merged_findings(votes: Iterable[Vote]) -> list[MergedFinding]:
    """Findings merged across voters by (path, line, category), most severe first.

    The first voter's wording and the most severe severity stand for the group.
    """
    groups: dict[tuple[str, int | None, str], tuple[Finding, list[str]]] = {}
    for vote in votes:
        for f in vote.findings:
            key = (f.path, f.line, f.category)
            if key not in groups:
                groups[key] = (f, [vote.voter_id])
                continue
            first, voters = groups[key]
            if vote.voter_id not in voters:
                voters.append(vote.voter_id)
            if severity_rank(f.severity) < severity_rank(first.severity):
                groups[key] = (dataclasses.replace(first, severity=f.severity), voters)
    merged = [MergedFinding(f, tuple(voters)) for f, voters in groups.values()]
    return sorted(merged, key=lambda m: severity_rank(m.finding.severity))


def finding_line(m: MergedFinding) -> str:
    f = m.finding
    return terminal(f"{f.severity.upper()} {f.category} {f.where()}: {f.title} ({', '.join(m.voters)})", 300)


def vote_line(vote: Vote, *, finding: bool = True) -> str:
    """One voter on one section: id, model that answered, effective settings, verdict, confidence, top finding, cost."""
    parts = [
        f"{terminal(vote.voter_id):<4} {terminal(vote.credited_model):<20} {vote.settings.describe():<28} "
        f"{vote.verdict:<6}"
    ]
    parts.append(f"conf={vote.confidence:.2f}" if vote.confidence is not None else "conf=-   ")
    top = vote.top_finding()
    if top is not None and finding:
        parts.append(terminal(f"{top.where()} {top.title}", 200))
    elif vote.error:
        parts.append(f"error: {terminal(vote.error, 300)}")
    cost = "cached" if vote.cached else f"{vote.latency_s:.1f}s {vote.usage.total} tok"
    parts.append(f"[{cost}]")
    return " ".join(parts)


def section_line(result: SectionResult) -> str:
    """`path: UNSAFE 4/5 (K=4) - path:7 title`: the outcome, tally and the top finding of a section not SAFE."""
    line = f"{terminal(result.section.id)}: {result.tally()}"
    if result.outcome != "SAFE":
        merged = merged_findings(v for v in result.votes if v.verdict != "SAFE")
        if merged:
            top = merged[0].finding
            line += " - " + terminal(f"{top.where()} {top.title}", 160)
        else:
            error = next((v for v in result.votes if v.error), None)
            if error is not None:
                line += f" - {terminal(error.voter_id)} error: {terminal(error.error or '', 160)}"
    elif result.dissent:
        line += f", {plural(len(result.dissent), 'dissenting vote')}"
    return line


def not_reviewed_line(item: NotReviewed) -> str:
    """`logo.png: not reviewed (media file: ...)`."""
    return f"{terminal(item.path)}: not reviewed ({terminal(item.reason)})"


def needs_detail(result: SectionResult) -> bool:
    """Voter detail is shown by default only where the panel did not agree on SAFE."""
    return result.outcome != "SAFE" or bool(result.dissent)


def unanimous(result: SectionResult) -> bool:
    """Every vote cast, with one verdict: its tally says all there is to say about the votes."""
    return len({v.verdict for v in result.votes}) == 1 and result.votes[0].verdict != "ERROR"


def detail_lines(result: SectionResult, *, verbose: bool = False) -> list[str]:
    """Under a section line: the votes, dissent, then findings merged across voters.

    By default the votes take one line, and none when the panel was unanimous; verbose: every
    voter on its own line with its top finding and notes, and an UNSAFE vote's summary.
    """
    lines: list[str] = []
    if verbose:
        for vote in result.votes:
            lines.append("  " + vote_line(vote, finding=True))
            lines.extend(f"       note: {terminal(note)}" for note in vote.settings.notes)
    elif not unanimous(result):
        lines.append("  " + votes_line(result))
    for vote in result.dissent:
        label = "dissent" if result.outcome == "SAFE" else "dissent (SAFE)"
        lines.append(f"  {label} from {terminal(vote.voter_id)}: {terminal(vote.summary, 300) or 'no summary'}")
    for m in merged_findings(result.votes):
        lines.append("  " + finding_line(m))
        if m.finding.rationale:
            lines.append("        " + terminal(m.finding.rationale, 1000))
    if verbose:
        for vote in result.votes:
            if vote.verdict == "UNSAFE" and vote.summary:
                lines.append(f"  [{terminal(vote.voter_id)}] summary: {terminal(vote.summary, 1000)}")
    return lines


def synthesis_lines(synthesis: Synthesis) -> list[str]:
    """The aggregator's review under its section: title, explanation, merged findings, disagreement, fix, patch;
    or one line saying it failed. Model output, so every line is escaped."""
    if synthesis.error is not None:
        return [f"  review for the author: synthesis failed: {terminal(synthesis.error, 300)}"]
    lines = [f"  {SYNTHESIS_LABEL.format(model=terminal(synthesis.model, 80))}:", f"    {terminal(synthesis.title)}"]
    lines += paragraph_lines(synthesis.explanation, "    ")
    for f in merged_locations(synthesis):
        lines.append(f"    {terminal(f'{f.severity.upper()} {f.category} {f.where()}: {f.title}', 300)}")
        lines += paragraph_lines(f.rationale, "        ")
    for label, text in (("where the voters disagreed", synthesis.disagreement), ("fix", synthesis.fix)):
        if text.strip():
            lines += paragraph_lines(text, "    ", f"{label}: ")
    if synthesis.patch.strip():
        lines.append("    suggested patch:")
        lines += [f"      {terminal(line, 300)}" for line in synthesis.patch.strip("\n").splitlines()[:60]]
    return lines


def paragraph_lines(text: str, indent: str, lead: str = "") -> list[str]:
    """Model text kept in its own lines (each escaped), the first led by `lead`; at most 20 lines."""
    lines = [line for line in text.strip().splitlines() if line.strip()][:20]
    return [f"{indent}{lead if i == 0 else ''}{terminal(line, 1000)}" for i, line in enumerate(lines)]


def settings_notes(votes: Iterable[Vote]) -> list[str]:
    """Each voter's notes on settings it did not run with, once for the run rather than once per section."""
    seen = dict.fromkeys((vote.voter_id, note) for vote in votes for note in vote.settings.notes)
    return [f"note: {terminal(voter)}: {terminal(note)}" for voter, note in seen]


def section_lines(result: SectionResult, *, detail: bool = False) -> list[str]:
    """The section line, its voters, dissent and merged findings (with detail: each vote's own finding too)."""
    return [section_line(result), *detail_lines(result, verbose=detail)]


def votes_line(result: SectionResult) -> str:
    """`votes: v1 UNSAFE 0.90, v2 ERROR (timeout ...)`: every vote of a section on one line."""
    parts = []
    for v in result.votes:
        if v.error:
            detail = f" ({terminal(v.error, 80)})"
        else:
            detail = f" {v.confidence:.2f}" if v.confidence is not None else ""
        parts.append(f"{terminal(v.voter_id)} {v.verdict}{detail}")
    return "votes: " + ", ".join(parts)


def explain_lines(result: RunResult | SectionResult) -> list[str]:
    """A result for a failed assertion, short (pytest cuts long explanations below -vv):
    the gate, then each section's tally and top finding, its votes, and the findings merged across voters."""
    sections = [result] if isinstance(result, SectionResult) else list(result.results)
    lines = [] if isinstance(result, SectionResult) else [gate_line(result)]
    for section in sections:
        lines += [section_line(section), "  " + votes_line(section)]
        lines += ["  " + finding_line(m) for m in merged_findings(section.votes)]
    if isinstance(result, SectionResult):
        return lines
    lines.extend(not_reviewed_line(nr) for nr in result.not_reviewed)
    return lines + held_lines(result)


def report_lines(run: RunResult, *, verbosity: int = 0) -> list[Line]:
    """The whole terminal summary, what fails first and the gate line last.

    UNSAFE sections, then what is held, then INCONCLUSIVE ones, then SAFE ones with dissent, each
    with its detail; then one line counting the other SAFE sections (each listed under -v, with
    every vote). -q: only what fails,
    what is held and the gate line. A stopped run shows each section's tally only: its missing
    votes would repeat the fault.
    """
    lines: list[Line] = []
    if not run.results and not run.not_reviewed:
        lines.append(Line(f"nothing to review: {terminal(run.source)} has no changed files"))
    by_outcome = {o: [r for r in run.results if r.outcome == o] for o in ("UNSAFE", "INCONCLUSIVE", "SAFE")}
    for result in by_outcome["UNSAFE"]:
        lines.extend(_section_lines(run, result, verbosity))
    # held_lines opens with one line per held change: those are the ones to colour.
    lines.extend(Line(text, COLOURS["HELD"] if i < len(run.held) else None) for i, text in enumerate(held_lines(run)))
    for result in by_outcome["INCONCLUSIVE"]:
        if verbosity >= 0 or not section_passes(run.gate, result.outcome):
            lines.extend(_section_lines(run, result, verbosity))
    safe = by_outcome["SAFE"]
    if verbosity > 0:
        for result in safe:
            lines.extend(_section_lines(run, result, verbosity))
    elif verbosity == 0 and safe:
        # Dissent on a SAFE section is worth its detail; the unanimous ones are counted on one line.
        dissent = [r for r in safe if r.dissent]
        for result in dissent:
            lines.extend(_section_lines(run, result, verbosity))
        unanimous_safe = [r for r in safe if not r.dissent]
        if unanimous_safe:
            lines.append(Line(safe_line(unanimous_safe, len(dissent)), COLOURS["SAFE"]))
    if verbosity >= 0:
        lines.extend(Line(not_reviewed_line(nr)) for nr in run.not_reviewed)
        lines.extend(Line(f"note: {terminal(note, 300)}") for note in run.notes)
        if verbosity == 0:
            lines.extend(Line(text) for text in settings_notes(run.votes))
    if verbosity >= 0 and run.results:
        lines.append(Line(totals_line(run)))
    lines.append(Line(gate_line(run), COLOURS.get(status(run)), bold=True))
    return lines


# The SAFE line names its sections while they fit on one line.
SAFE_NAMES_CHARS = 100


def safe_line(safe: list[SectionResult], listed: int = 0) -> str:
    """`SAFE: 2 sections: a.py, b.py`, or `SAFE: 43 sections (each listed with -v)`; after `listed`
    SAFE sections shown with their dissent, `SAFE without dissent: ...` for the rest."""
    label = "SAFE without dissent" if listed else "SAFE"
    names = ", ".join(terminal(r.section.id) for r in safe)
    if len(names) <= SAFE_NAMES_CHARS:
        return f"{label}: {plural(len(safe), 'section')}: {names}"
    return f"{label}: {plural(len(safe), 'section')} (each listed with -v)"


def _section_lines(run: RunResult, result: SectionResult, verbosity: int) -> list[Line]:
    """One section's line, then its voter detail where the verbosity asks for it."""
    if run.stopped is not None:
        # A stopped run: the tally only, since each section's top error would repeat the fault.
        return [Line(f"{terminal(result.section.id)}: {result.tally()}", COLOURS[result.outcome])]
    lines = [Line(section_line(result), COLOURS[result.outcome])]
    synthesis = result.synthesis
    if synthesis is not None and verbosity >= 0:
        lines.extend(Line(text) for text in synthesis_lines(synthesis))
    if synthesis is not None and synthesis.error is None and verbosity == 0:
        # The synthesis is the review; the votes in one line say who said what (each in full under -v).
        if not unanimous(result):
            lines.append(Line("  " + votes_line(result)))
    elif verbosity > 0 or (verbosity == 0 and needs_detail(result)):
        lines.extend(Line(text) for text in detail_lines(result, verbose=verbosity > 0))
    if verbosity > 0:
        lines.extend(Line(text) for text in context_lines(result.section))
    return lines


def context_lines(section: Section) -> list[str]:
    """What the section's voters saw beside its diff: each part on a line, then the notes (-v)."""
    context = section.context
    if context is None:
        return []
    total = sum(p.chars for p in context.parts)
    lines = [f"  context: {plural(len(context.parts), 'part')}, {total} chars"]
    lines += [f"    {terminal(p.describe(), 300)}" for p in context.parts]
    return lines + [f"    note: {terminal(note, 300)}" for note in context.notes]


def totals_line(run: RunResult) -> str:
    u = run.usage
    cached = run.cached_votes
    return (
        f"totals: {plural(len(run.results), 'section')} x {plural(len(run.panel), 'voter')}, "
        f"{plural(run.calls, 'call')}"
        + (f" ({len(run.syntheses)} by the aggregator)" if run.syntheses else "")
        + (f" ({plural(cached, 'vote')} from cache)" if cached else "")
        + f", tokens in={u.input_tokens} out={u.output_tokens} cache_read={u.cache_read_tokens}"
        f" cache_write={u.cache_write_tokens}, wall {run.wall_time_s:.2f}s"
    )


def gate_line(run: RunResult) -> str:
    if run.stopped is not None:
        return f"gate: NOT_REVIEWED - {terminal(run.stopped.line(), 600)}"
    counts = run.counts
    held = f"; {plural(len(run.held), 'change')} held for a human" if run.held else ""
    return (
        f"gate: {status(run)} - {counts['UNSAFE']} UNSAFE, {counts['INCONCLUSIVE']} INCONCLUSIVE, "
        f"{counts['SAFE']} SAFE of {plural(len(run.results), 'section')} (K={run.k} of N={len(run.panel)}){held}"
    )


def held_lines(run: RunResult) -> list[str]:
    """What the gate held for a human, what a human can do about it (`alerts.release_hint`), what was released."""
    lines = [f"held for a human: {terminal(h.line())}" for h in run.held]
    if run.held:
        lines.append(f"held changes: {release_hint(run)}")
    return lines + [f"released by hand: {terminal(r.line())}" for r in run.released]
