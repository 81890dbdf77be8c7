"""Agreement between a calibration's voters: do they err independently, or like one voter?

Over each voter's per-fixture flags (True: flagged, False: not, None: no answer there).
Pairwise percent agreement for every voter pair (over the fixtures both answered) and their
mean. Kappa is Fleiss' kappa (two categories: flagged / not) over the fixtures every voter
answered, with the chance agreement taken *within each label* and pooled by fixture count.
Why: voting helps only when voters' errors are independent given the truth. Plain Fleiss'
kappa over a labeled corpus rewards accuracy - two independent voters that are both right
80% of the time agree well above chance just by being right - so it cannot tell independent
voters from copies. Within a label, independent voters score about 0 and copies 1. On a
corpus with a single label the two are the same number. When the chance agreement is 1
(every voter gave the same flag on every fixture of each label) kappa is undefined and
reported as None; the pairwise agreement (100%) still shows.

The independence warning fires when kappa >= 0.9 (voters make the same mistakes) or mean
pairwise agreement >= 0.95 (the panel behaves almost like one voter on this corpus).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from .text import percent

AGREEMENT_WARN = 0.95
KAPPA_WARN = 0.9
# Float noise: rates this close count as equal (calibration), and a chance agreement this
# close to 1 leaves kappa undefined.
EPS = 1e-12


@dataclass(frozen=True)
class PairAgreement:
    """How often two voters gave the same flag, over the fixtures both answered."""

    a: str
    b: str
    agree: int
    fixtures: int

    @property
    def agreement(self) -> float | None:
        return self.agree / self.fixtures if self.fixtures else None

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "agree": self.agree, "fixtures": self.fixtures, "agreement": self.agreement}


@dataclass(frozen=True)
class Agreement:
    """Agreement between voters: pairwise, mean, within-label Fleiss' kappa, and a warning."""

    pairs: tuple[PairAgreement, ...]
    mean: float | None
    kappa: float | None
    kappa_fixtures: int
    warning: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs": [p.to_dict() for p in self.pairs],
            "mean": self.mean,
            "kappa": self.kappa,
            "kappa_fixtures": self.kappa_fixtures,
            "warning": self.warning,
        }


def agreement(voters: Sequence[str], flags: Mapping[str, Sequence[bool | None]], labels: Sequence[str]) -> Agreement:
    """Pairwise agreement, its mean, within-label Fleiss' kappa and the independence warning."""
    pairs = tuple(_pair(a, b, flags[a], flags[b]) for a, b in combinations(voters, 2))
    rates = [p.agreement for p in pairs if p.agreement is not None]
    mean = sum(rates) / len(rates) if rates else None
    complete = [(label, [flags[v][i] for v in voters]) for i, label in enumerate(labels)]
    complete = [(label, fs) for label, fs in complete if all(f is not None for f in fs)]
    kappa = _kappa([(label, sum(bool(f) for f in fs)) for label, fs in complete], len(voters))
    return Agreement(
        pairs=pairs,
        mean=mean,
        kappa=kappa,
        kappa_fixtures=len(complete) if len(voters) > 1 else 0,
        warning=_independence_warning(mean, kappa),
    )


def _pair(a: str, b: str, fa: Sequence[bool | None], fb: Sequence[bool | None]) -> PairAgreement:
    """Agreement of voters a and b over the fixtures both answered."""
    both = [(x, y) for x, y in zip(fa, fb, strict=True) if x is not None and y is not None]
    return PairAgreement(a=a, b=b, agree=sum(x == y for x, y in both), fixtures=len(both))


def _kappa(flagged_counts: Sequence[tuple[str, int]], m: int) -> float | None:
    """Fleiss' kappa for two categories with chance agreement computed within each label.

    `flagged_counts` holds (label, how many of the m voters flagged the fixture).
    """
    if m < 2 or not flagged_counts:
        return None
    observed = sum((c * (c - 1) + (m - c) * (m - c - 1)) / (m * (m - 1)) for _, c in flagged_counts)
    observed /= len(flagged_counts)
    chance = 0.0
    for label in {label for label, _ in flagged_counts}:
        counts = [c for lab, c in flagged_counts if lab == label]
        p = sum(counts) / (m * len(counts))
        chance += len(counts) * (p * p + (1 - p) * (1 - p))
    chance /= len(flagged_counts)
    if 1.0 - chance < EPS:
        return None  # every voter gave the same flag on every fixture of each label: undefined
    return (observed - chance) / (1.0 - chance)


def _independence_warning(mean: float | None, kappa: float | None) -> str | None:
    """A warning when the voters look like one voter, naming which signal fired."""
    kappa_text = "undefined" if kappa is None else f"{kappa:.2f}"
    if kappa is not None and kappa >= KAPPA_WARN:
        return (
            f"voters are not independent: within-label kappa {kappa_text} >= {KAPPA_WARN} - they make "
            "the same mistakes, so voting adds little; vary model, effort or lens"
        )
    if mean is not None and mean >= AGREEMENT_WARN:
        return (
            f"voters agree on {percent(mean)} of fixtures (>= {AGREEMENT_WARN:.0%}): voting adds little on "
            f"this corpus (within-label kappa {kappa_text}); vary model, effort or lens, or add harder fixtures"
        )
    return None
