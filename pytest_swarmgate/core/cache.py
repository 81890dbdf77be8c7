"""The vote cache: a rerun on the same diff with the same panel costs nothing.

Only SAFE and UNSAFE votes are kept (an ERROR deserves another try). The key covers
everything that can change a verdict - prompt version, endpoint, model, settings, the voter
implementation that cast the vote and the section itself with its context - but not the run's random fence,
which changes nothing the model judges.

The implementation matters because the cache is user-wide: a custom
`pytest_swarmgate_make_voter` in one project (an always-SAFE stub, a linter) must never
serve its votes to the built-in voter of another project at the same endpoint.

The default home is the user's cache directory, outside the checkout: a pull request
controls its own tree, and a cache inside it would let the PR plant its own SAFE votes.

Entries are authenticated, because the directory may still be writable by something the pull
request controls (its own test job on a self-hosted runner, a cache restored in CI): each entry
carries an HMAC-SHA256 over its cache key and its vote, under a key derived from a secret of
the job (`cache_secret`). An entry that fails the MAC, does not parse, or holds a vote that
fails the strict checks a fresh verdict passes is a miss: the vote is cast again.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import hmac
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .model import Section, SectionResult, Synthesis, Vote, Voter
from .prompt import PROMPT_VERSION
from .synthesis import Aggregation, revalidate_synthesis, synthesis_key
from .verdict import VerdictError, parse_tool_input
from .voting import judge

T = TypeVar("T")

# The job's own secret for the cache wins; else the Anthropic credential the job already holds.
CACHE_KEY_ENV = "SWARMGATE_CACHE_KEY"
CREDENTIAL_ENVS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
ENTRY_FORMAT = 1
MAX_ENTRY_BYTES = 4_000_000
_KEY_LABEL = b"pytest-swarmgate vote cache MAC key v1"


def default_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pytest-swarmgate" / "votes"


# The built-in caster's two transports: direct calls and Message Batches send the same requests
# and validate the replies the same way, so their votes are interchangeable.
BUILTIN_CASTER = "pytest_swarmgate.core.voters.AnthropicCaster"
_SAME_AS_BUILTIN = frozenset(
    {BUILTIN_CASTER, "pytest_swarmgate.core.batch.BatchCaster", "pytest_swarmgate.core.cache.CacheServes"}
)


class CacheServes:
    """The voter of a run the vote cache serves whole, for the built-in voter's votes: no client,
    no SDK. It is never called; if it were, the run would fail closed (an ERROR vote)."""

    async def __call__(self, section: Section, voter: Voter, fence: str) -> Vote:
        raise RuntimeError("the vote cache was to serve this vote and did not")

    async def synthesize(self, result: SectionResult, fence: str, model: str) -> Synthesis:
        """Never called either: the run is served whole only when the syntheses it needs are cached too."""
        raise RuntimeError("the vote cache was to serve this synthesis and did not")


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
    return BUILTIN_CASTER if name in _SAME_AS_BUILTIN else name


def all_cached(
    cache: VoteCache | None,
    sections: Iterable[Section],
    panel: Sequence[Voter],
    endpoint: str,
    impl: str,
    policy: str = "",
    aggregation: Aggregation | None = None,
) -> bool:
    """Whether the cache holds every vote of these sections x voters, and the synthesis of each section that
    `aggregation` wants once judged, so the run makes no call."""
    if cache is None:
        return False
    for section in sections:
        keys = [vote_key(section, v, endpoint, impl, policy) for v in panel]
        votes = [cache.get(key, section, v) for key, v in zip(keys, panel, strict=True)]
        cast = [v for v in votes if v is not None]
        if len(cast) < len(panel):
            return False
        if aggregation is None:
            continue
        result = judge(section, [dataclasses.replace(v, cached=True) for v in cast], len(panel), aggregation.gate.k)
        wanted = aggregation.wants(result)
        if (
            wanted
            and cache.get_synthesis(synthesis_key(result, keys, aggregation.model, endpoint, impl), result) is None
        ):
            return False
    return True


def vote_key(section: Section, voter: Voter, endpoint: str, impl: str, policy: str = "") -> str:
    """A content address for one voter's vote on one section at one endpoint, cast by `impl`.

    `impl` names the voter implementation (see `implementation_name`); `policy` is the sha256 of
    the team's guidance the voter read (core/policy.py), "" for none.
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
        # What the voter saw beside the diff: a vote cast with other context is another vote.
        "context": section.context.text if section.context else None,
    }
    if policy:  # only when given: the keys of runs without one stay what they were
        material["policy"] = policy
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8", "surrogateescape")).hexdigest()


