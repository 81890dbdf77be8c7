"""What the CI reports share: findings merged into alerts, and the held changes as entries. Pure.

An alert is a finding raised by the panel's UNSAFE votes on one section, merged over voters:
five voters naming the same (path, line, category) give one alert that lists all five.
SARIF (`sarif.py`), GitHub annotations and the step summary (`github.py`) are all views of
`alerts(run)`, so they can never disagree about what was found. Findings of SAFE votes are
informational: they stay in the JSON report (`json_report.py`) and the voter tables, not here.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass, replace
from typing import Literal

from ..core.choices import severity_rank
from ..core.decision import release_helps
from ..core.model import Finding, RunResult, SectionResult, Synthesis, Vote
from . import escape

# Why an alert is reported: the section is UNSAFE, or it is SAFE and this is dissent, or it
# is INCONCLUSIVE. The kind decides the SARIF level and the annotation command.
AlertKind = Literal["unsafe", "inconclusive", "dissent"]
Level = Literal["error", "warning", "note"]

KIND_ORDER: tuple[AlertKind, ...] = ("unsafe", "inconclusive", "dissent")
OUTCOME_KIND: dict[str, AlertKind] = {"UNSAFE": "unsafe", "INCONCLUSIVE": "inconclusive", "SAFE": "dissent"}
KIND_PREFIX: dict[AlertKind, str] = {
    "unsafe": "",
    "inconclusive": "INCONCLUSIVE section: ",
    "dissent": "Dissent on a SAFE section: ",
}
SEVERITY_LEVEL: dict[str, Level] = {
    "critical": "error",
    "high": "error",
    "medium": "warning",
    "low": "note",
    "info": "note",
}
SECURITY_SEVERITY: dict[str, str] = {"critical": "9.0", "high": "7.0", "medium": "5.0", "low": "3.0", "info": "0.0"}
FINGERPRINT_KEY = "swarmgateFinding/v1"

_CWE = re.compile(r"\bCWE[-_ :]?0*(\d{1,6})\b", re.IGNORECASE)
_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Alert:
    """One merged finding: every UNSAFE vote on a section that named the same path, line and category."""

    result: SectionResult
    kind: AlertKind
    path: str
    line: int | None
    rule_id: str
    category: str
    severity: str
    title: str
    rationale: str
    raised_by: tuple[tuple[Vote, Finding], ...]
    fingerprint: str = ""

    @property
    def level(self) -> Level:
        """SARIF level: by severity on an UNSAFE section, warning when INCONCLUSIVE, note for dissent."""
        if self.kind == "dissent":
            return "note"
        if self.kind == "inconclusive":
            return "warning"
        return SEVERITY_LEVEL.get(self.severity, "warning")

    @property
    def voters(self) -> tuple[str, ...]:
        return tuple(v.voter_id for v, _ in self.raised_by)

    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def context(self) -> str:
        """The tally and who raised it, e.g. `UNSAFE 4/5 (K=4); raised by v1, v2, v3, v4`."""
        return f"{self.result.tally()}; raised by {', '.join(self.voters)}"

    def message(self) -> str:
        """Title, rationale and context in one plain sentence (not yet escaped for any format); led by the first
        sentence of the section's review for the author, where the aggregator wrote one."""
        body = f"{self.title}. {self.rationale}" if self.rationale else self.title
        synthesis = self.result.synthesis
        lead = f"{first_sentence(synthesis)} - " if synthesis is not None and synthesis.error is None else ""
        return f"{lead}{KIND_PREFIX[self.kind]}{body} ({self.context()})"

    def sort_key(self) -> tuple[int, int, str, int, str]:
        """Most severe first: UNSAFE sections, then INCONCLUSIVE, then dissent; by severity within."""
        return (KIND_ORDER.index(self.kind), severity_rank(self.severity), self.path, self.line or 0, self.rule_id)


def first_sentence(synthesis: Synthesis, limit: int = 300) -> str:
    """The review's first sentence: its explanation's, else its title (plain, one line, at most `limit`)."""
    text = " ".join((synthesis.explanation or synthesis.title).split())
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    sentence = match.group(1) if match else text
    return sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"


# Said with every synthesis, in every channel: it is one model's writing about the votes, and it decided nothing.
SYNTHESIS_LABEL = "Review for the author, synthesized from the votes by {model} (the outcome is the panel's)"


def synthesis_markdown(synthesis: Synthesis) -> list[str]:
    """The review as Markdown lines, every piece of model text escaped (`escape.markdown`, `escape.markdown_code`)."""
    md = escape.markdown
    if synthesis.error is not None:
        return [f"*Review for the author: synthesis failed ({md(synthesis.error, 300)}).*", ""]
    lines = [f"**{md(synthesis.title, 300)}**", "", f"*{md(SYNTHESIS_LABEL.format(model=synthesis.model))}*", ""]
    lines += [f"> {md(line, 2000)}" for line in synthesis.explanation.splitlines() if line.strip()] + [""]
    for f in synthesis.findings:
        why = f" {md(f.rationale, 1000)}" if f.rationale else ""
        lines.append(f"- **{md(f.severity)}** {md(f.category)} {md(f.where())}: {md(f.title)}.{why}")
    for label, text in (("Where the voters disagreed", synthesis.disagreement), ("Fix", synthesis.fix)):
        if text.strip():
            lines.append(f"- **{label}:** {md(text, 2000)}")
    lines.append("")
    if synthesis.patch.strip():
        patch = escape.markdown_code(synthesis.patch.strip("\n"), "diff")
        lines += ["<details><summary>Suggested patch</summary>", "", *patch, "", "</details>", ""]
    return lines


