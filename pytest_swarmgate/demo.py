"""`python -m pytest_swarmgate.demo`: the gate on a bundled sample diff, against the bundled stub. No key, no network.

Starts the stub Anthropic server (pytest_swarmgate.testing) on a free port of 127.0.0.1, runs
`pytest --swarm-review --swarm-only` on `testing/sample.diff` in a scratch directory (so no
project's conftest, ini file or tests take part), and stops the server. The stub plays a panel
of five: four voters find the SQL injection in app/orders.py, the fifth dissents, and the
documentation change is SAFE. The exit status is pytest's: 1, because the gate blocks the diff.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib.resources import as_file, files
from pathlib import Path

from .testing import Reply, Script, StubServer

SQL_FINDING = {
    "line": 7,
    "severity": "high",
    "category": "CWE-89",
    "title": "SQL built by string concatenation",
    "rationale": "customer is pasted into the query text, so a crafted name rewrites the query",
}
# The variables of a user's shell or CI job that would change what the demo's pytest does.
DROPPED_ENV = ("PYTEST_ADDOPTS", "GITHUB_ACTIONS", "GITHUB_BASE_REF", "GITHUB_STEP_SUMMARY", "ANTHROPIC_AUTH_TOKEN")


# What an aggregator would write for the author from those votes (the stub plays the model).
DEMO_REVIEW = Reply.review(
    title="SQL injection in find_orders: customer is concatenated into the query (app/orders.py:7)",
    explanation=(
        "find_orders builds its SELECT by pasting customer into the SQL text, so a name such as "
        "' OR '1'='1 returns every customer's orders, and a crafted one can run other statements."
    ),
    disagreement="v5 found it SAFE without naming a reason; the other four agree on the same line and cause.",
    fix="Pass customer as a bound parameter and let sqlite3 quote it.",
    patch=(
        '-    query = "SELECT id, total FROM orders WHERE customer = \'" + customer + "\'"\n'
        "-    return db.execute(query).fetchall()\n"
        '+    query = "SELECT id, total FROM orders WHERE customer = ?"\n'
        "+    return db.execute(query, (customer,)).fetchall()\n"
    ),
)


def demo_script() -> Script:
    """Four of five voters call app/orders.py UNSAFE (the fifth dissents); everything else is SAFE."""
    return (
        Script(default=Reply.verdict("SAFE"))
        .on("app/orders.py", voter="v[1-4]", reply=Reply.verdict("UNSAFE", 0.93, findings=[SQL_FINDING]))
        .on_synthesis("app/orders.py", reply=DEMO_REVIEW)
    )


def pytest_command(diff: Path, scratch: Path, extra: Sequence[str] = ()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(scratch / "pytest.ini"),
        "--rootdir",
        str(scratch),
        "--noconftest",
        "-p",
        "no:cacheprovider",
        "--swarm-review",
        "--swarm-only",
        f"--swarm-diff={diff}",
        "--swarm-no-cache",
        *extra,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    extra = list(sys.argv[1:] if argv is None else argv)  # e.g. -v, -q, --color=yes
    with (
        tempfile.TemporaryDirectory(prefix="swarmgate-demo-") as tmp,
        as_file(files("pytest_swarmgate") / "testing" / "sample.diff") as diff,
        StubServer(demo_script(), port=0) as stub,
    ):
        scratch = Path(tmp)
        (scratch / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        env.update(ANTHROPIC_BASE_URL=stub.url, ANTHROPIC_API_KEY="stub-demo-key")
        print(f"swarmgate demo: the stub server on {stub.url} plays a panel of five (no key, no network)", flush=True)
        print(f"swarmgate demo: reviewing the bundled sample diff {diff}", flush=True)
        code = subprocess.call(pytest_command(Path(diff), scratch, extra), cwd=scratch, env=env)
    if code == 1:
        print("swarmgate demo: exit 1 is the expected result: the gate blocked the SQL injection in app/orders.py")
    else:
        print(f"swarmgate demo: pytest exited {code}; the demo expects 1 (the gate blocks the sample diff)")
    return code


if __name__ == "__main__":
    sys.exit(main())
