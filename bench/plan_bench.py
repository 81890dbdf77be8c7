"""Time how the gate's plan scales with what a pull request controls (issue 16, point 7).

    python bench/plan_bench.py [--scale 1.0] [--mb 50] [--runs 3]
    python bench/plan_bench.py --scale 0 --mb 80    # the memory figures alone

Each case is a generated diff, planned the way `runner.plan` and `runner.over_ceiling` plan it
before any hook or call: parse, sections under the budget and without it, the held check,
the token estimate and the directory hint a ceiling prints. The cases:

- 16,000 entries of one path (a patch series touching one file again and again): section ids
  made unique, the held check of one path with 16,000 parts;
- 16,000 names that decode alike (bytes that are not UTF-8): refused in one line;
- 40,000 one-file directories (over --swarm-max-sections: the hint is computed);
- paths 2,000 levels deep, for the hint's cost in path length;
- a 2 KB non-ASCII path as git quotes it by default;
- peak memory of one plan of a real diff (this repository's history, repeated to --mb), as a
  multiple of the diff's size, in a fresh process: what --swarm-max-diff-bytes is sized on.
  The diff is read as the gate reads it, its bytes decoded a file entry at a time: Python stores a
  str in 1, 2 or 4 bytes a character, by its widest character, so an emoji widens only its own
  file's piece (decoded whole, one emoji made the text alone 4x its UTF-8 bytes). The figure is
  given again for the same diff with every non-ASCII byte replaced (1 byte a character throughout).

`--scale` multiplies the case sizes (0.25 to time an older package, PYTHONPATH=/its/checkout,
whose quadratic steps take minutes at full size).
"""

from __future__ import annotations

import argparse
import gc
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_swarmgate.core.diff import DiffText

ROOT = Path(__file__).resolve().parent.parent


def modified(path: str) -> str:
    head = f"diff --git a/{path} b/{path}\nindex 1111111..2222222 100644\n"
    return f"{head}--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-a\n+b\n"


def cases(scale: float) -> list[tuple[str, Callable[[], str]]]:
    same, dirs, deep = int(16_000 * scale), int(40_000 * scale), int(200 * scale)

    def alike() -> str:
        # names that differ only in a byte that is not UTF-8, decoded as the gate decodes them
        raw = b"".join(modified("x@").encode().replace(b"@", bytes([0x80 + i % 64])) for i in range(same))
        return raw.decode("utf-8", "replace")

    def cjk_path() -> str:
        path = "/".join(["\u65e5\u672c\u8a9e" * 20] * 12)
        quoted = '"' + "".join(f"\\{b:03o}" if b > 127 else chr(b) for b in path.encode()) + '"'
        a, b = quoted.replace('"', '"a/', 1), quoted.replace('"', '"b/', 1)
        return f"diff --git {a} {b}\nindex 1111111..2222222 100644\n--- {a}\n+++ {b}\n@@ -1 +1 @@\n-a\n+b\n"

    return [
        (f"{same:,} entries of one path", lambda: modified("src/x.py") * same),
        (f"{same:,} names that decode alike", alike),
        (f"{dirs:,} one-file directories", lambda: "".join(modified(f"d{i}/f.py") for i in range(dirs))),
        (f"{deep:,} paths 2,000 levels deep", lambda: "".join(modified("a/" * 2000 + f"f{i}.py") for i in range(deep))),
        ("a 2 KB non-ASCII path, git-quoted", cjk_path),
    ]


def plan(text: str | DiffText) -> str:
    """What runner.plan and runner.over_ceiling do with the text before any hook or call; a summary."""
    from pytest_swarmgate.core import diff
    from pytest_swarmgate.core.budget import estimate_input_tokens
    from pytest_swarmgate.core.held import held_changes
    from pytest_swarmgate.core.model import Voter

    try:
        files = diff.parse_diff(text)
    except diff.DiffError as exc:
        return f"refused: {str(exc)[:70]}..."
    sections, _ = diff.sections_of(files, budget=60_000)
    everything, unread = diff.sections_of(files)
    held = held_changes(everything, unread)
    panel = [Voter(f"v{i}", "m") for i in range(5)]
    tokens = estimate_input_tokens(sections, panel, 4000)
    hint = diff.crowded_directories([s.path for s in sections])
    return f"{len(sections)} sections, {len(held)} held, {tokens:,} tokens, hint {[d[:12] for d, _ in hint]}"


def timed(function: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    times, result = [], None
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), result


def real_diff(megabytes: float, ascii_only: bool = False) -> bytes:
    """This repository's history as one diff's bytes, repeated to about `megabytes` (non-ASCII bytes: `?`)."""
    history = subprocess.run(
        ["git", "-c", "core.quotepath=off", "log", "-p", "--no-color", "--find-renames"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout  # fmt: skip
    history = re.sub(rb"[\x80-\xff]", b"?", history) if ascii_only else history
    return history * max(1, round(megabytes * 1e6 / len(history)))


def peak_child(megabytes: float, ascii_only: bool) -> None:
    """In a fresh process: the diff's size, the pieces' in memory, the RSS holding them, the peak RSS after a plan.

    The text is read as `runner.read_source` reads it: the bytes decoded a piece at a time (`DiffText`),
    each piece as wide as its own characters need; the bytes are let go, as a read diff's are, so the
    peak while reading (bytes and pieces) may be the run's.
    """
    import resource

    from pytest_swarmgate.core import diff

    text = diff.DiffText.decode(real_diff(megabytes, ascii_only))
    gc.collect()
    with open("/proc/self/statm") as statm:  # resident now, not the peak: the bytes are gone
        holding = int(statm.read().split()[1]) * resource.getpagesize()
    plan(text)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    size = sum(len(p.encode()) for p in text.pieces)
    print(size, sum(sys.getsizeof(p) for p in text.pieces), holding, after)


def peak(megabytes: float, ascii_only: bool = False) -> str:
    """Peak resident memory of one plan of a real diff, measured in a fresh process."""
    command = [sys.executable, __file__, "--peak-child", str(megabytes), *(["--ascii"] if ascii_only else [])]
    proc = subprocess.run(command, capture_output=True, text=True, check=True)
    size, own, holding, after = (int(x) for x in proc.stdout.split())
    return (
        f"{size / 1e6:.0f} MB of diff (as str pieces {own / size:.2f}x that): RSS {holding / 1e6:.0f} MB holding the"
        f" pieces, peak {after / 1e6:.0f} MB reading and planning ({after / size:.1f}x the diff; the plan"
        f" added {(after - holding) / size:.1f}x to what held the pieces)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--mb", type=float, default=50.0, help="size of the real diff for the memory figure (0: skip)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peak-child", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--ascii", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_child is not None:
        peak_child(args.peak_child, args.ascii)
        return 0
    import pytest_swarmgate

    print(f"package: {Path(pytest_swarmgate.__file__).parent}  python {sys.version.split()[0]}")
    print(f"{'case':40} {'diff':>9} {'min':>8} {'median':>8}  result")
    for name, make in cases(args.scale) if args.scale else []:
        text = make()
        low, mid, summary = timed(lambda text=text: plan(text), args.runs)
        print(f"{name:40} {len(text) / 1e6:7.1f}MB {low:7.3f}s {mid:7.3f}s  {summary}")
    if args.mb:
        print("memory:", peak(args.mb))
        print("memory, non-ASCII replaced:", peak(args.mb, ascii_only=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
