"""The stub learns to look: a rule that answers when a given text reaches the voter's prompt."""

from __future__ import annotations

from typing import Any

import anthropic
from conftest import StubProcess

from pytest_swarmgate.testing import Reply, Script, StubServer


def params(user: str, voter: str = "v1", system: str = "policy") -> dict[str, Any]:
    """Message params shaped like a voter's call."""
    return {
        "model": "claude-stub-1",
        "max_tokens": 256,
        "system": [{"type": "text", "text": system}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"section: a.py\npath: a.py\n{user}"},
                    {"type": "text", "text": f"voter: {voter}"},
                ],
            }
        ],
        "tools": [{"name": "submit_verdict", "description": "Submit", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "submit_verdict"},
    }


def verdict(url: str, **kwargs: Any) -> str:
    reply = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0).messages.create(**params(**kwargs))
    return str(reply.content[0].input["verdict"])


def test_a_prompt_rule_matches_the_text_a_voter_was_sent() -> None:
    script = Script().on_prompt("def helper(", voter="v2", reply=Reply.verdict("UNSAFE"))
    script.on_prompt("from the policy", reply=Reply.verdict("UNSAFE"))
    with StubServer(script) as stub:
        assert verdict(stub.url, user="## definition helper\ndef helper(x):", voter="v2") == "UNSAFE"
        assert verdict(stub.url, user="## definition helper\ndef helper(x):", voter="v1") == "SAFE"
        assert verdict(stub.url, user="nothing of it") == "SAFE"
        assert verdict(stub.url, user="x", system="text from the policy") == "UNSAFE"


def test_the_command_line_answers_unsafe_if_a_text_reached_the_prompt() -> None:
    with StubProcess("--unsafe-if", "SECRET-MARKER", "--unsafe-if", "other") as stub:
        assert verdict(stub.url, user="... SECRET-MARKER ...") == "UNSAFE"
        assert verdict(stub.url, user="only the diff") == "SAFE"
    assert stub.proc.returncode == 0, stub.stderr
