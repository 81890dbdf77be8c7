"""What the stub refuses before its script is asked: a message request the real API would
reject, and sampling parameters or strict tools the endpoint is told not to take."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

CURRENT_API_VERSION = "2026-10-21"
"""The API version the SDK (2.x) sends; `sampling="legacy"` accepts sampling only below it."""

SAMPLING_PARAMS: tuple[str, ...] = ("temperature", "top_p", "top_k")

Sampling = Literal["accept", "reject", "legacy"]
SAMPLING_MODES: tuple[str, ...] = ("accept", "reject", "legacy")
Strict = Literal["accept", "reject"]
STRICT_MODES: tuple[str, ...] = ("accept", "reject")


def request_problem(body: Mapping[str, Any]) -> str | None:
    """The first problem the real API would reject the request for, or None."""
    if not isinstance(body.get("model"), str) or not body.get("model"):
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        return "max_tokens: Field required (a non-negative integer)"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required (a non-empty list)"
    return None


def sampling_problem(body: Mapping[str, Any], api_version: str | None, mode: Sampling) -> str | None:
    """Why sampling parameters sent under `api_version` are refused in `mode`, or the
    temperature is out of range; None when they pass."""
    sent = [p for p in SAMPLING_PARAMS if p in body]
    if not sent:
        return None
    legacy_ok = api_version is not None and api_version < CURRENT_API_VERSION
    if mode == "reject" or (mode == "legacy" and not legacy_ok):
        return f"{sent[0]}: sampling parameters are not supported for this model"
    temperature = body.get("temperature")
    if "temperature" in body and (
        isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0.0 <= temperature <= 1.0
    ):
        return "temperature: Input should be a number between 0 and 1"
    return None


def strict_problem(body: Mapping[str, Any], mode: Strict) -> str | None:
    """In mode "reject", a tool sent with `strict: true` is refused, naming the field."""
    tools = body.get("tools")
    if mode == "reject" and isinstance(tools, list):
        for i, tool in enumerate(tools):
            if isinstance(tool, Mapping) and "strict" in tool:
                return f"tools.{i}.custom.strict: Extra inputs are not permitted"
    return None
