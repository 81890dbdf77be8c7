"""The vocabulary as data: sections, voters, votes, findings and outcomes.

Everything here is plain, immutable where it can be, and round-trips through JSON
(`to_dict` / `from_dict`) so results can travel to xdist workers, into the vote cache
and into the JSON report without losing a field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .choices import (
    ChangeKind,
    ContextKind,
    ErrorKind,
    HeldKind,
    NotReviewedKind,
    Outcome,
    Side,
    StopCause,
    Verdict,
    severity_rank,
)
from .gate import Gate
from .policy import TeamPolicy


def describe_knobs(
    temperature: float | None, effort: str | None, lens: str | None, unset_temperature: str = "t=default"
) -> str:
    """`t=0.7 effort=high lens=security`: a voter's sampling, effort and lens settings."""
    parts = [f"t={temperature:g}" if temperature is not None else unset_temperature]
    parts += [f"effort={effort}"] if effort else []
    parts += [f"lens={lens}"] if lens else []
    return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class Finding:
    """A structured issue a voter raised; `line` is a line of the new file, or None."""

    path: str
    line: int | None
    severity: str
    category: str
    title: str
    rationale: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Finding:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})

    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else self.path


@dataclass(frozen=True)
class ContextPart:
    """One part of a section's context: what it is, where its text comes from, and its size.

    `start`/`end` are the lines of `path` on `side` the part shows (0 for the map, which
    comes from the diff); `source` says which text it was read from (`git HEAD`, `diff`, ...).
    """

    kind: ContextKind
    path: str
    side: Side | None
    start: int
    end: int
    chars: int
    source: str
    name: str = ""

    def describe(self) -> str:
        """`scope app/x.py new 3-40 (git HEAD) 812 chars`: one part in a line."""
        lines = f" {self.side} {self.start}-{self.end}" if self.side else ""
        name = f" {self.name}" if self.name else ""
        return f"{self.kind}{name} {self.path}{lines} ({self.source}) {self.chars} chars"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ContextPart:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class Context:
    """What a section's voters see beside its diff (see core/context/): the text, its parts, and notes
    on what is missing (a file that does not parse, what did not fit the budget)."""

    text: str
    parts: tuple[ContextPart, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "parts": [p.to_dict() for p in self.parts], "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Context:
        return cls(d["text"], tuple(ContextPart.from_dict(p) for p in d["parts"]), tuple(d["notes"]))


@dataclass(frozen=True)
class Section:
    """The unit of review: one changed file, or one slice (`part` of `parts`) of a large one.

    `context` is what its voters see beside the diff, built once before any call (None: none).
    """

    id: str
    path: str
    old_path: str | None
    change: ChangeKind
    text: str
    part: int = 1
    parts: int = 1
    added: int = 0
    removed: int = 0
    context: Context | None = None

    @property
    def prompt_chars(self) -> int:
        """Characters of diff and context the voters read."""
        return len(self.text) + (len(self.context.text) if self.context else 0)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["context"] = self.context.to_dict() if self.context else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Section:
        fields = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name != "context"}
        context = d.get("context")
        return cls(**fields, context=Context.from_dict(context) if context else None)


@dataclass(frozen=True)
class NotReviewed:
    """A changed file that is deliberately not sent to the panel: its kind, and why in words."""

    path: str
    reason: str
    old_path: str | None = None
    kind: NotReviewedKind = "configured"
    change: ChangeKind = "modified"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NotReviewed:
        return cls(
            path=d["path"],
            reason=d["reason"],
            old_path=d.get("old_path"),
            # required: a missing kind must not default to one that may stay unreviewed
            kind=d["kind"],
            change=d["change"],
        )


@dataclass(frozen=True)
class Held:
    """A change held for a human (see core/held.py): its path, its kind, and why in words."""

    path: str
    kind: HeldKind
    reason: str

    def line(self) -> str:
        return f"{self.path}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Held:
        return cls(path=d["path"], kind=d["kind"], reason=d["reason"])


