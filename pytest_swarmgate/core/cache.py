"""The vote cache: a rerun on the same diff with the same panel costs nothing.

Only SAFE and UNSAFE votes are kept (an ERROR deserves another try). The key covers
everything that can change a verdict - prompt version, endpoint, model, settings, the voter
implementation that cast the vote and the section itself - but not the run's random fence,
which changes nothing the model judges.

The implementation matters because the cache is user-wide: a custom
`pytest_swarmgate_make_voter` in one project (an always-SAFE stub, a linter) must never
serve its votes to the built-in voter of another project at the same endpoint.

The default home is the user's cache directory, outside the checkout: a pull request
controls its own tree, and a cache inside it would let the PR plant its own SAFE votes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .model import Section, Vote, Voter
from .prompt import PROMPT_VERSION
from .write import write_text_atomic


def default_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pytest-swarmgate" / "votes"


# The built-in voter's two transports: direct calls and Message Batches send the same requests
# and validate the replies the same way, so their votes are interchangeable.
BUILTIN_VOTER = "pytest_swarmgate.core.voters.AnthropicVoter"
_SAME_AS_BUILTIN = frozenset({BUILTIN_VOTER, "pytest_swarmgate.core.batch.BatchVoter"})


def implementation_name(cast: Any) -> str:
    """`module.qualname` of what casts the votes: the function itself, or the callable's class.

    A plain function (or method) is named by its own `__module__` and `__qualname__`, an
    instance by its class; `functools.partial` by the function it wraps.
    """
    while isinstance(cast, functools.partial):
        cast = cast.func
    qualname = getattr(cast, "__qualname__", None)
    if isinstance(qualname, str):
        name = f"{getattr(cast, '__module__', None)}.{qualname}"
    else:
        name = f"{type(cast).__module__}.{type(cast).__qualname__}"
    return BUILTIN_VOTER if name in _SAME_AS_BUILTIN else name


def all_cached(cache: VoteCache | None, sections: Any, panel: Any, endpoint: str, impl: str) -> bool:
    """Whether the cache holds every vote of these sections x voters, so the run makes no call."""
    return cache is not None and all(
        cache.get(vote_key(s, v, endpoint, impl)) is not None for s in sections for v in panel
    )


def vote_key(section: Section, voter: Voter, endpoint: str, impl: str) -> str:
    """A content address for one voter's vote on one section at one endpoint, cast by `impl`.

    `impl` names the voter implementation (see `implementation_name`).
    """
    material = {
        "prompt": PROMPT_VERSION,
        "endpoint": endpoint,
        "implementation": impl,
        "model": voter.model,
        "temperature": voter.temperature,
        "effort": voter.effort,
        "lens": voter.lens,
        # The voter id is in the prompt, so it is part of what the model saw.
        "voter": voter.id,
        "section": [section.id, section.path, section.old_path, section.change, section.part, section.parts],
        "text": section.text,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8", "surrogateescape")).hexdigest()


class VoteCache:
    """Votes stored one JSON file per key; writes are atomic so a crash leaves no half file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> Vote | None:
        path = self._path(key)
        try:
            data = json.loads(path.read_text("utf-8"))
            vote = Vote.from_dict(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            # A damaged entry is a miss, and is replaced by the next put.
            return None
        return vote if vote.verdict in ("SAFE", "UNSAFE") else None

    def put(self, key: str, vote: Vote) -> str | None:
        """Store a SAFE or UNSAFE vote; returns why it could not be stored, else None.

        A cache that cannot be written (read-only home in a CI container) costs a rerun its
        saving, never the review: the caller notes it and goes on.
        """
        if vote.verdict not in ("SAFE", "UNSAFE"):
            return None
        path = self._path(key)
        try:
            # 0600: a vote cache is this user's, not something other tools read.
            write_text_atomic(path, json.dumps(vote.to_dict()), mode=0o600)
        except OSError as exc:
            return f"vote cache not written to {self.directory}: {exc.strerror or exc}"
        return None
