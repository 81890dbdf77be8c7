"""What a session that calls the API once, on the controller, shares with pytest-xdist workers.

The review gate and the calibration run both make every call in the controller's
`pytest_sessionstart` and send the result to each worker through `workerinput`, so every
worker collects the same items in the same order and none of them calls the API again.
These are the steps both sessions take. Standard library and pytest only: `plugin.py` may
import this module at its top.
"""

from __future__ import annotations

import json
from typing import Any

import pytest


def from_controller(config: pytest.Config, key: str) -> Any | None:
    """The payload the controller sent this worker under `key`; None on the controller or without xdist."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or key not in workerinput:
        return None
    return json.loads(workerinput[key])


def to_worker(node: Any, key: str, payload: Any) -> None:
    """Send a JSON-safe payload to one xdist worker (call from `pytest_configure_node`)."""
    node.workerinput[key] = json.dumps(payload)


def prepend_collected(session: pytest.Session, collector: pytest.Collector, items: list[pytest.Item]) -> None:
    """Collect `collector` and put its items first, reported as collected like any other items.

    Call from a `tryfirst` `pytest_collection_modifyitems`: the items must exist before
    -m / -k deselection runs, and "collected N items" and other plugins must count them.
    """
    collected = list(collector.collect())
    session.ihook.pytest_collectreport(report=pytest.CollectReport(collector.nodeid, "passed", None, collected))
    for item in collected:
        session.ihook.pytest_itemcollected(item=item)
    items[:0] = collected