def alerts(run: RunResult) -> tuple[Alert, ...]:
    """Every merged finding of the run, most severe first, each with its stable fingerprint."""
    merged = [a for result in run.results for a in _section_alerts(result)]
    merged.sort(key=Alert.sort_key)
    return _with_fingerprints(merged)


def _section_alerts(result: SectionResult) -> list[Alert]:
    kind = OUTCOME_KIND[result.outcome]
    # (path, line, rule) -> voter -> that voter's most severe finding there (a voter counts once)
    groups: dict[tuple[str, int | None, str], dict[str, tuple[Vote, Finding]]] = {}
    for vote in result.votes:
        if vote.verdict != "UNSAFE":
            continue
        for finding in vote.findings:
            key = (safe_path(finding.path, result.section.path), finding.line or None, rule_id(finding.category))
            group = groups.setdefault(key, {})
            earlier = group.get(vote.voter_id)
            if earlier is None or severity_rank(finding.severity) < severity_rank(earlier[1].severity):
                group[vote.voter_id] = (vote, finding)
    out = []
    for (path, line, rule), by_voter in groups.items():
        raised_by = tuple(by_voter.values())
        # The most severe finding speaks for the group; among equals, the first voter's.
        lead = min((f for _, f in raised_by), key=lambda f: severity_rank(f.severity))
        out.append(
            Alert(result, kind, path, line, rule, lead.category, lead.severity, lead.title, lead.rationale, raised_by)
        )
    return out


def _with_fingerprints(merged: list[Alert]) -> tuple[Alert, ...]:
    """Fingerprint = hash(path, rule) plus the alert's ordinal among that file's alerts of that rule.

    Neither the line (code moves) nor the title (model prose, reworded on every run and by
    every voter) is in it, so the same finding keeps its fingerprint across runs and edits;
    the ordinal (in line order) keeps two findings of one rule in one file apart.
    """

    def position(i: int) -> tuple[str, str, int, str]:
        a = merged[i]
        return (a.path, a.rule_id, a.line or 0, a.title.casefold())

    seen: dict[tuple[str, str], int] = {}
    ordinal: dict[int, int] = {}
    for i in sorted(range(len(merged)), key=position):
        key = (merged[i].path, merged[i].rule_id)
        seen[key] = ordinal[i] = seen.get(key, 0) + 1
    return tuple(replace(a, fingerprint=_fingerprint(a.path, a.rule_id, ordinal[i])) for i, a in enumerate(merged))


def _fingerprint(path: str, rule: str, ordinal: int) -> str:
    digest = hashlib.sha256(f"{path}\0{rule}".encode()).hexdigest()[:32]
    return f"{digest}:{ordinal}"


def security_severity(severity: str) -> str:
    """GitHub's `security-severity` score for a severity; an unknown one scores as medium."""
    return SECURITY_SEVERITY.get(severity, SECURITY_SEVERITY["medium"])


def cwe_number(category: str) -> int | None:
    """89 for `CWE-89`, `cwe89` or `CWE-89: SQL injection`; None when the category names no CWE."""
    match = _CWE.search(category)
    return int(match.group(1)) if match else None


def rule_id(category: str) -> str:
    """`CWE-89` for a CWE category, else `swarmgate/<slug>` so free-form categories stay one rule each."""
    number = cwe_number(category)
    if number is not None:
        return f"CWE-{number}"
    slug = re.sub(r"[^a-z0-9]+", "-", category.casefold()).strip("-")[:64].strip("-")
    return f"swarmgate/{slug or 'uncategorized'}"


def safe_path(candidate: str, fallback: str) -> str:
    """A voter's path when it is a clean relative path in the repository, else the section's.

    The diff and the model are untrusted: an absolute path or one with `..` must never reach
    a report that CI tools resolve against the checkout.
    """
    for path in (candidate, fallback):
        clean = _clean(path)
        if clean is not None:
            return clean
    # Even the section path is unusable (a hand-made patch can say anything): defang it.
    parts = [p for p in _CONTROL.sub("", fallback.replace("\\", "/")).split("/") if p not in ("", ".", "..")]
    return "/".join(parts).lstrip(":") or "unknown"


def _clean(path: str) -> str | None:
    path = path.strip().replace("\\", "/")
    if not path or _CONTROL.search(path) or "://" in path or _DRIVE.match(path) or path.startswith("/"):
        return None
    if ".." in path.split("/"):
        return None
    clean = posixpath.normpath(path)
    return None if clean in (".", "") else clean


def release_hint(run: RunResult) -> str:
    """What a human can do about the held changes, the same in every channel: the release command
    only when releasing would let the run pass (else asking a human is pointless)."""
    if release_helps(run):
        return (
            f"review by hand, then rerun with --swarm-allow-held={run.diff_sha256} typed on the command line "
            "(or run the gate from the base branch)"
        )
    return "releasing it would not pass the gate: other sections fail on their own"


def held_entries(run: RunResult) -> list[tuple[str, str]]:
    """(path, reason) of each held change; the path is made safe like a voter's."""
    return [(safe_path(h.path, "."), h.reason) for h in run.held]
