"""Time how long the gate's plan spends parsing a large diff (issue 8: parse once, not twice).

    python bench/parse_bench.py [--mb 20] [--runs 3]
    python bench/parse_bench.py --sizes 10,20,40,80 [--runs 3]   # ms per MB at each size (issue 21)

The diff is real: this repository's own history (`git log -p`) and the fixture diffs,
concatenated until it reaches --mb megabytes. It times what `runner.plan` does with the
text: the sections to review (budget and filters) and the unfiltered view the held check
reads. Run it against another checkout's package (PYTHONPATH=/that/checkout) to compare:
a package without `diff.parse_diff` is timed the old way, parsing the text twice.

The text is read as the gate reads it: the bytes decoded a file entry at a time (`DiffText`);
the decoding is not timed (nor was it before).

`--sizes` times each size in a fresh process (a heap grown by the size before would flatter
or burden the next) and prints the parse's milliseconds per MB, which stay flat when the
parse is linear, and the peak RSS of the process as a multiple of the diff.
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


def real_diff(megabytes: float) -> bytes:
    """The history and the fixtures as one diff's bytes, repeated to about `megabytes`."""
    history = subprocess.run(
        ["git", "-c", "core.quotepath=off", "log", "-p", "--no-color", "--no-ext-diff", "--find-renames"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode("utf-8", "replace")  # fmt: skip
    fixtures = "".join(p.read_text("utf-8") for p in sorted((ROOT / "fixtures").rglob("*.diff")))
    one = (history + fixtures).encode()
    return one * max(1, round(megabytes * 1_000_000 / len(one)))


def read(diff: object, data: bytes) -> object:
    """The text as `runner.read_source` gives it: pieces decoded a file entry at a time (`DiffText`), or one str."""
    pieces = getattr(diff, "DiffText", None)
    return pieces.decode(data) if pieces is not None else data.decode("utf-8", "replace")


def plan_parse(diff: object, text: object) -> tuple[int, int]:
    """What runner.plan does with the text before any hook or vote; (sections, not reviewed)."""
    if hasattr(diff, "parse_diff"):
        files = diff.parse_diff(text)
        sections, skipped = diff.sections_of(files, budget=60_000, exclude=["docs/**"])
        diff.sections_of(files)
    else:  # the old plan: once with the filters, once more without them for the held check
        sections, skipped = diff.parse_sections(text, budget=60_000, exclude=["docs/**"])
        diff.parse_sections(text, budget=max(len(text), 1))
    return len(sections), len(skipped)


def timed(diff: object, text: object, runs: int) -> tuple[list[float], tuple[int, int]]:
    times, counts = [], (0, 0)
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        counts = plan_parse(diff, text)
        times.append(time.perf_counter() - start)
    return times, counts


def size_child(megabytes: float, runs: int) -> None:
    """In a fresh process: the diff's bytes, each run's seconds, and the peak RSS."""
    import resource

    from pytest_swarmgate.core import diff

    data = real_diff(megabytes)
    size, text = len(data), read(diff, data)
    del data  # as a read diff's bytes are let go
    times, _ = timed(diff, text, runs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(size, peak, *times)


def scaling(sizes: list[float], runs: int) -> None:
    """The parse's ms per MB at each size, each measured in a fresh process."""
    print(f"{'diff':>8} {'min ms/MB':>10} {'median ms/MB':>13} {'peak RSS':>9}  (python {sys.version.split()[0]})")
    for mb in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--size-child", str(mb), "--runs", str(runs)],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        size, peak, times = int(out[0]), int(out[1]), [float(t) for t in out[2:]]
        per_mb = [t * 1000 / (size / 1e6) for t in times]
        low, mid = min(per_mb), statistics.median(per_mb)
        print(f"{size / 1e6:6.1f}MB {low:10.1f} {mid:13.1f} {peak / size:8.1f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", help="comma-separated MB, each timed in a fresh process: 10,20,40,80")
    parser.add_argument("--size-child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.size_child is not None:
        size_child(args.size_child, args.runs)
        return 0
    if args.sizes:
        scaling([float(mb) for mb in args.sizes.split(",")], args.runs)
        return 0
    from pytest_swarmgate.core import diff

    data = real_diff(args.mb)
    size, lines, text = len(data), data.count(b"\n"), read(diff, data)
    del data
    times, counts = timed(diff, text, args.runs)
    way = "parse once" if hasattr(diff, "parse_diff") else "parse twice (old plan)"
    print(f"package: {Path(diff.__file__).parents[2]}")
    print(f"diff: {size / 1e6:.1f} MB, {lines} lines; {counts[0]} sections, {counts[1]} not reviewed")
    spread = f"min {min(times):.2f} s, median {statistics.median(times):.2f} s over {args.runs} runs"
    print(f"plan's parsing, {way}: {spread} (python {sys.version.split()[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
