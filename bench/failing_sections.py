"""Reporting cost at scale (issue 21): a cached rerun in which every section is UNSAFE.

    python bench/failing_sections.py [--sections 2000 4000] [--runs 3]

For each size, a generated diff of one-file sections is reviewed once through the real path (the
SDK over HTTP to the in-process stub, which answers UNSAFE to everything, zero latency) to fill the
vote cache, then reviewed again `--runs` times in fresh processes that the cache serves whole: no
call is made, so the time is the gate's planning and pytest's reporting of N failing items (the
ceilings are raised and the context is off, so that is all it measures). It
prints the median wall time per size and the ratio between consecutive sizes (linear: the size
ratio; quadratic: its square). HOME, the vote cache and the diff live in a temporary directory.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_swarmgate.testing import Reply, Script, StubServer


def diff_of(count: int) -> str:
    paths = [f"src/p{i // 100:03d}/m{i:05d}.py" for i in range(count)]
    return "".join(
        f"diff --git a/{p} b/{p}\nindex {i:07x}..{i + 1:07x} 100644\n--- a/{p}\n+++ b/{p}\n"
        f"@@ -1,2 +1,3 @@\n import os\n x = {i}\n+y = os.getcwd()\n"
        for i, p in enumerate(paths)
    )


def review(work: Path, url: str, diff: Path, profile: Path | None = None) -> float:
    """One gate run in a fresh process (under cProfile into `profile`); its wall seconds."""
    env = {
        **os.environ,
        "HOME": str(work),
        "XDG_CACHE_HOME": str(work / "cache"),
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "stub-not-a-secret",
    }
    # The ceilings raised and the context off: what is measured is the reporting of N failing items.
    ceilings = ["--swarm-max-sections=100000", "--swarm-max-input-tokens=1000000000", "--swarm-context=off"]
    args = [f"--swarm-diff={diff}", *ceilings, "--swarm-concurrency=64", "-p", "no:cacheprovider"]
    profiled = ["-m", "cProfile", "-o", str(profile)] if profile else []
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *profiled, "-m", "pytest", "--swarm-review", "--swarm-only", "-q", *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 1 and not profile:  # cProfile's own exit status is 0
        raise SystemExit(f"PROBLEM: exit {done.returncode}, expected 1 (UNSAFE)\n{done.stdout[-2000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=int, nargs="+", default=[2000, 4000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", type=Path, help="one more cached rerun of the last size, under cProfile into FILE")
    args = parser.parse_args()
    medians: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, StubServer(Script(Reply.verdict("UNSAFE")), log_limit=10**7) as stub:
        work = Path(tmp)
        for count in args.sections:
            diff = work / f"pr-{count}.diff"
            diff.write_text(diff_of(count))
            first = review(work, stub.url, diff)
            calls = len(stub.calls())
            cached = [review(work, stub.url, diff) for _ in range(args.runs)]
            if len(stub.calls()) != calls:
                print("PROBLEM: a cached rerun made calls")
            medians.append(statistics.median(cached))
            print(
                f"{count} sections, all UNSAFE: first run {first:.1f} s ({calls} calls in all so far); cached rerun "
                f"median {medians[-1]:.2f} s (min {min(cached):.2f}, max {max(cached):.2f}, {args.runs} runs)"
            )
        if args.profile:
            review(work, stub.url, diff, args.profile)
    for (a, ta), (b, tb) in itertools.pairwise(zip(args.sections, medians, strict=True)):
        print(f"{a} -> {b} sections (x{b / a:.1f}): time x{tb / ta:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