@dataclass(frozen=True)
class Voter:
    """One independent reviewer as configured (what was asked for, not what ran)."""

    id: str
    model: str
    temperature: float | None = None
    effort: str | None = None
    lens: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Voter:
        return cls(
            id=d["id"], model=d["model"], temperature=d.get("temperature"), effort=d.get("effort"), lens=d.get("lens")
        )

    def describe(self) -> str:
        return f"{self.model} {describe_knobs(self.temperature, self.effort, self.lens, unset_temperature='')}".strip()


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )

    @classmethod
    def sum(cls, usages: Iterable[Usage]) -> Usage:
        """The field-by-field sum, without a new Usage per term."""
        i = o = r = w = 0
        for u in usages:
            i, o, r, w = i + u.input_tokens, o + u.output_tokens, r + u.cache_read_tokens, w + u.cache_write_tokens
        return cls(i, o, r, w)

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Usage:
        return cls(**{f.name: int(d.get(f.name) or 0) for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class Settings:
    """The settings a call really ran with, and a note for each one that was not applied."""

    temperature: float | None = None
    effort: str | None = None
    lens: str | None = None
    api_version: str | None = None
    notes: tuple[str, ...] = ()
    # Whether the verdict tool went with `strict: true`; None when the voter does not say.
    strict: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["notes"] = list(self.notes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Settings:
        return cls(
            temperature=d.get("temperature"),
            effort=d.get("effort"),
            lens=d.get("lens"),
            api_version=d.get("api_version"),
            notes=tuple(d.get("notes") or ()),
            strict=d.get("strict"),
        )

    def describe(self) -> str:
        return describe_knobs(self.temperature, self.effort, self.lens)


@dataclass(frozen=True)
class Vote:
    """One voter's answer on one section. ERROR never counts as SAFE."""

    section_id: str
    voter_id: str
    model: str
    verdict: Verdict
    confidence: float | None = None
    findings: tuple[Finding, ...] = ()
    summary: str = ""
    stop_reason: str | None = None
    latency_s: float = 0.0
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    settings: Settings = field(default_factory=Settings)
    cached: bool = False
    # The model the reply named (a gateway may answer with another one); None without a reply.
    answered_model: str | None = None
    # Why it is an ERROR, from a closed set (core/choices.py); None for SAFE and UNSAFE.
    error_kind: ErrorKind | None = None

    @property
    def credited_model(self) -> str:
        """The model the vote is credited to: the one that answered, else the one requested."""
        return self.answered_model or self.model

    @property
    def swapped(self) -> bool:
        """The reply named a model other than the one requested."""
        return self.answered_model is not None and self.answered_model != self.model

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["findings"] = [f.to_dict() for f in self.findings]
        d["usage"] = self.usage.to_dict()
        d["settings"] = self.settings.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Vote:
        return cls(
            section_id=d["section_id"],
            voter_id=d["voter_id"],
            model=d["model"],
            verdict=d["verdict"],
            confidence=d.get("confidence"),
            findings=tuple(Finding.from_dict(f) for f in d.get("findings") or ()),
            summary=d.get("summary") or "",
            stop_reason=d.get("stop_reason"),
            latency_s=float(d.get("latency_s") or 0.0),
            usage=Usage.from_dict(d.get("usage") or {}),
            error=d.get("error"),
            settings=Settings.from_dict(d.get("settings") or {}),
            cached=bool(d.get("cached")),
            answered_model=d.get("answered_model"),
            error_kind=d.get("error_kind"),
        )

    def top_finding(self) -> Finding | None:
        """The most severe finding, first in the voter's order among equals."""
        if not self.findings:
            return None
        return min(self.findings, key=lambda f: severity_rank(f.severity))


@dataclass(frozen=True)
class Synthesis:
    """The aggregator's one review of a section for its author (core/synthesis.py): model output,
    shown and never counted - the outcome is the panel's. `error` says why there is none."""

    model: str
    title: str = ""
    explanation: str = ""
    findings: tuple[Finding, ...] = ()
    disagreement: str = ""
    fix: str = ""
    patch: str = ""
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    error: str | None = None
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["findings"] = [f.to_dict() for f in self.findings]
        d["usage"] = self.usage.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Synthesis:
        texts = {name: str(d.get(name) or "") for name in ("title", "explanation", "disagreement", "fix", "patch")}
        return cls(
            model=d["model"],
            **texts,
            findings=tuple(Finding.from_dict(f) for f in d.get("findings") or ()),
            usage=Usage.from_dict(d.get("usage") or {}),
            latency_s=float(d.get("latency_s") or 0.0),
            error=d.get("error"),
            cached=bool(d.get("cached")),
        )


@dataclass(frozen=True)
class SectionResult:
    """A section, every vote cast on it, the panel's outcome, and the aggregator's review (if any)."""

    section: Section
    votes: tuple[Vote, ...]
    outcome: Outcome
    n: int
    k: int
    synthesis: Synthesis | None = None

    # Counts are cached: the instance is frozen, and reports read them many times.
    @cached_property
    def safe(self) -> int:
        return sum(v.verdict == "SAFE" for v in self.votes)

    @cached_property
    def unsafe(self) -> int:
        return sum(v.verdict == "UNSAFE" for v in self.votes)

    @cached_property
    def errors(self) -> int:
        return sum(v.verdict == "ERROR" for v in self.votes)

    @property
    def dissent(self) -> tuple[Vote, ...]:
        """Votes that disagree with a decided outcome (UNSAFE votes on a SAFE section, and so on)."""
        if self.outcome == "SAFE":
            return tuple(v for v in self.votes if v.verdict == "UNSAFE")
        if self.outcome == "UNSAFE":
            return tuple(v for v in self.votes if v.verdict == "SAFE")
        return ()

    def tally(self) -> str:
        """`UNSAFE 4/5 (K=4)`: the outcome with the count of votes that carry it."""
        count = {"SAFE": self.safe, "UNSAFE": self.unsafe}.get(self.outcome)
        if count is None:
            return f"INCONCLUSIVE {self.safe} safe/{self.unsafe} unsafe/{self.errors} error (K={self.k})"
        return f"{self.outcome} {count}/{self.n} (K={self.k})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "section": self.section.to_dict(),
            "votes": [v.to_dict() for v in self.votes],
            "outcome": self.outcome,
            "n": self.n,
            "k": self.k,
            "tally": {"safe": self.safe, "unsafe": self.unsafe, "error": self.errors},
            "synthesis": self.synthesis.to_dict() if self.synthesis is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SectionResult:
        return cls(
            section=Section.from_dict(d["section"]),
            votes=tuple(Vote.from_dict(v) for v in d["votes"]),
            outcome=d["outcome"],
            n=int(d["n"]),
            k=int(d["k"]),
            synthesis=Synthesis.from_dict(d["synthesis"]) if d.get("synthesis") else None,
        )


@dataclass(frozen=True)
class Stopped:
    """Why a review could not be completed: the gate fails with its own exit code, never as UNSAFE.

    cause: "preflight" (a check before collection failed and may pass later), "fault" (a run-wide
    fault that may pass later stopped the calls), "config" (before or during the calls, a fault
    only a person can fix: a rejected key, a permission, an unknown model, a refused request),
    "deadline" (--swarm-deadline came first), "ceiling" (the diff is over --swarm-max-sections,
    --swarm-max-input-tokens or --swarm-max-diff-bytes).
    """

    cause: StopCause
    message: str
    calls_sent: int = 0
    calls_total: int = 0

    def line(self, verb: str | None = None) -> str:
        """`review stopped: HTTP 401 ...`: the one line that names the cause (`verb` replaces its first words)."""
        started = self.calls_sent > 0 or self.cause in ("fault", "deadline")
        if verb is None:
            verb = "not reviewed" if self.cause == "ceiling" else "review stopped" if started else "review not started"
        sent = f" ({self.calls_sent} of {self.calls_total} calls sent)" if started else ""
        return f"{verb}: {self.message}{sent}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Stopped:
        return cls(d["cause"], d["message"], int(d.get("calls_sent") or 0), int(d.get("calls_total") or 0))


@dataclass(frozen=True)
class RunResult:
    """Everything one review run produced, and the Gate (N, K, INCONCLUSIVE policy) that judges it.

    Sums and counts are computed once, on first use (the instance is frozen).
    """

    source: str
    diff_sha256: str
    panel: tuple[Voter, ...]
    gate: Gate
    results: tuple[SectionResult, ...]
    not_reviewed: tuple[NotReviewed, ...] = ()
    wall_time_s: float = 0.0
    prewarm_calls: int = 0
    prewarm_usage: Usage = field(default_factory=Usage)
    notes: tuple[str, ...] = ()
    # Changes held for a human (see core/held.py): any fails the gate.
    held: tuple[Held, ...] = ()
    # Held changes a human allowed for this diff on the command line.
    released: tuple[Held, ...] = ()
    # Set when the review could not be completed (see Stopped): the gate fails, not as UNSAFE.
    stopped: Stopped | None = None
    # The team's review guidance every voter read (--swarm-policy), word for word; None without one.
    policy: TeamPolicy | None = None

    def __post_init__(self) -> None:
        if self.gate.n != len(self.panel):
            raise ValueError(f"the gate's N={self.gate.n} is not the panel's {len(self.panel)} voters")

    @property
    def k(self) -> int:
        """Threshold K of the gate."""
        return self.gate.k

    @cached_property
    def votes(self) -> tuple[Vote, ...]:
        return tuple(v for r in self.results for v in r.votes)

    @cached_property
    def usage(self) -> Usage:
        """Tokens this run paid for, prewarm and aggregator calls included; nothing the cache served."""
        return Usage.sum(
            [self.prewarm_usage, *(v.usage for v in self.votes if not v.cached), *(s.usage for s in self.syntheses)]
        )

    @cached_property
    def syntheses(self) -> tuple[Synthesis, ...]:
        """The aggregator's calls of this run (one per synthesized section), not those the cache served."""
        return tuple(r.synthesis for r in self.results if r.synthesis is not None and not r.synthesis.cached)

    @cached_property
    def cached_votes(self) -> int:
        """Votes served from the vote cache (not `len(votes) - calls`: prewarm calls are calls too)."""
        return sum(v.cached for v in self.votes)

    @cached_property
    def calls(self) -> int:
        """Calls sent to the endpoint, prewarm and aggregator calls included: not a cached vote or review, nor a
        vote a stop left unsent.

        The one count of calls: the totals, the cost and a stop's "16 of 25 calls sent" all say this."""
        sent = sum(1 for v in self.votes if not v.cached and v.error_kind != "not_sent")
        return self.prewarm_calls + sent + len(self.syntheses)

    @cached_property
    def counts(self) -> Mapping[Outcome, int]:
        """How many sections have each outcome (every outcome present, in OUTCOMES order)."""
        counted: dict[Outcome, int] = {"SAFE": 0, "UNSAFE": 0, "INCONCLUSIVE": 0}
        for r in self.results:
            counted[r.outcome] += 1
        return counted

    @property
    def outcome(self) -> Outcome:
        """The worst section outcome: UNSAFE, then INCONCLUSIVE; SAFE when nothing is left."""
        worst: Outcome
        for worst in ("UNSAFE", "INCONCLUSIVE"):
            if self.counts[worst]:
                return worst
        return "SAFE"

    @property
    def sections(self) -> tuple[SectionResult, ...]:
        """The reviewed sections with their votes and outcomes (the same as `results`)."""
        return self.results

    @cached_property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for v in self.votes for f in v.findings)

    def result_for(self, section_id: str) -> SectionResult | None:
        return self._by_id.get(section_id)

    @cached_property
    def _by_id(self) -> Mapping[str, SectionResult]:
        """Results by section id (the first, should one repeat), indexed once: each section's item asks for its own."""
        by_id: dict[str, SectionResult] = {}
        for r in self.results:
            by_id.setdefault(r.section.id, r)
        return by_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "diff_sha256": self.diff_sha256,
            "panel": [v.to_dict() for v in self.panel],
            "k": self.gate.k,
            "gate": self.gate.to_dict(),
            "results": [r.to_dict() for r in self.results],
            "not_reviewed": [n.to_dict() for n in self.not_reviewed],
            "wall_time_s": self.wall_time_s,
            "prewarm_calls": self.prewarm_calls,
            "prewarm_usage": self.prewarm_usage.to_dict(),
            "notes": list(self.notes),
            "held": [h.to_dict() for h in self.held],
            "released": [h.to_dict() for h in self.released],
            "stopped": self.stopped.to_dict() if self.stopped is not None else None,
            "policy": self.policy.to_dict() if self.policy is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunResult:
        panel = tuple(Voter.from_dict(v) for v in d["panel"])
        return cls(
            source=d["source"],
            diff_sha256=d["diff_sha256"],
            panel=panel,
            # A report written before the gate was recorded: the default policy.
            gate=Gate.from_dict(d["gate"]) if "gate" in d else Gate(len(panel), int(d["k"])),
            results=tuple(SectionResult.from_dict(r) for r in d["results"]),
            not_reviewed=tuple(NotReviewed.from_dict(n) for n in d["not_reviewed"]),
            wall_time_s=float(d.get("wall_time_s") or 0.0),
            prewarm_calls=int(d.get("prewarm_calls") or 0),
            prewarm_usage=Usage.from_dict(d.get("prewarm_usage") or {}),
            notes=tuple(d.get("notes") or ()),
            held=tuple(Held.from_dict(h) for h in d.get("held") or ()),
            released=tuple(Held.from_dict(h) for h in d.get("released") or ()),
            stopped=Stopped.from_dict(d["stopped"]) if d.get("stopped") else None,
            policy=TeamPolicy.from_dict(d["policy"]) if d.get("policy") else None,
        )