def cache_secret(env: Mapping[str, str]) -> tuple[bytes, str] | None:
    """(MAC key, name of the variable it comes from), or None when the job provides no secret.

    The key is HMAC-SHA256(secret, a fixed label): the secret itself is never used as a key
    twice nor written anywhere. A pull request can neither read the job's secrets nor choose
    them, so it cannot compute the MAC of a vote it would like to plant.
    """
    for name in (CACHE_KEY_ENV, *CREDENTIAL_ENVS):
        value = env.get(name, "")
        if value.strip():
            return hmac.new(value.encode("utf-8", "surrogateescape"), _KEY_LABEL, hashlib.sha256).digest(), name
    return None


NO_SECRET_NOTE = (
    f"vote cache not used: no {CACHE_KEY_ENV}, ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN to authenticate "
    f"its entries with (set {CACHE_KEY_ENV} to a secret of the job to cache votes)"
)


def _sync(paths: list[Path]) -> None:
    """Everything written so far on disk: one `sync` where the system has it, else each path's fsync."""
    if hasattr(os, "sync"):
        os.sync()
        return
    for path in dict.fromkeys(p for p in paths if p.is_file()):  # a directory cannot be opened everywhere
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def open_cache(directory: Path | None, env: Mapping[str, str]) -> tuple[VoteCache | None, str | None]:
    """The run's vote cache (None when off), and the note that says why it is off for want of a secret."""
    if directory is None:
        return None, None
    secret = cache_secret(env)
    if secret is None:
        return None, NO_SECRET_NOTE
    return VoteCache(directory, secret[0]), None


