"""Build and check a panel of voters from lists or explicit lines. Pure; errors are ValueError."""

from __future__ import annotations

import math
import shlex
from itertools import cycle, islice
from typing import Sequence

from .model import Voter
from .options import EFFORTS
from .prompt import LENSES


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
    rows = zip(_cycled(models, n), _cycled(temperatures, n), _cycled(efforts, n), _cycled(lenses, n))
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
    ids = [v.id for v in voters]
    if len(set(ids)) != len(ids):
        raise ValueError(f"panel voter ids repeat: {', '.join(ids)}")
    return voters
