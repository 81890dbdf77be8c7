"""The steps both sessions share: a controller plugin that calls the API once, a worker plugin that does not.

The review gate and the calibration run each register one of two plugins by role (plugin.py
picks, as pytest-xdist does with dsession/remote): the controller (ControllerRun) makes every
call once and sends the result to each xdist worker through `workerinput`; a worker plugin
reads it, so every worker collects the same items in the same order and none calls the API.
Standard library and pytest only; imported only when a session is enabled.
"""

from __future__ import annotations

import json
from typing import Any

import pytest


def from_controller(config: pytest.Config, key: str) -> Any:
    """The payload the controller sent this worker under `key`; a usage error when there is none.

    Fail closed: a worker without the controller's result must not review on its own.
    """
    workerinput = getattr(config, "workerinput", {})
    if key not in workerinput:
        raise pytest.UsageError(f"swarmgate: this xdist worker received no {key} payload from the controller")
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
    new = [node for node in collected if isinstance(node, pytest.Item)]  # the collectors here yield items only
    for item in new:
        session.ihook.pytest_itemcollected(item=item)
    items[:0] = new


def check_rootdir(config: pytest.Config, flag: str) -> None:
    """`FLAG PATH` (with a space) makes pytest take PATH as a test path while it settles the
    rootdir, before it knows our options; if that moved the rootdir, say so instead of
    silently running without the project's ini file."""
    args = list(config.invocation_params.args)
    spaced = [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag and not args[i + 1].startswith("-")]
    if not spaced:
        return
    from _pytest.config.findpaths import (
        determine_setup,  # pytest has no public API for this
    )

    try:
        expected = determine_setup(
            inifile=config.option.inifilename,
            override_ini=config.option.override_ini,
            args=list(config.option.file_or_dir or []),
            rootdir_cmd_arg=config.option.rootdir or None,
            invocation_dir=config.invocation_params.dir,
        )
    except TypeError:
        return  # another pytest version's signature: nothing reliable to compare with
    if (expected[0], expected[1]) != (config.rootpath, config.inipath):
        raise pytest.UsageError(
            f"swarmgate: pytest took the path {spaced[0]} for a test path and moved the rootdir to "
            f"{config.rootpath} ({f'ini file {config.inipath}' if config.inipath else 'no ini file'}); "
            f"write {flag}={spaced[0]} instead"
        )


class SessionItems:
    """Base of a session plugin, controller or worker: its items come first, as collected items."""

    def collector(self, session: pytest.Session) -> pytest.Collector:
        """The collector of this session's items (`<name>::...` node ids)."""
        raise NotImplementedError

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        # tryfirst: our items must exist before -m / -k deselection runs.
        prepend_collected(session, self.collector(session), items)


def forget_passed_phases(config: pytest.Config, collector_name: str) -> None:
    """Drop the passed setup and teardown reports of this session's items from the terminal's stats.

    For each failed item pytest's failure summary scans every such report of the run for the
    item's teardown sections: with two per review item, a diff of 4,000 UNSAFE sections made the
    summary quadratic (34 of a 41 s cached rerun). The items capture nothing, so those reports have
    nothing to show; the counts, every other report and every other plugin's view are untouched.
    """
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    stats = getattr(reporter, "stats", None)
    if not isinstance(stats, dict) or not stats.get(""):
        return
    prefix = f"{collector_name}::"
    stats[""] = [r for r in stats[""] if not (r.passed and str(getattr(r, "nodeid", "")).startswith(prefix))]


def guard_logs(config: pytest.Config) -> None:
    """From here to the end of the session the SDK's and httpx's log records are redacted and escaped."""
    import os

    from .core.redact import Redactor
    from .output.logs import LogGuard

    config.add_cleanup(LogGuard(Redactor.from_env(os.environ)).install().remove)


class ControllerRun(SessionItems):
    """Base of a controller plugin (the xdist controller, or a session without xdist): calls happen once, here.

    Under xdist that must be in `pytest_sessionstart`, before xdist starts its workers (its
    own sessionstart is trylast), so the workers receive the result. Without xdist it waits
    for the test loop, so pytest's header and the collection come first. Never for --collect-only.
    Workers register a different plugin (plugin.py picks by role) and never get here.
    """

    _ran = False

    def run_once(self) -> None:
        raise NotImplementedError

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if session.config.pluginmanager.has_plugin("dsession"):
            self._once(session.config)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        # A wrapper: another plugin's runtestloop that returns first cannot skip this.
        # pytest stops right after this on collection errors: do not pay for a review first.
        if not (session.testsfailed and not session.config.option.continue_on_collection_errors):
            self._once(session.config)
        return (yield)

    def _once(self, config: pytest.Config) -> None:
        if self._ran or config.option.collectonly:
            return
        self._ran = True
        self.run_once()


class ReviewOnly:
    """`--swarm-only`: the session collects the review's (or calibration's) items and nothing else.

    No path is collected at all, so none of the project's test modules is imported and none of
    its dependencies need be installed. pytest still loads the conftest.py files of the rootdir
    and of the test paths before any plugin acts; `--noconftest` keeps those out too.
    """

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> bool | None:
        if session.config.pluginmanager.has_plugin("dsession"):
            return None  # the xdist controller collects nothing itself; each worker comes here
        # No arguments: no directory is entered and no file collected; the review's items are
        # added in pytest_collection_modifyitems, as in a normal run.
        session.perform_collect(args=[])
        return True
