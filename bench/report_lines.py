"""How long the reports are for a newcomer to read (issue 18): a diff of N sections, U of them UNSAFE.

    python bench/report_lines.py [--sections 45] [--unsafe 2] [--keep DIR]

Runs `pytest --swarm-review` in a fresh process (the SDK over HTTP to the bundled stub, which
answers UNSAFE for the chosen sections) under GITHUB_ACTIONS=false and then =true, and prints
the lines of the default terminal output (pytest's own included), the line on which the first
UNSAFE section appears after pytest's session header, and the step summary's line count and
where its first failing section starts. HOME, the vote cache and the diff live in a temporary
directory; `--keep DIR` copies the outputs there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pytest_swarmgate.testing import Reply, Script, StubServer


def diff_of(paths: list[str]) -> str:
    """One small modified Python file per path: one section each."""
    return "".join(
        f"diff --git a/{p} b/{p}\nindex {i:07x}..{i + 1:07x} 100644\n--- a/{p}\n+++ b/{p}\n"
        f"@@ -1,2 +1,3 @@\n import os\n x = {i}\n+y = os.getcwd()\n"
        for i, p in enumerate(paths)
    )


def run(work: Path, url: str, github: bool) -> tuple[list[str], list[str]]:
    """The terminal lines and the step summary lines of one run."""
    summary = work / f"summary-{github}.md"
    env = {
        **os.environ,
        "HOME": str(work),
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "stub-not-a-secret",
        "GITHUB_ACTIONS": "true" if github else "",
        "GITHUB_STEP_SUMMARY": str(summary),
        "XDG_CACHE_HOME": str(work / f"cache-{github}"),
    }
    args = ["--swarm-review", "--swarm-diff=pr.diff", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args], cwd=work, env=env, capture_output=True, text=True, check=False
    )
    lines = done.stdout.splitlines()
    return lines, summary.read_text().splitlines() if summary.exists() else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=int, default=45)
    parser.add_argument("--unsafe", type=int, default=2)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    paths = [f"src/pkg/mod_{i:03d}.py" for i in range(args.sections)]
    step = max(1, args.sections // max(1, args.unsafe))
    unsafe = paths[step // 2 :: step][: args.unsafe]
    script = Script()
    for path in unsafe:
        script.on(section=path, reply=Reply.verdict("UNSAFE"))
    with tempfile.TemporaryDirectory() as tmp, StubServer(script) as stub:
        work = Path(tmp)
        (work / "pr.diff").write_text(diff_of(paths))
        for github in (False, True):
            lines, summary = run(work, stub.url, github)
            header = next(i for i, line in enumerate(lines) if line.startswith("collected "))
            first = next((i + 1 for i, line in enumerate(lines) if i > header and unsafe[0] in line), None)
            shown = unsafe[0].replace("_", "\\_")  # as Markdown escapes it
            where = next((i + 1 for i, s in enumerate(summary) if shown in s), None)
            print(
                f"GITHUB_ACTIONS={'true' if github else 'false'}: {args.sections} sections, {len(unsafe)} UNSAFE: "
                f"terminal {len(lines)} lines, the first UNSAFE section on line {first} "
                f"({first - header - 1 if first else None} after pytest's header)"
                + (f"; step summary {len(summary)} lines, first failing section on line {where}" if summary else "")
            )
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                (args.keep / f"terminal-{github}.txt").write_text("\n".join(lines) + "\n")
                if summary:
                    shutil.copy(work / f"summary-{github}.md", args.keep / "summary.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
