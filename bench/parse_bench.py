"""Time how long the gate's plan spends parsing a large diff (issue 8: parse once, not twice).

    python bench/parse_bench.py [--mb 20] [--runs 3]

The diff is real: this repository's own history (`git log -p`) and the fixture diffs,
concatenated until it reaches --mb megabytes. It times what `runner.plan` does with the
text: the sections to review (budget and filters) and the unfiltered view the held check
reads. Run it against another checkout's package (PYTHONPATH=/that/checkout) to compare:
a package without `diff.parse_diff` is timed the old way, parsing the text twice.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def real_diff(megabytes: float) -> str:
    history = subprocess.run(
        ["git", "-c", "core.quotepath=off", "log", "-p", "--no-color", "--no-ext-diff", "--find-renames"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode("utf-8", "replace")  # fmt: skip
    fixtures = "".join(p.read_text("utf-8") for p in sorted((ROOT / "fixtures").rglob("*.diff")))
    one = history + fixtures
    copies = max(1, round(megabytes * 1_000_000 / len(one.encode())))
    return one * copies


def plan_parse(diff: object, text: str) -> tuple[int, int]:
    """What runner.plan does with the text before any hook or vote; (sections, not reviewed)."""
    if hasattr(diff, "parse_diff"):
        files = diff.parse_diff(text)
        sections, skipped = diff.sections_of(files, budget=60_000, exclude=["docs/**"])
        diff.sections_of(files)
    else:  # the old plan: once with the filters, once more without them for the held check
        sections, skipped = diff.parse_sections(text, budget=60_000, exclude=["docs/**"])
        diff.parse_sections(text, budget=max(len(text), 1))
    return len(sections), len(skipped)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from pytest_swarmgate.core import diff

    text = real_diff(args.mb)
    times = []
    for _ in range(args.runs):
        gc.collect()
        start = time.perf_counter()
        counts = plan_parse(diff, text)
        times.append(time.perf_counter() - start)
    way = "parse once" if hasattr(diff, "parse_diff") else "parse twice (old plan)"
    print(f"package: {Path(diff.__file__).parents[2]}")
    size = f"{len(text.encode()) / 1e6:.1f} MB, {text.count(chr(10))} lines"
    print(f"diff: {size}; {counts[0]} sections, {counts[1]} not reviewed")
    spread = f"min {min(times):.2f} s, median {statistics.median(times):.2f} s over {args.runs} runs"
    print(f"plan's parsing, {way}: {spread} (python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
