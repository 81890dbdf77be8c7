"""Plain-text views of a review: the failure text of a section and the terminal summary. Pure.

Everything shown here may come from the pull request (paths) or from a model that read it
(titles, summaries), so it goes through `escape.terminal`: a file name with terminal escape codes
must not be able to rewrite the lines that carry the verdict.
"""

from __future__ import annotations

from ..core.model import RunResult, SectionResult, Vote
from .escape import terminal


def vote_line(vote: Vote) -> str:
    """One voter on one section: id, model, effective settings, verdict, confidence, top finding, cost."""
    parts = [f"{terminal(vote.voter_id):<4} {terminal(vote.model):<20} {vote.settings.describe():<28} {vote.verdict:<6}"]
    parts.append(f"conf={vote.confidence:.2f}" if vote.confidence is not None else "conf=-   ")
    top = vote.top_finding()
    if top is not None:
        parts.append(terminal(f"{top.where()} {top.title}", 200))
    elif vote.error:
        parts.append(f"error: {terminal(vote.error, 300)}")
    cost = "cached" if vote.cached else f"{vote.latency_s:.1f}s {vote.usage.total} tok"
    parts.append(f"[{cost}]")
    return " ".join(parts)


def section_lines(result: SectionResult, *, detail: bool = False) -> list[str]:
    """The section's tally, a line per voter, notes on settings, and (with detail) every finding."""
    s = result.section
    lines = [f"{terminal(s.id)}: {result.tally()}"]
    for vote in result.votes:
        lines.append("  " + vote_line(vote))
        for note in vote.settings.notes:
            lines.append(f"       note: {terminal(note)}")
    for vote in result.dissent:
        label = "dissent" if result.outcome == "SAFE" else "dissent (SAFE)"
        lines.append(f"  {label} from {terminal(vote.voter_id)}: {terminal(vote.summary, 300) or 'no summary'}")
    if detail:
        for vote in result.votes:
            for f in vote.findings:
                lines.append("  " + terminal(f"[{vote.voter_id}] {f.severity.upper()} {f.category} {f.where()}: {f.title}", 300))
                if f.rationale:
                    lines.append("        " + terminal(f.rationale, 1000))
            if vote.verdict == "UNSAFE" and vote.summary:
                lines.append(f"  [{terminal(vote.voter_id)}] summary: {terminal(vote.summary, 1000)}")
    return lines


def summary_lines(run: RunResult, *, votes: bool = True) -> list[str]:
    """The terminal summary: every section with its voters, then not-reviewed files, then totals.

    `votes=False` gives each section's tally only (a stopped run: its votes repeat the fault).
    """
    lines: list[str] = []
    if not run.results and not run.not_reviewed:
        return [f"nothing to review: {terminal(run.source)} has no changed files", *held_lines(run)]
    for result in run.results:
        lines.extend(section_lines(result) if votes else section_lines(result)[:1])
    for item in run.not_reviewed:
        lines.append(f"{terminal(item.path)}: not reviewed ({terminal(item.reason)})")
    for note in run.notes:
        lines.append(f"note: {terminal(note, 300)}")
    lines.extend(held_lines(run))
    u = run.usage
    cached = len(run.votes) - run.calls
    lines.append(
        f"totals: {len(run.results)} sections x {len(run.panel)} voters, {run.calls} calls"
        + (f" ({cached} votes from cache)" if cached else "")
        + f", tokens in={u.input_tokens} out={u.output_tokens} cache_read={u.cache_read_tokens}"
        f" cache_write={u.cache_write_tokens}, wall {run.wall_time_s:.2f}s"
    )
    return lines


def gate_line(run: RunResult) -> str:
    if run.stopped is not None:
        return f"gate: NOT_REVIEWED - {terminal(run.stopped.line(), 600)}"
    counts = {o: sum(r.outcome == o for r in run.results) for o in ("SAFE", "UNSAFE", "INCONCLUSIVE")}
    held = f"; {len(run.held)} changes held for a human" if run.held else ""
    return (
        f"gate: {run.gate} - {counts['UNSAFE']} UNSAFE, {counts['INCONCLUSIVE']} INCONCLUSIVE, "
        f"{counts['SAFE']} SAFE of {len(run.results)} sections (K={run.k} of N={len(run.panel)}){held}"
    )


def held_lines(run: RunResult) -> list[str]:
    """What the gate held for a human and how to release it, then what a human released."""
    lines = [f"held for a human: {terminal(h)}" for h in run.held]
    if run.held:
        lines.append(
            "review these by hand, then rerun with --swarm-allow-held="
            f"{run.diff_sha256[:12]} typed on the command line (or run the gate from the base branch)"
        )
    return lines + [f"released by hand: {terminal(r)}" for r in run.released]
