"""Each session registers one plugin per role: a controller that calls the API once, workers that only read."""

from __future__ import annotations

import types

import pytest
from conftest import SQL_DIFF, custom_voter_conftest, write_diff
from test_calibrate import small_corpus

from pytest_swarmgate.calibration_session import CalibrationWorker
from pytest_swarmgate.review_session import ReviewWorker

# Each process writes which plugin object it registered, named by its xdist worker id.
RECORD_ROLES = """
def pytest_sessionfinish(session):
    import pathlib
    roles = pathlib.Path(session.config.rootpath) / "roles"
    roles.mkdir(exist_ok=True)
    manager = session.config.pluginmanager
    plugins = [manager.get_plugin(name) for name in ("swarmgate-session", "swarmgate-calibration")]
    names = [type(p).__name__ for p in plugins if p is not None]
    # Not $PYTEST_XDIST_WORKER: an outer xdist run (this test suite's own) sets it for us too.
    worker = getattr(session.config, "workerinput", {}).get("workerid", "main")
    (roles / worker).write_text(",".join(names))
"""

# v1 and v2 fail: 3 SAFE and 2 ERROR votes leave K=4 of 5 out of reach both ways (INCONCLUSIVE).
TWO_ERRORS = """
if voter.id in ("v1", "v2"):
    raise RuntimeError("overloaded")
return Vote(section.id, voter.id, voter.model, "SAFE", confidence=0.9)
"""


def roles(pytester: pytest.Pytester) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((pytester.path / "roles").iterdir())}


@pytest.mark.parametrize("policy, exit_code", [("fail", pytest.ExitCode.TESTS_FAILED), ("warn", pytest.ExitCode.OK)])
def test_review_workers_read_the_controllers_gate(pytester: pytest.Pytester, policy: str, exit_code: int) -> None:
    pytest.importorskip("xdist")
    pytester.makeconftest(custom_voter_conftest(TWO_ERRORS, RECORD_ROLES))
    path = write_diff(pytester.path, SQL_DIFF)
    result = pytester.runpytest(
        "--swarm-review",
        f"--swarm-diff={path}",
        "--swarm-no-cache",
        f"--swarm-on-inconclusive={policy}",
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
    )
    assert result.ret == exit_code
    # The items ran on the workers, which judged them by the gate that came with the run.
    result.assert_outcomes(**({"failed": 2} if policy == "fail" else {"passed": 2, "warnings": 1}))
    assert roles(pytester) == {"gw0": "ReviewWorker", "gw1": "ReviewWorker", "main": "ReviewController"}


def test_without_xdist_the_one_process_is_the_controller(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(custom_voter_conftest(TWO_ERRORS, RECORD_ROLES))
    path = write_diff(pytester.path, SQL_DIFF)
    result = pytester.runpytest("--swarm-review", f"--swarm-diff={path}", "--swarm-no-cache", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert roles(pytester) == {"main": "ReviewController"}


def test_calibration_workers_are_workers(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makeconftest(custom_voter_conftest('return Vote(section.id, voter.id, voter.model, "SAFE")', RECORD_ROLES))
    corpus = small_corpus(pytester.path / "corpus")
    result = pytester.runpytest(f"--swarm-calibrate={corpus}", "--swarm-no-cache", "-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=2, failed=2)  # an always-SAFE panel misses both UNSAFE fixtures
    assert roles(pytester) == {"gw0": "CalibrationWorker", "gw1": "CalibrationWorker", "main": "CalibrationController"}


@pytest.mark.parametrize("worker", [ReviewWorker, CalibrationWorker])
def test_a_worker_without_the_controllers_payload_refuses_to_run(worker: type) -> None:
    config = types.SimpleNamespace(workerinput={"workerid": "gw0"})
    with pytest.raises(pytest.UsageError, match=r"swarmgate: this xdist worker received no swarmgate.* payload"):
        worker(config)
