"""Resolve every setting of a review once, with precedence marker > command line > env > ini > default."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pytest

from . import options
from .cache import default_directory
from .model import Voter
from .panel import build_panel, parse_panel_lines
from .voting import check_threshold

PANEL_KEYS = ("voters", "models", "temperatures", "effort", "lenses")
OVERRIDE_KEYS = frozenset(
    {"panel", "threshold", "on_inconclusive", "concurrency", "timeout", "max_retries", "max_tokens", "prewarm",
     "section_budget", "max_sections", "include", "exclude", *PANEL_KEYS}
)


@dataclass(frozen=True)
class GateSettings:
    panel: tuple[Voter, ...]
    k: int
    on_inconclusive: str
    concurrency: int
    timeout: float
    max_retries: int
    max_tokens: int
    prewarm: str
    section_budget: int
    max_sections: int
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    cache_dir: Path | None

    @property
    def n(self) -> int:
        return len(self.panel)

    def describe_panel(self) -> str:
        return f"panel of {self.n} ({', '.join(sorted({v.model for v in self.panel}))}), K={self.k}"


def default_threshold(n: int) -> int:
    """4 of 5 by default; the same 80% share, rounded up, for other panel sizes."""
    return max(1, math.ceil(0.8 * n))


def _as_list(value: Any) -> list[str]:
    """A comma list, or a list whose items may themselves be comma lists (ini `args`, TOML lists)."""
    if value is None:
        return []
    if isinstance(value, str):
        return options.split_list(value)
    return [item for v in value for item in options.split_list(str(v))]


def resolve(config: pytest.Config, overrides: Mapping[str, Any] | None = None) -> GateSettings:
    """All settings for one review; a bad value is a one-line pytest.UsageError."""
    overrides = dict(overrides or {})
    unknown = set(overrides) - OVERRIDE_KEYS
    if unknown:
        raise pytest.UsageError(f"unknown swarm panel setting(s): {', '.join(sorted(unknown))}")

    def value(name: str) -> Any:
        if name in overrides:
            # Marker and fixture values pass the same checks as the command line.
            raw = overrides[name]
            option = options.BY_NAME.get(name.replace("_", "-"))
            if option is not None and option.convert not in (str, options.bool_value) and not isinstance(raw, bool):
                return option.convert(str(raw))
            return raw
        return options.get(config, name.replace("_", "-"))

    def given(name: str) -> bool:
        return name in overrides or options.from_command_line(config, name.replace("_", "-"))

    cache_dir = None
    if not options.get(config, "no-cache"):
        raw = options.get(config, "cache-dir")
        cache_dir = Path(raw).expanduser() if raw else default_directory()
    try:
        panel = _panel(config, overrides, value, given)
        k = int(value("threshold")) if given("threshold") or config.getini("swarm_threshold") else default_threshold(len(panel))
        check_threshold(len(panel), k)
        return GateSettings(
            panel=tuple(panel),
            k=k,
            on_inconclusive=value("on_inconclusive"),
            concurrency=value("concurrency"),
            timeout=value("timeout"),
            max_retries=value("max_retries"),
            max_tokens=value("max_tokens"),
            prewarm=value("prewarm"),
            section_budget=value("section_budget"),
            max_sections=value("max_sections"),
            include=tuple(_as_list(value("include"))),
            exclude=tuple(_as_list(value("exclude"))),
            cache_dir=cache_dir,
        )
    except ValueError as exc:
        raise pytest.UsageError(f"swarmgate: {exc}") from None


def _panel(config: pytest.Config, overrides: Mapping[str, Any], value: Any, given: Any) -> list[Voter]:
    explicit = overrides.get("panel")
    if explicit is not None:
        if isinstance(explicit, str):
            explicit = explicit.splitlines()
        if all(isinstance(v, Voter) for v in explicit):
            return list(explicit)
        return parse_panel_lines([str(line) for line in explicit])
    ini_panel: Sequence[str] = config.getini("swarm_panel") or []
    if ini_panel and not any(given(k) for k in PANEL_KEYS):
        return parse_panel_lines(ini_panel)
    return build_panel(
        int(value("voters")),
        _as_list(value("models")),
        _as_list(value("temperatures")),
        _as_list(value("effort")),
        [lens for lens in _as_list(value("lenses")) if lens != "none"],
    )
