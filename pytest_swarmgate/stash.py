"""What the plugins of one session share: the stash keys, and the one rule that sets the exit status.

Imported by plugin.py on every pytest start: pytest only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .core.cache import VoteCache
    from .core.calibration import FixtureRun
    from .core.control import Deadline
    from .core.model import RunResult

stdin_key = pytest.StashKey[bytes]()
# Set by the session plugin when it reaches its end of session; checked in the entry plugin,
# so that a session plugin blocked or removed by the pull request cannot pass quietly.
gate_finished_key = pytest.StashKey[bool]()
gate_missing_key = pytest.StashKey[str]()
# The results the current test's swarm_review fixture returned, for pytest_assertrepr_compare.
reviews_key = pytest.StashKey[list[Any]]()
# The review's result, as the controller made it or a worker received it (None: nothing planned).
run_key: pytest.StashKey[RunResult | None] = pytest.StashKey()
# The session's vote cache and why it is off, opened once: each entry is read once per run.
cache_key: pytest.StashKey[tuple[VoteCache | None, str | None]] = pytest.StashKey()
# --swarm-deadline, one per session: it starts at the preflight's call or the review's first.
deadline_key: pytest.StashKey[Deadline] = pytest.StashKey()
# The calibration's fixture runs by fixture id, with their votes once the panel has voted.
runs_key: pytest.StashKey[dict[str, FixtureRun]] = pytest.StashKey()

# What pytest says when nothing went wrong on its side: the gate may only make these worse.
_OVERRULED = (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED, pytest.ExitCode.TESTS_FAILED)


def fail_session(session: pytest.Session, code: int) -> None:
    """Make the session exit with `code` unless pytest already stopped for a reason of its own (2-5)."""
    if session.exitstatus in _OVERRULED:
        session.exitstatus = code
