"""The pure parts of issue 9: the vote cache's MAC and validation, anchoring, the redactor, the estimate."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest

from pytest_swarmgate.core.budget import CHARS_PER_TOKEN, estimate_input_tokens
from pytest_swarmgate.core.cache import VoteCache, cache_secret
from pytest_swarmgate.core.redact import REDACTED, Redactor, credential_problem
from pytest_swarmgate.core.verdict import VerdictError, parse_tool_input
from pytest_swarmgate.model import Finding, Section, Vote, Voter

ODD_KEY = "sk-ant+test/KEY=0000-SECRET"
VALID = {"verdict": "SAFE", "confidence": 0.9, "summary": "fine", "findings": []}


SECTION = Section("app/a.py", "app/a.py", None, "modified", "+x = 1\n")
VOTER = Voter("v1", "m")


def good_vote(**changes: Any) -> Vote:
    fields: dict[str, Any] = {"confidence": 0.9, "summary": "fine", "stop_reason": "tool_use"}
    fields.update(changes)
    return Vote(SECTION.id, VOTER.id, VOTER.model, "SAFE", **fields)


def test_an_entry_with_a_valid_mac_is_still_validated_like_a_fresh_vote(tmp_path) -> None:
    """Only the key holder can write a valid MAC; what it wrote is still checked field by field."""
    writer = VoteCache(tmp_path, b"k" * 32)
    assert writer.put("key1", good_vote(), SECTION, VOTER) is None
    path = tmp_path / "ke" / "key1.json"
    assert not path.exists(), "an entry lands when the run's writes are made durable, not before"
    assert writer.flush() is None and path.exists()
    assert list(tmp_path.rglob("*.tmp")) == []

    class Fresh(VoteCache):
        """A new run for each read: one run reads an entry once and keeps the answer."""

        def get(self, key: str, section: Section, voter: Voter) -> Vote | None:
            self._known.clear()
            return super().get(key, section, voter)

    cache = Fresh(tmp_path, b"k" * 32)
    assert cache.get("key1", SECTION, VOTER) == good_vote()
    # Served for another section or voter: refused.
    assert cache.get("key1", Section("b.py", "b.py", None, "added", "+y\n"), VOTER) is None
    assert cache.get("key1", SECTION, Voter("v2", "m")) is None
    # Moved to another key: the key is inside the MAC.
    (tmp_path / "ot").mkdir()
    (tmp_path / "ot" / "other.json").write_text(path.read_text())
    assert cache.get("other", SECTION, VOTER) is None
    # Entries signed by the key holder but holding what a fresh verdict may not hold.
    entry = json.loads(path.read_text())
    bad_votes = [
        {**entry["vote"], "confidence": "high"},
        {**entry["vote"], "usage": {"input_tokens": "many"}},
        {**entry["vote"], "settings": {**entry["vote"]["settings"], "temperature": "hot"}},
        {**entry["vote"], "findings": [{**Finding("app/a.py", 1, "critical", "CWE-78", "t", "r").to_dict()}]},
        {**entry["vote"], "extra": 1},
    ]
    for bad in bad_votes:
        path.write_text(json.dumps({**entry, "vote": bad, "mac": cache._mac("key1", bad, "vote")}))
        assert cache.get("key1", SECTION, VOTER) is None, bad
    assert cache.rejected == 3 + len(bad_votes)
    assert cache.note() is not None and "8 vote cache entries" in cache.note()  # type: ignore[operator]
    # A giant planted file is refused unread.
    path.write_text(" " * 4_000_001)
    assert cache.get("key1", SECTION, VOTER) is None
    # A different job secret: every entry is a miss.
    path.write_text(json.dumps(entry))
    assert VoteCache(tmp_path, b"another secret").get("key1", SECTION, VOTER) is None


def test_a_run_reads_each_entry_once(tmp_path) -> None:
    writer = VoteCache(tmp_path, b"k" * 32)
    writer.put("key1", good_vote(), SECTION, VOTER)
    writer.flush()
    cache = VoteCache(tmp_path, b"k" * 32)
    assert [cache.get(k, SECTION, VOTER) for k in ("key1", "key1", "nokey", "nokey")] == [
        good_vote(),
        good_vote(),
        None,
        None,
    ]
    assert cache.reads == 2


def test_the_mac_key_comes_from_the_job_and_its_own_secret_wins() -> None:
    assert cache_secret({}) is None
    assert cache_secret({"ANTHROPIC_API_KEY": "  "}) is None
    from_key = cache_secret({"ANTHROPIC_API_KEY": "sk-1"})
    assert from_key is not None and from_key[1] == "ANTHROPIC_API_KEY"
    assert from_key[0] != b"sk-1" and len(from_key[0]) == 32
    own = cache_secret({"ANTHROPIC_API_KEY": "sk-1", "SWARMGATE_CACHE_KEY": "job secret"})
    assert own is not None and own[1] == "SWARMGATE_CACHE_KEY" and own[0] != from_key[0]
    token = cache_secret({"ANTHROPIC_AUTH_TOKEN": "tok"})
    assert token is not None and token[1] == "ANTHROPIC_AUTH_TOKEN"


def test_anchoring_is_pure_and_keeps_paths_of_the_section() -> None:
    renamed = Section("new.py", "new.py", "old.py", "renamed", "+x\n")
    finding = {"path": "old.py", "line": 3, "severity": "high", "category": "c", "title": "t", "rationale": "r"}
    unsafe = {"verdict": "UNSAFE", "confidence": 0.5, "summary": "s"}
    assert parse_tool_input({**unsafe, "findings": [finding]}, renamed).findings[0].path == "old.py"
    moved = parse_tool_input({**unsafe, "findings": [{**finding, "path": "line 3 of the\nfile"}]}, renamed).findings[0]
    assert moved.path == "new.py" and moved.rationale == "r [reported at line 3 of the\\nfile]"
    with pytest.raises(VerdictError, match="lacks required field line"):
        parse_tool_input(
            {**VALID, "findings": [{k: v for k, v in finding.items() if k != "line"} | {"severity": "info"}]}
        )


def test_the_redactor_knows_every_form_of_a_secret() -> None:
    redact = Redactor([ODD_KEY + "\n", None, ""])
    for form in (
        ODD_KEY,
        ODD_KEY + "\n",
        repr(ODD_KEY + "\n"),
        json.dumps(ODD_KEY + "\n"),
        quote(ODD_KEY + "\n", safe=""),
        quote(ODD_KEY, safe=""),
        f"b{(ODD_KEY + chr(10)).encode()!r}",
    ):
        assert "KEY=0000" not in redact(f"before {form} after") and "KEY%3D0000" not in redact(f"before {form} after")
        assert redact(f"before {form} after").startswith("before ") and REDACTED in redact(f"before {form} after")
    assert redact("nothing secret here") == "nothing secret here"
    assert credential_problem({"ANTHROPIC_API_KEY": "sk\n"}) is not None
    assert "sk" not in (credential_problem({"ANTHROPIC_AUTH_TOKEN": "sk-zzz "}) or "sk").replace("ANTHROPIC_", "")
    assert credential_problem({"ANTHROPIC_API_KEY": "sk-ok"}) is None


def test_the_estimate_is_conservative() -> None:
    sections = [Section(f"f{i}.py", f"f{i}.py", None, "added", "+" + "x" * 3000) for i in range(4)]
    panel = [Voter(f"v{i}", "m", lens="security") for i in range(5)]
    estimate = estimate_input_tokens(sections, panel)
    assert estimate >= 4 * 5 * 3000 // CHARS_PER_TOKEN
    assert estimate_input_tokens(sections, panel[:1]) * 5 == estimate
    assert estimate_input_tokens([], panel) == 0
    # Prewarming adds one call per shared model on sections long enough to be prewarmed.
    prewarmed = estimate_input_tokens(sections, panel, prewarm_min_chars=0)
    assert estimate < prewarmed < estimate * 6 / 5
    assert estimate_input_tokens(sections, panel, prewarm_min_chars=4000) == estimate
    mixed = [Voter("a", "m1"), Voter("b", "m2")]
    assert estimate_input_tokens(sections, mixed, prewarm_min_chars=0) == estimate_input_tokens(sections, mixed)


@pytest.mark.parametrize("text", ["\x1b]0;title\x07", "\x1b[2J", "\x9b31m", "a\u202eb", "\x00\x08\x7f"])
def test_every_channel_shows_control_characters_escaped(text) -> None:
    from pytest_swarmgate.output import escape

    for escaped in (
        escape.terminal(text),
        escape.workflow_data(text),
        escape.workflow_property(text),
        escape.markdown(text),
        escape.sarif_text(text),
        escape.junit_text(text),
        escape.collapsed(text),
    ):
        assert escaped.isprintable(), (text, escaped)


def test_workflow_data_keeps_the_toolkits_escaping() -> None:
    from pytest_swarmgate.output import escape

    assert escape.workflow_data("50%\r\n::x\x1b") == "50%25%0D%0A::x\\x1b"
    assert escape.workflow_property("a:b,c\n") == "a%3Ab%2Cc%0A"
    assert escape.sarif_text("line 1\nline 2 [x](1)") == "line 1\nline 2 \\[x\\](1)"


def test_shadowing_counts_only_changed_files_inside_the_tree(tmp_path) -> None:
    from pytest_swarmgate.core.origins import shadowing

    tree = tmp_path / "repo" / "sub"
    found = {
        "anthropic": (tree / "anthropic.py",),
        "httpx": (tree / "httpx" / "__init__.py", tree / "httpx"),
        "idna": (tmp_path / "site" / "idna" / "__init__.py",),  # outside the tree: the installed one
    }
    assert shadowing(found, [tree], ["sub/anthropic.py"]) == [("anthropic", "sub/anthropic.py")]
    assert shadowing(found, [tree], ["sub/httpx/_client.py"]) == [("httpx", "sub/httpx/_client.py")]
    assert shadowing(found, [tree], ["idna/__init__.py", "lib/anthropic.py", "anthropic.py.orig"]) == []
    assert shadowing(found, [tree], ["docs/httpx.md"]) == []


def test_a_password_in_a_base_or_proxy_url_is_a_secret() -> None:
    from pytest_swarmgate.core.redact import Redactor

    redact = Redactor.from_env({"ANTHROPIC_BASE_URL": "http://u:p%40ss-w0rd@h:1/v1", "HTTPS_PROXY": "http://x@h"})
    assert redact("GET http://u:p%40ss-w0rd@h:1/v1 with p@ss-w0rd") == "GET http://[redacted]@h:1/v1 with [redacted]"
    assert redact("http://x@h") == "http://x@h", "a user name alone is no secret"
