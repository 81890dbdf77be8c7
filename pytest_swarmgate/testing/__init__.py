"""Test helpers shipped with pytest-swarmgate: an Anthropic-compatible stub server.

    from pytest_swarmgate.testing import Reply, Script, StubServer

    script = Script().on("app/*.py", voter="v2", reply=Reply.verdict("UNSAFE"))
    with StubServer(script, latency=0.1) as stub:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", stub.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "stub")
        ...                                   # the real SDK, over real HTTP
        assert len(stub.calls(voter="v2")) == 1

Or from a shell: `python -m pytest_swarmgate.testing --port 8765 --unsafe 'app/*.py'`.
Standard library only; see `pytest_swarmgate.testing.script` for the JSON script format.
"""

from __future__ import annotations

from .checks import CURRENT_API_VERSION
from .ratelimit import RateLimit
from .replies import CallContext, Rendered, Reply, first_added_line
from .script import Script, ScriptError, reply_from_json
from .server import LoggedRequest, StubServer

__all__ = [
    "CURRENT_API_VERSION",
    "CallContext",
    "LoggedRequest",
    "RateLimit",
    "Rendered",
    "Reply",
    "Script",
    "ScriptError",
    "StubServer",
    "first_added_line",
    "reply_from_json",
]