class VoteCache:
    """Votes stored one authenticated JSON file per key.

    Each entry is read at most once per run (the answer is kept), and writes are made durable once
    per run: `put` writes a temporary file beside the entry, `flush` syncs them all, then moves each
    into place. A crash before the flush leaves only temporary files, never a torn entry.
    """

    def __init__(self, directory: Path, secret: bytes) -> None:
        if not secret:
            raise ValueError("the vote cache needs a secret to authenticate its entries")
        self.directory = directory
        self._secret = secret
        self.rejected = 0
        self.reads = 0
        self._known: dict[str, Vote | Synthesis | None] = {}
        self._pending: list[tuple[Path, Path]] = []  # (written temporary file, entry it becomes)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def _mac(self, key: str, payload: Mapping[str, Any], kind: str) -> str:
        # The cache key is inside the MAC: a valid entry cannot be moved to vouch for another section.
        # A vote's MAC keeps the form it had before syntheses were stored, so older entries still serve.
        material: list[Any] = [ENTRY_FORMAT, key, payload] if kind == "vote" else [ENTRY_FORMAT, key, kind, payload]
        body = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hmac.new(self._secret, body.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()

    def get(self, key: str, section: Section, voter: Voter) -> Vote | None:
        """The cached vote of `voter` on `section`, or None; a bad entry counts in `rejected`, once."""
        if key not in self._known:
            self._known[key] = self._read(key, "vote", lambda data: _entry_vote(data, section, voter))
        found = self._known[key]
        return found if isinstance(found, Vote) else None

    def get_synthesis(self, key: str, result: SectionResult) -> Synthesis | None:
        """The cached synthesis of `result` (see core/synthesis.py), or None; checked like a fresh one."""
        if key not in self._known:
            self._known[key] = self._read(key, "synthesis", lambda data: _entry_synthesis(data, result))
        found = self._known[key]
        return found if isinstance(found, Synthesis) else None

    def _read(self, key: str, kind: str, load: Callable[[dict[str, Any]], T]) -> T | None:
        """The entry's `kind` payload, authenticated and loaded; None for a miss (a bad entry is counted)."""
        self.reads += 1
        path = self._path(key)
        try:
            # A vote is a few kilobytes: a planted giant file is refused unread.
            if path.stat().st_size > MAX_ENTRY_BYTES:
                raise ValueError("entry too large")
            text = path.read_text("utf-8")
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            self.rejected += 1
            return None
        try:
            return load(_entry_payload(text, key, kind, self._mac))
        except (VerdictError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            # A forged or damaged entry is a miss, and is replaced by the next put.
            self.rejected += 1
            return None

    def put(self, key: str, vote: Vote, section: Section, voter: Voter) -> str | None:
        """Store a SAFE or UNSAFE vote; returns why it could not be stored, else None.

        Only a vote that `get` would accept is stored (a custom voter's loose vote is simply not
        cached). A cache that cannot be written (read-only home in a CI container) costs a rerun
        its saving, never the review: the caller notes it and goes on.
        """
        if vote.verdict not in ("SAFE", "UNSAFE"):
            return None
        try:
            checked = dataclasses.replace(revalidate(vote, section, voter), cached=False)
        except (VerdictError, ValueError, TypeError):
            return None
        return self._write(key, "vote", checked)

    def put_synthesis(self, key: str, synthesis: Synthesis, result: SectionResult) -> str | None:
        """Store a synthesis that has no error (a failed one deserves another try); why not, else None."""
        if synthesis.error is not None:
            return None
        try:
            checked = dataclasses.replace(revalidate_synthesis(synthesis, result), cached=False)
        except (VerdictError, ValueError, TypeError):
            return None
        return self._write(key, "synthesis", checked)

    def _write(self, key: str, kind: str, item: Vote | Synthesis) -> str | None:
        """Write the entry beside its place, for `flush`; why it could not be written, else None."""
        data = item.to_dict()
        entry = {"format": ENTRY_FORMAT, "key": key, kind: data, "mac": self._mac(key, data, kind)}
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # 0600 (mkstemp's mode): a vote cache is this user's, not something other tools read.
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(entry))
        except OSError as exc:
            return self._unwritable(exc)
        self._pending.append((Path(tmp), target))
        self._known[key] = item  # what a later read would give
        return None

    def flush(self) -> str | None:
        """Make this run's entries durable in one sync, then move them into place; why not, else None."""
        pending, self._pending = self._pending, []
        if not pending:
            return None
        try:
            _sync([tmp for tmp, _ in pending])
            for tmp, target in pending:
                os.replace(tmp, target)
            _sync([target.parent for _, target in pending])  # the renames too
        except OSError as exc:
            for tmp, _ in pending:
                tmp.unlink(missing_ok=True)
            return self._unwritable(exc)
        return None

    def _unwritable(self, exc: OSError) -> str:
        return f"vote cache not written to {self.directory}: {exc.strerror or exc}"

    def note(self) -> str | None:
        """One line for the run's notes when entries were refused, else None."""
        if not self.rejected:
            return None
        entries = "entry" if self.rejected == 1 else "entries"
        return (
            f"{self.rejected} vote cache {entries} failed authentication or validation (tampered, damaged, or "
            "written under another key) and were ignored: those votes were cast again"
        )


def _entry_payload(text: str, key: str, kind: str, mac: Callable[[str, Mapping[str, Any], str], str]) -> dict[str, Any]:
    """The authenticated `kind` payload of an entry for `key` (ValueError for anything else)."""
    entry = json.loads(text)
    if not isinstance(entry, dict) or set(entry) != {"format", "key", kind, "mac"}:
        raise ValueError(f"not a {kind} cache entry")
    payload = entry[kind]
    if entry["format"] != ENTRY_FORMAT or entry["key"] != key or not isinstance(payload, dict):
        raise ValueError("not an entry for this key")
    if not isinstance(entry["mac"], str) or not hmac.compare_digest(entry["mac"], mac(key, payload, kind)):
        raise ValueError("MAC mismatch")
    return payload


def _entry_vote(data: dict[str, Any], section: Section, voter: Voter) -> Vote:
    _check_types(data)
    return revalidate(Vote.from_dict(data), section, voter)


_SYNTHESIS_TYPES: dict[str, tuple[type, ...]] = {
    **{name: (str,) for name in ("model", "title", "explanation", "disagreement", "fix", "patch")},
    "findings": (list,),
    "usage": (dict,),
    "latency_s": (int, float),
    "error": (type(None),),  # only a synthesis without an error is stored
    "cached": (bool,),
}


def _entry_synthesis(data: dict[str, Any], result: SectionResult) -> Synthesis:
    _check_fields(data, _SYNTHESIS_TYPES)
    _check_usage(data["usage"])
    return revalidate_synthesis(Synthesis.from_dict(data), result)


_OPTIONAL_STR = (str, type(None))
_VOTE_TYPES: dict[str, tuple[type, ...]] = {
    "section_id": (str,),
    "voter_id": (str,),
    "model": (str,),
    "verdict": (str,),
    "summary": (str,),
    "stop_reason": _OPTIONAL_STR,
    "error": _OPTIONAL_STR,
    "latency_s": (int, float),
    "cached": (bool,),
    "findings": (list,),
    "usage": (dict,),
    "settings": (dict,),
    "confidence": (int, float),
    "answered_model": _OPTIONAL_STR,
    "error_kind": (type(None),),  # only SAFE and UNSAFE votes are stored
}
_SETTINGS_TYPES: dict[str, tuple[type, ...]] = {
    "temperature": (int, float, type(None)),
    "effort": _OPTIONAL_STR,
    "lens": _OPTIONAL_STR,
    "api_version": _OPTIONAL_STR,
    "notes": (list,),
    "strict": (bool, type(None)),
}


def _check_types(data: Mapping[str, Any]) -> None:
    """Every field of a stored vote has the type the reports expect (a float is not a string)."""
    _check_fields(data, _VOTE_TYPES)
    _check_fields(data["settings"], _SETTINGS_TYPES)
    _check_usage(data["usage"])
    if not all(isinstance(n, str) for n in data["settings"]["notes"]):
        raise TypeError("settings notes must be strings")


def _check_fields(where: Mapping[str, Any], fields: Mapping[str, tuple[type, ...]]) -> None:
    """Exactly these fields, each of its type (a bool is not a number), no float that is not finite."""
    if set(where) != set(fields):
        raise ValueError("unexpected fields")
    for name, types in fields.items():
        value = where[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise TypeError(f"{name} has the wrong type")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name} is not finite")


def _check_usage(usage: Mapping[str, Any]) -> None:
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in usage.values()):
        raise TypeError("usage must hold whole numbers")


def revalidate(vote: Vote, section: Section, voter: Voter) -> Vote:
    """A cached vote checked like a fresh verdict: same section and voter, strict fields, no contradiction."""
    if (vote.section_id, vote.voter_id, vote.model) != (section.id, voter.id, voter.model):
        raise VerdictError("the entry holds a vote for another section or voter")
    if vote.error is not None or vote.error_kind is not None:
        raise VerdictError("a SAFE or UNSAFE vote carries no error")
    parsed = parse_tool_input(
        {
            "verdict": vote.verdict,
            "confidence": vote.confidence,
            "summary": vote.summary,
            "findings": [f.to_dict() for f in vote.findings],
        },
        section,
    )
    return dataclasses.replace(
        vote, verdict=parsed.verdict, confidence=parsed.confidence, summary=parsed.summary, findings=parsed.findings
    )
