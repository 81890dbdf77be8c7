"""How often the gate HOLDS ordinary work: the plan (diff parsing + held check) over real commits, no API calls.

    python bench/held_rate.py /work/.mirror/pallets+flask/repo /work/.mirror/PyCQA+bandit/repo ...
    python bench/held_rate.py --github REPO_DIR...   # as on GitHub: GITHUB_WORKFLOW_REF names the test workflow
    python bench/held_rate.py --ci-env=GITLAB_CI REPO_DIR...   # another CI system that says who it is
    python bench/held_rate.py --github --workflow=.github/workflows/swarm-review.yml REPO_DIR...  # the gate's own

For each git directory: the last N first-parent commits of its default branch (HEAD), one diff
per commit (`git diff -M <parent> <commit>`, the flags the gate's own `git diff` uses), planned as
the gate plans it, with the full old and new text of each file available through git. Prints per
repository and in total how many diffs would be HELD, and the reasons. Works against older
versions of the package too (their `held_changes` took no texts), for before/after figures.
"""

from __future__ import annotations

import argparse
import collections
import inspect
import re
import subprocess
import sys
from pathlib import Path

from pytest_swarmgate.core import held as held_module
from pytest_swarmgate.core.diff import parse_sections

# The workflow that runs each project's tests (what GITHUB_WORKFLOW_REF would name).
TEST_WORKFLOWS = {
    "flask": ".github/workflows/tests.yaml",
    "bandit": ".github/workflows/pythonpackage.yml",
    "black": ".github/workflows/test.yml",
    "mypy": ".github/workflows/test.yml",
}
GIT_DIFF = ["-c", "core.quotepath=off", "diff", "--no-color", "--no-ext-diff", "--no-textconv", "-M",
            "--src-prefix=a/", "--dst-prefix=b/", "--no-relative", "--submodule=short"]  # fmt: skip


def git(git_dir: str, *args: str) -> bytes:
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], capture_output=True, check=True).stdout


def repo_name(git_dir: str) -> str:
    """`/work/.mirror/pallets+flask/repo` -> `flask`."""
    for part in reversed(Path(git_dir).resolve().parts):
        if part not in ("repo", ".git"):
            return part.split("+")[-1]
    return git_dir


def held_for(git_dir: str, parent: str, commit: str, ci: tuple[str, ...] | None) -> list[str]:
    text = git(git_dir, *GIT_DIFF, parent, commit, "--").decode("utf-8", "replace")
    if not text.strip():
        return []
    sections, unread = parse_sections(text, budget=max(len(text), 1))
    params = inspect.signature(held_module.held_changes).parameters
    if "texts" not in params:  # the package before issue 8: hunks only, every CI file
        return held_module.held_changes(sections, unread)
    from pytest_swarmgate.core.texts import GitTexts

    return held_module.held_changes(sections, unread, texts=GitTexts(git_dir, parent, commit), ci_files=ci)


def category(line: str) -> str:
    """A held line without its path and specifics, to count reasons."""
    path, _, reason = line.partition(": ")
    reason = re.sub(r"\(.*", "(...)", reason)
    reason = re.sub(r"reads: .*", "reads: ...", reason)
    name = path.rsplit("/", 1)[-1]
    if path.startswith(".github/workflows/"):
        name = ".github/workflows/*"
    elif "." in name and not name.startswith(".") and name not in ("pyproject.toml", "setup.cfg", "tox.ini"):
        name = "*." + name.rsplit(".", 1)[-1]
    return f"{name}: {reason}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("git_dirs", nargs="+")
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--github", action="store_true", help="Simulate GITHUB_WORKFLOW_REF naming the test workflow")
    parser.add_argument("--ci-env", metavar="VAR", help="Simulate another CI system by its variable, e.g. GITLAB_CI")
    parser.add_argument("--workflow", help="With --github: the gate's own workflow instead of the test workflow")
    parser.add_argument("--show", type=int, default=0, help="Print this many held commits per repository")
    args = parser.parse_args()
    total = total_held = 0
    reasons: collections.Counter[str] = collections.Counter()
    mode = f"GitHub (GITHUB_WORKFLOW_REF = {args.workflow or 'the test workflow'})" if args.github else "not GitHub"
    if args.ci_env:
        mode += f", {args.ci_env} set"
    elif not args.github:
        mode += ", no CI system known (every CI file held)"
    print(f"mode: {mode}; package: {Path(held_module.__file__).resolve().parent.parent}")
    for git_dir in args.git_dirs:
        name = repo_name(git_dir)
        env = {args.ci_env: "true"} if args.ci_env else {}
        if args.github:
            env["GITHUB_WORKFLOW_REF"] = f"o/{name}/{args.workflow or TEST_WORKFLOWS.get(name)}@refs/heads/main"
        ci = held_module.ci_files(env) if hasattr(held_module, "ci_files") else None
        commits = git(git_dir, "rev-list", "--first-parent", f"--max-count={args.commits}", "HEAD").decode().split()
        held_here = 0
        shown = 0
        for commit in commits:
            parents = git(git_dir, "rev-list", "--parents", "-n", "1", commit).decode().split()[1:]
            if not parents:
                continue
            lines = held_for(git_dir, parents[0], commit, ci)
            total += 1
            if lines:
                held_here += 1
                reasons.update({category(line) for line in lines})
                if shown < args.show:
                    shown += 1
                    print(f"  {name} {commit[:10]}: " + "; ".join(lines)[:300])
        total_held += held_here
        print(f"{name}: {held_here} of {len(commits)} diffs HELD ({100 * held_here / max(len(commits), 1):.1f}%)")
    print(f"total: {total_held} of {total} diffs HELD ({100 * total_held / max(total, 1):.1f}%)")
    print("reasons (diffs that hold at least one file for it):")
    for reason, n in reasons.most_common():
        print(f"  {n:4d}  {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
