"""Usage as the stub counts it: the token estimate and the simulated prompt cache.

The prompt prefix up to and including the last block with `cache_control` (in the order
tools, system blocks, message content blocks) is hashed with the model; the first call
writes it (`cache_creation_input_tokens`), calls that arrive after that first call has
answered read it (`cache_read_input_tokens`), and calls that arrive while it is still in
flight write it again. Every breakpoint counts, as with the real API: a call reads the
longest prefix that ends at one of its breakpoints and is already cached, and writes the
rest up to its last breakpoint (so a system block that is the same bytes in two runs is read
by the second even when the section after it changed). Tokens are characters / 4.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any


def tokens(chars: int) -> int:
    """The stub's token estimate: about four characters per token."""
    return math.ceil(chars / 4)


def prompt_blocks(body: Mapping[str, Any]) -> list[Any]:
    """The prompt in cache order: tools, system blocks, then every message's content blocks."""
    blocks: list[Any] = list(body.get("tools") or [])
    system = body.get("system")
    if isinstance(system, str):
        blocks.append({"type": "text", "text": system})
    elif isinstance(system, list):
        blocks.extend(system)
    for message in body.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            blocks.append({"type": "text", "text": content})
        elif isinstance(content, list):
            blocks.extend(content)
    return blocks


def block_tokens(block: Any) -> int:
    if isinstance(block, Mapping) and block.get("type") == "text" and isinstance(block.get("text"), str):
        return tokens(len(block["text"]))
    return tokens(len(json.dumps(block, default=str)))


class PromptCache:
    """The prompt prefixes written so far, each with when it becomes readable."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: dict[str, float] = {}  # prefix key -> when the entry becomes readable

    def usage(self, body: Mapping[str, Any], latency: float) -> dict[str, int]:
        """Input usage of one call that answers `latency` seconds from now (see the module docstring)."""
        blocks = prompt_blocks(body)
        breakpoints = [i for i, b in enumerate(blocks) if isinstance(b, Mapping) and "cache_control" in b]
        cut = breakpoints[-1] if breakpoints else -1
        counts = [block_tokens(b) for b in blocks]
        read_upto = -1  # the last block of the longest prefix already readable
        if breakpoints:
            keys = {i: self._prefix_key(body, blocks[: i + 1]) for i in breakpoints}
            now = time.monotonic()
            with self._lock:
                # A cache entry serves later calls only once the call that wrote it has
                # answered: calls sent together all write, as with the real API.
                for i in breakpoints:
                    ready = self._ready.get(keys[i])
                    if ready is not None and ready <= now:
                        read_upto = i
                for i in breakpoints:
                    self._ready.setdefault(keys[i], now + latency)
        return {
            "input_tokens": sum(counts[cut + 1 :]),
            "cache_creation_input_tokens": sum(counts[read_upto + 1 : cut + 1]),
            "cache_read_input_tokens": sum(counts[: read_upto + 1]),
        }

    @staticmethod
    def _prefix_key(body: Mapping[str, Any], prefix: Sequence[Any]) -> str:
        """The cache key of a prompt prefix: the model and the prefix's blocks, byte for byte."""
        material = json.dumps([body.get("model"), list(prefix)], sort_keys=True, default=str)
        return hashlib.sha256(material.encode()).hexdigest()
