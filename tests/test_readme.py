"""The README runs as written: its first command in a fresh virtual environment made from a clean
copy of the tree, and its Python example against the stub server."""

from __future__ import annotations

import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
from conftest import README_DIFF, SQL_DIFF, unsafe_finding

from pytest_swarmgate.testing import Reply

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def first_commands() -> list[str]:
    """The indented command lines at the very top of the README, before any prose."""
    block = README.split("\n\n")[1]
    return [line[4:] for line in block.splitlines() if line.startswith("    ")]


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README, flags=re.S | re.M)


def test_the_readme_starts_with_the_demo_and_the_test_command() -> None:
    demo, tests = first_commands()
    assert demo.startswith("pip install -e . && python -m pytest_swarmgate.demo ")
    # .ci/run runs this test command; change both together.
    assert tests.split("  #")[0].strip() == "pip install -e '.[test,plot]' && python -m pytest -n 2"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install --quiet -e '.[test,plot]'" in ci and "\npython -m pytest -n 2\n" in ci


def clean_copy(target: Path) -> Path:
    """The tracked files of this checkout (what a fresh clone holds), links kept as links."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: no way to tell a fresh clone's files")
    for name in filter(None, listed.stdout.decode().split("\0")):
        source, dest = ROOT / name, target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            dest.symlink_to(os.readlink(source))
        elif source.exists():  # a tracked file deleted in the work tree is not in the clone either
            shutil.copy2(source, dest)
    return target


def fresh_venv(target: Path) -> Path:
    """A new virtual environment whose only link to this one is a .pth line naming our site-packages.

    So the project's dependencies count as installed and `pip install -e .` installs the project
    itself (editable, with its entry point and package data) from the copy, offline but for the
    build backend. That the dependencies install from the package index into an empty
    environment is shown by .ci/run, which builds its own environment from nothing.
    A plain path line, not `site.addsitedir`: .pth files there (an editable install of the
    project in this environment) must not be read, or the copy would not be the one tested.
    """
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True, capture_output=True)
    purelib = Path(
        subprocess.run(
            [str(target / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    ours = [p for p in dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"]]) if Path(p).is_dir()]
    (purelib / "_swarmgate_test_parent.pth").write_text("".join(p + "\n" for p in ours))
    return target


def test_the_first_command_blocks_the_sample_diff_in_a_fresh_venv(tmp_path) -> None:
    tree = clean_copy(tmp_path / "clone")
    venv = fresh_venv(tmp_path / "venv")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "PYTHON", "PIP_REQUIRE", "VIRTUAL_ENV", "PYTEST_"))
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        HOME=str(tmp_path),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    command = first_commands()[0]
    done = subprocess.run(["bash", "-c", command], cwd=tree, env=env, capture_output=True, text=True, timeout=900)
    out = done.stdout
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"reviewing the bundled sample diff {tree}/pytest_swarmgate/testing/sample.diff" in out  # the copy's
    for line in [
        r"app/orders.py: UNSAFE 4/5 \(K=4\) - app/orders.py:7 SQL built by string concatenation",
        r"  votes: v1 UNSAFE 0\.93, .*, v5 SAFE 0\.90$",
        r"  Review for the author, synthesized from the votes by claude-sonnet-5-5 \(the outcome is the panel's\):",
        r"    SQL injection in find_orders: customer is concatenated into the query \(app/orders.py:7\)",
        r"    HIGH CWE-89 app/orders.py:7: SQL built by string concatenation",
        r"    fix: Pass customer as a bound parameter",
        r"^SAFE: 1 section: docs/orders.md$",
        r"gate: UNSAFE - 1 UNSAFE, 0 INCONCLUSIVE, 1 SAFE of 2 sections \(K=4 of N=5\)",
        r"swarmgate demo: exit 1 is the expected result",
    ]:
        assert re.search(line, out, flags=re.M), (line, out)


def test_the_python_example_runs_as_written_from_another_directory(pytester, stub, script, monkeypatch) -> None:
    (example,) = python_blocks()
    script.on("app/reports.py", reply=Reply.verdict("UNSAFE", findings=[unsafe_finding("app/reports.py", 30)]))
    tests = pytester.mkdir("tests")
    (tests / "test_readme_example.py").write_text(example)
    (tests / "diffs").mkdir()
    # The package's corpus: in the repository a link to fixtures/, in the sdist the files themselves.
    shutil.copy(ROOT / "pytest_swarmgate" / "corpus" / "diffs" / "sqli-orders-report.bad.diff", tests / "diffs")
    (tests / "diffs" / "docs-only.diff").write_text(README_DIFF)
    elsewhere = pytester.mkdir("elsewhere")
    monkeypatch.chdir(elsewhere)
    result = pytester.runpytest(str(tests), "-p", "no:cacheprovider", "--rootdir", str(pytester.path))
    result.assert_outcomes(passed=2)
    assert {r.body["model"] for r in stub.requests if r.section == "docs/README.md"} == {"claude-haiku-5-5"}
    assert len(stub.calls(section="app/reports.py")) == 3


def no_key_block() -> list[str]:
    """The command lines of the README's "No key yet?" block."""
    block = README.split("No key yet?")[1].split("\n\n")[1]
    return [line[4:] for line in block.splitlines() if line.startswith("    ")]


def wait_for_exit(pid: int) -> None:
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, 9)
    pytest.fail("the README's kill did not stop the stub")


def test_the_no_key_snippet_runs_twice_as_written_stops_its_stub_and_leaves_nothing(tmp_path) -> None:
    """Twice in a row in the same directory, as a user retries it: the second run must not source
    the first stub's dead port, and neither may leave a file in the project or its env file anywhere."""
    lines = no_key_block()
    assert any("--port 0" in line for line in lines) and lines[-1].startswith("kill ")
    project, home, temp = (tmp_path / name for name in ("project", "home", "tmp"))
    for directory in (project, home, temp):
        directory.mkdir()
    (project / "my.patch").write_text(SQL_DIFF + README_DIFF)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "PYTEST_", "GITHUB_"))}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", HOME=str(home), TMPDIR=str(temp))
    pids = []
    for run in ("first", "second"):
        # A cache of its own for each run: votes from the first run's cache would hide a dead endpoint,
        # so the second verdict below comes from the second stub.
        env["XDG_CACHE_HOME"] = str(home / f"cache-{run}")
        done = subprocess.run(
            ["bash", "-c", "\n".join(lines)], cwd=project, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, (run, done.stdout + done.stderr)  # the last line, kill, found its job
        assert "stub Anthropic server on http://127.0.0.1:" in done.stdout
        assert re.search(r"^gate: UNSAFE - 1 UNSAFE, 0 INCONCLUSIVE, 1 SAFE of 2 sections", done.stdout, flags=re.M)
        pids.append(int(re.search(r"kill (\d+)", done.stdout).group(1)))  # type: ignore[union-attr]
    for pid in pids:
        wait_for_exit(pid)
    # pytest's own cache directory is every pytest run's; the block adds nothing else to the project.
    assert sorted(p.name for p in project.iterdir()) == [".pytest_cache", "my.patch"]
    made = list(temp.iterdir())  # one `mktemp -d` directory per run, each left empty by its stub
    assert len(made) == 2 and all(list(d.iterdir()) == [] for d in made), [list(d.iterdir()) for d in made]
