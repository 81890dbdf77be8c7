"""What the aggregator costs (issue 20): a 45-section diff with 2 UNSAFE sections, with and without it.

    python bench/synthesis_bench.py [--sections 45] [--unsafe 2] [--runs 3] [--latency 0.5]

A generated diff of one-file sections is reviewed through the real path (`pytest --swarm-review` in
a fresh process, the SDK over HTTP to the in-process stub, whose every reply takes `--latency`
seconds), the vote cache off, alternately with `--swarm-aggregate=blocked` (the default) and
`off`. The stub answers UNSAFE on `--unsafe` of the sections (5 of 5 voters) and SAFE elsewhere,
and plays the aggregator with a review made from the votes. Per mode it prints the calls the stub
answered (votes and syntheses), the input tokens the JSON report counts (input + cache write +
cache read) and the list-price cost (core/pricing.py, the panel's model), the aggregator's share of
both, and the review's wall time (`wall_time_s` of the report: the calls, not pytest's start-up)
as min/median/max. HOME and the diff live in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from pytest_swarmgate.core.model import RunResult, Usage
from pytest_swarmgate.core.pricing import price_for, usage_cost
from pytest_swarmgate.testing import Reply, Script, StubServer


def diff_of(count: int) -> str:
    """`count` one-file sections of a few changed lines each."""
    out = []
    for i in range(count):
        p = f"src/pkg/mod_{i:03d}.py"
        body = "".join(f"+    total += row[{j}] * {i}\n" for j in range(8))
        out.append(
            f"diff --git a/{p} b/{p}\nindex {i:07x}..{i + 1:07x} 100644\n--- a/{p}\n+++ b/{p}\n"
            f"@@ -1,3 +1,12 @@\n def handler_{i}(request, row):\n     total = 0\n{body}+    return total\n"
            "     pass\n"
        )
    return "".join(out)


def run(work: Path, url: str, diff: Path, mode: str) -> dict[str, Any]:
    """One review in a fresh process; its JSON report."""
    env = {**os.environ, "HOME": str(work), "ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "stub-not-a-secret"}
    report = work / f"report-{mode}.json"
    args = [f"--swarm-diff={diff}", "--swarm-no-cache", f"--swarm-aggregate={mode}", f"--swarm-json={report}"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--swarm-review", "--swarm-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=work, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 1:
        raise SystemExit(f"PROBLEM: exit {done.returncode}, expected 1 (UNSAFE)\n{done.stdout[-2000:]}")
    data: dict[str, Any] = json.loads(report.read_text())
    return data


def tokens_in(u: Usage) -> int:
    return u.input_tokens + u.cache_write_tokens + u.cache_read_tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=int, default=45)
    parser.add_argument("--unsafe", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.5)
    args = parser.parse_args()
    script = Script(Reply.verdict("SAFE"))
    for i in range(args.unsafe):  # spread over the diff, not only its first sections
        script.on(f"src/pkg/mod_{(i + 1) * args.sections // (args.unsafe + 1):03d}.py", reply=Reply.verdict("UNSAFE"))
    walls: dict[str, list[float]] = {"blocked": [], "off": []}
    last: dict[str, RunResult] = {}
    calls: dict[str, tuple[int, int]] = {}
    with tempfile.TemporaryDirectory() as tmp, StubServer(script, latency=args.latency) as stub:
        work = Path(tmp)
        diff = work / "pr.diff"
        diff.write_text(diff_of(args.sections))
        for _ in range(args.runs):
            for mode in ("blocked", "off"):
                stub.clear_log()
                data = run(work, stub.url, diff, mode)
                run_result = RunResult.from_dict(data["run"])
                walls[mode].append(run_result.wall_time_s)
                last[mode] = run_result
                calls[mode] = (len(stub.calls()), len(stub.syntheses()))
    for mode in ("blocked", "off"):
        r = last[mode]
        w = walls[mode]
        votes, syntheses = calls[mode]
        price = price_for(r.panel[0].model)
        usd = usage_cost(r.usage, price) if price else float("nan")
        print(
            f"--swarm-aggregate={mode}: {votes} vote calls + {syntheses} aggregator calls; input tokens "
            f"{tokens_in(r.usage):,}, ${usd:.4f} at list price; wall {min(w):.2f} / {statistics.median(w):.2f} / "
            f"{max(w):.2f} s (min/median/max of {len(w)})"
        )
    r = last["blocked"]
    extra = Usage.sum(s.usage for s in r.syntheses)
    price = price_for(r.panel[0].model)
    share_usd = usage_cost(extra, price) / usage_cost(r.usage, price) if price else float("nan")
    ratio = statistics.median(walls["blocked"]) / statistics.median(walls["off"])
    print(
        f"aggregator: {len(r.syntheses)} calls for {r.counts['UNSAFE']} UNSAFE sections; "
        f"{tokens_in(extra) / tokens_in(r.usage):.1%} of the run's input tokens, {share_usd:.1%} of its cost; "
        f"wall time with/without (medians): x{ratio:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
