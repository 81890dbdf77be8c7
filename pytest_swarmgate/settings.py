"""The settings of a review, resolved from the raw input of `options.py` once (marker > command line > env > ini >
default), and the panel built from lists or explicit lines (errors there are ValueError)."""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import pytest

from . import options
from .core.cache import default_directory
from .core.choices import EFFORTS, AggregateMode, CacheTtl, ContextMode, PrewarmMode
from .core.gate import Gate
from .core.model import Voter
from .core.policy import TeamPolicy
from .core.prompt import LENSES
from .core.synthesis import Aggregation

PANEL_KEYS = ("voters", "models", "temperatures", "effort", "lenses")
OVERRIDE_KEYS = frozenset(
    {
        "panel",
        "threshold",
        "on_inconclusive",
        "concurrency",
        "timeout",
        "max_retries",
        "max_tokens",
        "prewarm",
        "deadline",
        "cache_ttl",
        "section_budget",
        "context",
        "context_budget",
        "aggregate",
        "aggregator_model",
        "max_sections",
        "include",
        "exclude",
        "max_section_chars",
        "max_input_tokens",
        "max_diff_bytes",
        *PANEL_KEYS,
    }
)


@dataclass(frozen=True)
class GateSettings:
    """Every setting of one review; `gate` holds N (the panel's size), K and the INCONCLUSIVE policy."""

    panel: tuple[Voter, ...]
    gate: Gate
    concurrency: int
    timeout: float
    max_retries: int
    max_tokens: int
    prewarm: PrewarmMode
    section_budget: int
    max_sections: int
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    cache_dir: Path | None
    max_section_chars: int
    max_input_tokens: int
    max_diff_bytes: int  # the diff is read no further: a memory ceiling, checked before parsing
    cache_ttl: CacheTtl
    # Seconds the review may take from its first call (see core/control.py); None: unbounded.
    deadline: float | None
    # What each section's voters see beside its diff, and how many characters of it (see core/context/).
    context: ContextMode
    context_budget: int
    # The team's review guidance (--swarm-policy), read from the trusted side by runner.load_policy.
    policy: TeamPolicy | None = None
    # Which sections get the aggregator's review for the author, and its model (None: the panel's first).
    aggregate: AggregateMode = "blocked"
    aggregator_model: str | None = None

    @property
    def n(self) -> int:
        return len(self.panel)

    @property
    def k(self) -> int:
        return self.gate.k

    @property
    def aggregation(self) -> Aggregation | None:
        """Which sections get a synthesis and from which model; None when off."""
        if self.aggregate == "off":
            return None
        return Aggregation(self.aggregate, self.aggregator_model or self.panel[0].model, self.gate)

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
        word = "setting" if len(unknown) == 1 else "settings"
        raise pytest.UsageError(f"swarmgate: unknown swarm panel {word}: {', '.join(sorted(unknown))}")

    def value(name: str) -> Any:
        if name in overrides:
            # Marker and fixture values pass the same checks as the command line.
            raw = overrides[name]
            option = options.BY_NAME.get(name.replace("_", "-"))
            if option is not None and option.convert not in (str, options.bool_value) and not isinstance(raw, bool):
                try:
                    return option.convert(str(raw))
                except ValueError as exc:
                    raise ValueError(f"swarm_panel setting {name}: {exc}") from None
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
        given_k = given("threshold") or config.getini("swarm_threshold")
        k = int(value("threshold")) if given_k else default_threshold(len(panel))
        return GateSettings(
            panel=tuple(panel),
            gate=Gate(len(panel), k, value("on_inconclusive")),
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
            max_section_chars=value("max_section_chars"),
            max_input_tokens=value("max_input_tokens"),
            max_diff_bytes=value("max_diff_bytes"),
            cache_ttl=value("cache_ttl"),
            deadline=value("deadline"),
            context=value("context"),
            context_budget=value("context_budget"),
            aggregate=value("aggregate"),
            aggregator_model=value("aggregator_model") or None,
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


# --- the panel ------------------------------------------------------------------------


def parse_temperature(text: str) -> float:
    """0.0-1.0, the Anthropic range; 1.2 is a configuration error, not something to clamp."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"temperature {text!r} is not a number") from None
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"temperature {text} is outside 0.0-1.0, the range Anthropic models take")
    return value


def check_effort(effort: str) -> str:
    if effort not in EFFORTS:
        raise ValueError(f"effort {effort!r} is not one of {', '.join(EFFORTS)}")
    return effort


def check_lens(lens: str) -> str:
    if lens not in LENSES:
        raise ValueError(f"lens {lens!r} is not one of {', '.join(LENSES)}")
    return lens


def _cycled(values: Sequence[str], n: int) -> list[str | None]:
    return list(islice(cycle(values), n)) if values else [None] * n


def build_panel(
    n: int,
    models: Sequence[str],
    temperatures: Sequence[str] = (),
    efforts: Sequence[str] = (),
    lenses: Sequence[str] = (),
) -> list[Voter]:
    """N voters v1..vN, each list cycled over them in order."""
    if n < 1:
        raise ValueError(f"the panel needs at least one voter, got {n}")
    if not models:
        raise ValueError("the panel needs at least one model")
    rows = zip(_cycled(models, n), _cycled(temperatures, n), _cycled(efforts, n), _cycled(lenses, n), strict=True)
    return [
        Voter(
            id=f"v{i}",
            model=model or "",
            temperature=parse_temperature(t) if t is not None else None,
            effort=check_effort(e) if e is not None else None,
            lens=check_lens(lens) if lens is not None else None,
        )
        for i, (model, t, e, lens) in enumerate(rows, 1)
    ]


def parse_panel_lines(lines: Sequence[str]) -> list[Voter]:
    """One voter per line: `MODEL [temperature=T] [effort=E] [lens=L] [id=NAME]`; # starts a comment."""
    voters: list[Voter] = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            model, *pairs = shlex.split(text)
        except ValueError as exc:
            raise ValueError(f"panel line {number}: {exc}") from None
        if "=" in model:
            raise ValueError(f"panel line {number}: start with the model name, got {model!r}")
        fields: dict[str, str] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or key not in ("temperature", "effort", "lens", "id"):
                raise ValueError(f"panel line {number}: {pair!r} is not temperature=, effort=, lens= or id=")
            fields[key] = value
        voters.append(
            Voter(
                id=fields.get("id") or f"v{len(voters) + 1}",
                model=model,
                temperature=parse_temperature(fields["temperature"]) if "temperature" in fields else None,
                effort=check_effort(fields["effort"]) if "effort" in fields else None,
                lens=check_lens(fields["lens"]) if "lens" in fields else None,
            )
        )
    if not voters:
        raise ValueError("the panel lists no voters")
    return voters  # repeated ids are refused once the panel is settled (runner.settle_panel)
