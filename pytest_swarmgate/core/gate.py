"""The Gate in force - K SAFE votes of a panel of N, and what an INCONCLUSIVE section does - and
the outcome arithmetic on a tally. Data only: whether a section or a run passes is core/decision.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .choices import INCONCLUSIVE_POLICIES, InconclusivePolicy, Outcome


def check_threshold(n: int, k: int) -> None:
    """Raise ValueError unless 1 <= K <= N."""
    if n < 1:
        raise ValueError(f"the panel needs at least one voter, got N={n}")
    if not 1 <= k <= n:
        raise ValueError(f"threshold K must be between 1 and N={n}, got K={k}")


def outcome(safe: int, unsafe: int, n: int, k: int) -> Outcome:
    """SAFE when SAFE votes reach K; UNSAFE when UNSAFE votes put K out of reach; else INCONCLUSIVE.

    ERROR votes count for neither side, so enough of them leave both out of reach.
    """
    check_threshold(n, k)
    if safe + unsafe > n:
        raise ValueError(f"{safe} SAFE + {unsafe} UNSAFE votes exceed a panel of {n}")
    if safe >= k:
        return "SAFE"
    if unsafe > n - k:
        return "UNSAFE"
    return "INCONCLUSIVE"


_INCONCLUSIVE_TEXT: dict[InconclusivePolicy, str] = {
    "fail": "INCONCLUSIVE counts as flagged",
    "warn": "INCONCLUSIVE passes (warn)",
    "pass": "INCONCLUSIVE passes",
}


@dataclass(frozen=True)
class Gate:
    """K SAFE votes of a panel of N, and the INCONCLUSIVE policy; `core/decision.py` applies it."""

    n: int
    k: int
    on_inconclusive: InconclusivePolicy = "fail"

    def __post_init__(self) -> None:
        check_threshold(self.n, self.k)
        if self.on_inconclusive not in INCONCLUSIVE_POLICIES:
            raise ValueError(
                f"on_inconclusive must be one of {', '.join(INCONCLUSIVE_POLICIES)}, got {self.on_inconclusive!r}"
            )

    def at(self, k: int) -> Gate:
        """The same gate at threshold K."""
        return replace(self, k=k)

    def outcome(self, safe: int, unsafe: int) -> Outcome:
        return outcome(safe, unsafe, self.n, self.k)

    def describe_inconclusive(self) -> str:
        return _INCONCLUSIVE_TEXT[self.on_inconclusive]

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "k": self.k, "on_inconclusive": self.on_inconclusive}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Gate:
        return cls(n=int(d["n"]), k=int(d["k"]), on_inconclusive=d.get("on_inconclusive") or "fail")
