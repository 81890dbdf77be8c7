"""The context through the real path: git repositories made in the test, `pytest --swarm-review`, the
SDK over HTTP to the stub, whose prompt rule proves what reached each voter and what never did.

Every payload is a marker string in a file of the test's own repository; nothing in it is run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import validate_report

from pytest_swarmgate.testing import Reply, Script, StubServer

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
pytestmark = needs_git


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, env=env, check=True, capture_output=True
    ).stdout.decode()


def commit(repo: Path, files: Mapping[str, str | None], message: str) -> None:
    for path, text in files.items():
        target = repo / path
        if text is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def branch(repo: Path, base: Mapping[str, str], change: Mapping[str, str | None]) -> None:
    """`main` holds `base`; `feature` (checked out) applies `change`."""
    git(repo, "init", "-q", "-b", "main")
    commit(repo, base, "base")
    git(repo, "checkout", "-qb", "feature")
    commit(repo, change, "feature")


def review(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("--swarm-review", "--swarm-only", "-p", "no:cacheprovider", *args)


def report(pytester: pytest.Pytester) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((pytester.path / "swarm.json").read_text())
    validate_report(data)
    return data


def prompts(stub: StubServer) -> list[str]:
    return [json.dumps(r.body) for r in stub.requests if r.is_call]


# A handler whose flaw shows only beside its decorator, 40 lines above the hunk.
FILLER = "".join(f"    step_{i} = {i}\n" for i in range(40))
VIEWS = (
    "import sqlite3\n\n\n"
    "@route('/orders', auth=None)  # PUBLIC-ENDPOINT-MARKER\n"
    "def orders(db, customer):\n"
    f"{FILLER}"
    "    query = 'SELECT id FROM orders WHERE customer = ?'\n"
    "    return db.execute(query, (customer,)).fetchall()\n"
)
VIEWS_NEW = VIEWS.replace(
    "    query = 'SELECT id FROM orders WHERE customer = ?'\n    return db.execute(query, (customer,)).fetchall()\n",
    "    query = 'SELECT id FROM orders WHERE customer = ' + customer\n    return db.execute(query).fetchall()\n",
)


def test_the_enclosing_definition_reaches_every_voter(pytester: pytest.Pytester, serve) -> None:
    stub = serve(Script().on_prompt("PUBLIC-ENDPOINT-MARKER", reply=Reply.verdict("UNSAFE")))
    branch(pytester.path, {"app/views.py": VIEWS}, {"app/views.py": VIEWS_NEW})
    result = review(pytester, "--swarm-base=main", "--swarm-context=scope", "--swarm-json=swarm.json", "-v")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "app/views.py: UNSAFE 5/5 (K=4)*",
            "  context: 2 parts, * chars",
            "    scope app/views.py new 4-47 (git HEAD) * chars",
            "    scope app/views.py old 4-5 (git *) * chars",
        ]
    )
    voters = {r.voter for r in stub.calls() if "PUBLIC-ENDPOINT-MARKER" in json.dumps(r.body)}
    assert voters == {"v1", "v2", "v3", "v4", "v5"}
    (section,) = [r["section"] for r in report(pytester)["run"]["results"]]
    part, old = section["context"]["parts"]
    assert old["side"] == "old" and old["source"].startswith("git ")
    assert {k: part[k] for k in ("kind", "path", "side", "start", "end")} == {
        "kind": "scope",
        "path": "app/views.py",
        "side": "new",
        "start": 4,
        "end": 47,
    }
    assert part["source"] == "git HEAD" and part["chars"] + old["chars"] + 1 == len(section["context"]["text"])


def test_with_the_context_off_the_voters_see_the_hunk_alone(pytester: pytest.Pytester, serve) -> None:
    stub = serve(Script().on_prompt("PUBLIC-ENDPOINT-MARKER", reply=Reply.verdict("UNSAFE")))
    branch(pytester.path, {"app/views.py": VIEWS}, {"app/views.py": VIEWS_NEW})
    result = review(pytester, "--swarm-base=main", "--swarm-context=off")
    assert result.ret == 0
    assert not any("PUBLIC-ENDPOINT-MARKER" in p for p in prompts(stub))
    assert not any(" context\\n" in p for p in prompts(stub))


def test_a_rename_shows_what_it_makes_importable(pytester: pytest.Pytester, serve) -> None:
    """`evil.txt -> plugin.py` with no line changed: the panel judged it blind before."""
    payload = "import os\nos.system('touch ' + os.environ['TMPDIR'] + '/marker')  # RENAMED-PAYLOAD\n"
    stub = serve(Script().on_prompt("RENAMED-PAYLOAD", reply=Reply.verdict("UNSAFE")))
    git(pytester.path, "init", "-q", "-b", "main")
    commit(pytester.path, {"notes/evil.txt": payload}, "base")
    git(pytester.path, "checkout", "-qb", "feature")
    (pytester.path / "app").mkdir()
    git(pytester.path, "mv", "notes/evil.txt", "app/plugin.py")
    git(pytester.path, "commit", "-qm", "rename")
    result = review(pytester, "--swarm-base=main")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["app/plugin.py: UNSAFE 5/5 (K=4)*"])
    assert len([p for p in prompts(stub) if "RENAMED-PAYLOAD" in p]) >= 5


def test_the_base_checkout_gives_the_new_file_with_the_hunks_applied(
    pytester: pytest.Pytester, serve, tmp_path: Path
) -> None:
    """The CI recipe: the checkout is the base, the PR only a patch; the context is made in memory."""
    stub = serve(Script().on_prompt("PUBLIC-ENDPOINT-MARKER", reply=Reply.verdict("UNSAFE")))
    branch(pytester.path, {"app/views.py": VIEWS}, {"app/views.py": VIEWS_NEW})
    patch = git(pytester.path, "diff", "main", "feature")
    git(pytester.path, "checkout", "-q", "main")
    (tmp_path / "pr.patch").write_text(patch)
    result = review(pytester, f"--swarm-diff={tmp_path / 'pr.patch'}", "--rootdir", ".", "-v")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["    file app/views.py new 1-47 (checkout HEAD + hunks) * chars"])
    sent = [p for p in prompts(stub) if "PUBLIC-ENDPOINT-MARKER" in p]
    assert len(sent) >= 5 and all("SELECT id FROM orders WHERE customer = ' + customer" in p for p in sent)


def test_nothing_outside_the_repository_or_the_commit_ever_reaches_a_voter(
    pytester: pytest.Pytester, serve, tmp_path: Path
) -> None:
    """A patch that names a link out of the repository, `.git/config` and an untracked file, each with a
    hunk that would apply to any file: the marker in each must never reach a voter."""
    stub = serve(Script().on_prompt("OUTSIDE-MARKER", reply=Reply.verdict("UNSAFE")))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("token = 'OUTSIDE-MARKER-1'\n")
    repo = pytester.path
    git(repo, "init", "-q", "-b", "main")
    (repo / "lib").symlink_to(outside)
    (repo / "link.py").symlink_to(outside / "secret.py")
    commit(repo, {"app.py": "x = 1\n"}, "base")
    (repo / ".git" / "config").write_text((repo / ".git" / "config").read_text() + "# OUTSIDE-MARKER-2\n")
    (repo / "gha-creds.json").write_text('{"private_key": "OUTSIDE-MARKER-3"}\n')
    patch = "".join(
        f"diff --git a/{p} b/{p}\n--- a/{p}\n+++ b/{p}\n@@ -0,0 +1 @@\n+harmless = 1\n"
        for p in ("lib/secret.py", "link.py", ".git/config", "gha-creds.json")
    )
    (tmp_path / "pr.patch").write_text(patch)
    result = review(pytester, f"--swarm-diff={tmp_path / 'pr.patch'}", "--rootdir", ".", "-v")
    assert "OUTSIDE-MARKER" not in "".join(prompts(stub))
    assert len(prompts(stub)) >= 20
    assert result.ret == 0, result.stdout.str()


def test_a_bare_patch_gets_one_note_for_the_run(pytester: pytest.Pytester, stub) -> None:
    patch = "".join(
        f"diff --git a/{p} b/{p}\n--- a/{p}\n+++ b/{p}\n@@ -1 +1 @@\n-x = 1\n+x = 2\n" for p in ("a.py", "b.py")
    )
    (pytester.path / "pr.patch").write_text(patch)
    result = review(pytester, "--swarm-diff=pr.patch", "-v")
    assert result.ret == 0
    text = result.stdout.str()
    assert text.count("no git checkout to read files from (a bare patch)") == 1
    result.stdout.fnmatch_lines(["    map  (diff) * chars"])


def test_a_file_that_does_not_parse_is_reviewed_with_diff_only_context(pytester: pytest.Pytester, serve) -> None:
    stub = serve(Script().on_prompt("## scope", reply=Reply.verdict("UNSAFE")))
    broken = VIEWS_NEW.replace("def orders(db, customer):", "def orders(db, customer:")
    branch(pytester.path, {"app/views.py": VIEWS, "app/other.py": "y = 1\n"}, {"app/views.py": broken})
    result = review(pytester, "--swarm-base=main", "--swarm-json=swarm.json", "-v")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["    note: app/views.py (new, git HEAD) does not parse as Python (line 5: *"])
    (section,) = [r["section"] for r in report(pytester)["run"]["results"]]
    assert section["context"]["parts"] == [] and len(section["context"]["notes"]) == 1
    assert stub.calls()


def test_a_vote_cast_with_other_context_is_never_served(pytester: pytest.Pytester, stub) -> None:
    branch(pytester.path, {"app/views.py": VIEWS}, {"app/views.py": VIEWS_NEW})
    first = review(pytester, "--swarm-base=main", "--swarm-context=off")
    assert first.ret == 0 and len(stub.calls()) >= 5
    stub.clear_log()
    second = review(pytester, "--swarm-base=main", "--swarm-context=scope")
    assert second.ret == 0 and len([c for c in stub.calls() if c.voter]) == 5, "not served from the cache"
    stub.clear_log()
    third = review(pytester, "--swarm-base=main", "--swarm-context=scope")
    assert third.ret == 0 and stub.calls() == []
    third.stdout.fnmatch_lines(["*(5 votes from cache)*"])


def test_repo_mode_gives_the_helper_the_changed_line_calls(pytester: pytest.Pytester, serve) -> None:
    stub = serve(Script().on_prompt("HELPER-BODY-MARKER", reply=Reply.verdict("UNSAFE")))
    helper = "def clean(value):\n    return value  # HELPER-BODY-MARKER: no escaping at all\n"
    app = "from app.util import clean\n\n\ndef find(db, c):\n    return db.execute('SELECT 1')\n"
    app_new = app.replace("db.execute('SELECT 1')", "db.execute('SELECT ' + clean(c))")
    branch(pytester.path, {"app/util.py": helper, "app/views.py": app}, {"app/views.py": app_new})
    scoped = review(pytester, "--swarm-base=main", "--swarm-context=scope")
    assert scoped.ret == 0 and not any("HELPER-BODY-MARKER" in p for p in prompts(stub))
    result = review(pytester, "--swarm-base=main", "--swarm-context=repo", "-v", "--swarm-no-cache")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["    definition clean app/util.py new 1-2 (git HEAD) * chars"])
