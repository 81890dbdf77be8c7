"""Plain-text views of a review: the failure text of a section and the terminal summary. Pure."""

from __future__ import annotations

from .model import RunResult, SectionResult, Vote


def vote_line(vote: Vote) -> str:
    """One voter on one section: id, model, effective settings, verdict, confidence, top finding, cost."""
    parts = [f"{vote.voter_id:<4} {vote.model:<20} {vote.settings.describe():<28} {vote.verdict:<6}"]
    parts.append(f"conf={vote.confidence:.2f}" if vote.confidence is not None else "conf=-   ")
    top = vote.top_finding()
    if top is not None:
        parts.append(f"{top.where()} {top.title}")
    elif vote.error:
        parts.append(f"error: {vote.error}")
    cost = "cached" if vote.cached else f"{vote.latency_s:.1f}s {vote.usage.total} tok"
    parts.append(f"[{cost}]")
    return " ".join(parts)


def section_lines(result: SectionResult, *, detail: bool = False) -> list[str]:
    """The section's tally, a line per voter, notes on settings, and (with detail) every finding."""
    s = result.section
    lines = [f"{s.id}: {result.tally()}"]
    for vote in result.votes:
        lines.append("  " + vote_line(vote))
        for note in vote.settings.notes:
            lines.append(f"       note: {note}")
    for vote in result.dissent:
        label = "dissent" if result.outcome == "SAFE" else "dissent (SAFE)"
        lines.append(f"  {label} from {vote.voter_id}: {vote.summary or 'no summary'}")
    if detail:
        for vote in result.votes:
            for f in vote.findings:
                lines.append(f"  [{vote.voter_id}] {f.severity.upper()} {f.category} {f.where()}: {f.title}")
                if f.rationale:
                    lines.append(f"        {f.rationale}")
            if vote.verdict == "UNSAFE" and vote.summary:
                lines.append(f"  [{vote.voter_id}] summary: {vote.summary}")
    return lines


def summary_lines(run: RunResult) -> list[str]:
    """The terminal summary: every section with its voters, then not-reviewed files, then totals."""
    lines: list[str] = []
    if not run.results and not run.not_reviewed:
        return [f"nothing to review: {run.source} has no changed files"]
    for result in run.results:
        lines.extend(section_lines(result))
    for item in run.not_reviewed:
        lines.append(f"{item.path}: not reviewed ({item.reason})")
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
    counts = {o: sum(r.outcome == o for r in run.results) for o in ("SAFE", "UNSAFE", "INCONCLUSIVE")}
    return (
        f"gate: {run.outcome} - {counts['UNSAFE']} UNSAFE, {counts['INCONCLUSIVE']} INCONCLUSIVE, "
        f"{counts['SAFE']} SAFE of {len(run.results)} sections (K={run.k} of N={len(run.panel)})"
    )
