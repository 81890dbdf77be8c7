"""Ride out a rate limit: 500 calls against the stub limited to 20 requests per second.

    python bench/rate_limit.py [--sections 100] [--rps 20] [--latency 0.5] [--concurrency 16]

The real path: `engine.review` -> `AnthropicCaster` -> `make_client()` (the real
`anthropic.AsyncAnthropic`) -> HTTP -> `StubServer(rate_limit=RateLimit(20))` on 127.0.0.1.
The stub's token bucket holds one second of requests; a request that finds it empty is
answered 429 with an honest `retry-after`, and every response carries the
`anthropic-ratelimit-*` headers. The run paces itself from them (core/pacing.py).

Prints the wall time against the floor the limit sets (calls / rps), their ratio (target
<= 1.25), the ERROR votes (must be 0) and how many 429s the stub answered. Nothing in the
package is patched.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence

from bench import env_vars, generated_diff  # the sibling bench.py: the same generated diff
from pytest_swarmgate.core.control import RunControl
from pytest_swarmgate.core.diff import parse_sections
from pytest_swarmgate.core.engine import review
from pytest_swarmgate.core.voters import AnthropicCaster, make_client
from pytest_swarmgate.options import DEFAULT_LENSES, DEFAULT_MODEL
from pytest_swarmgate.settings import build_panel
from pytest_swarmgate.testing import RateLimit, Reply, Script, StubServer

TARGET_RATIO = 1.25
VOTERS = 5


async def one_run(sections: Sequence[object], concurrency: int) -> tuple[float, list[object], RunControl]:
    client = make_client(timeout=120.0, max_retries=2)
    cast = AnthropicCaster(client, timeout=120.0)
    panel = build_panel(VOTERS, [DEFAULT_MODEL], lenses=DEFAULT_LENSES.split(","))
    control = RunControl(cast.pacer, deadline=1200.0)
    start = time.perf_counter()
    try:
        results = await review(sections, panel, 4, cast, concurrency=concurrency, control=control)  # type: ignore[arg-type]
    finally:
        await client.close()
    return time.perf_counter() - start, list(results), control


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", type=int, default=100, help="sections x 5 voters = calls (default 100)")
    parser.add_argument("--rps", type=float, default=20.0, help="the stub's requests per second (default 20)")
    parser.add_argument("--latency", type=float, default=0.5, help="the stub's seconds per reply (default 0.5)")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight (default 16, as the option)")
    args = parser.parse_args(argv)
    sections, _ = parse_sections(generated_diff(args.sections), budget=60_000)
    calls = len(sections) * VOTERS
    floor = calls / args.rps
    script = Script(default=Reply.verdict("SAFE"))
    with (
        StubServer(script, latency=args.latency, rate_limit=RateLimit(args.rps)) as stub,
        env_vars(ANTHROPIC_BASE_URL=stub.url, ANTHROPIC_API_KEY="stub"),
    ):
        wall, results, control = asyncio.run(one_run(sections, args.concurrency))
        log = stub.requests
    votes = [v for r in results for v in r.votes]  # type: ignore[attr-defined]
    errors = [v for v in votes if v.verdict == "ERROR"]
    limited = sum(r.status == 429 for r in log)
    answered = sum(r.status == 200 for r in log)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"RATE LIMIT  {len(sections)} sections x {VOTERS} voters = {calls} calls, stub limit {args.rps:g} requests/s "
        f"(bucket of 1 s), latency {args.latency:g} s, concurrency {args.concurrency}, load average {load}"
    )
    print(
        f"  wall {wall:.2f} s   floor {floor:.2f} s ({calls} / {args.rps:g})   ratio {wall / floor:.3f}   "
        f"target <= {TARGET_RATIO}  {'ok' if wall / floor <= TARGET_RATIO else 'OVER'}"
    )
    print(
        f"  ERROR votes {len(errors)} (must be 0)  {'ok' if not errors else 'PROBLEM'}   votes {len(votes)}   "
        f"stub answers: {answered} x 200, {limited} x 429 (retry-after), {len(log)} requests"
    )
    seen = control.pacer.rate_limited
    print(f"  pacer: {seen} rate-limited answers seen, calls sent {control.sent} of {control.total}")
    if errors:
        print(f"  first error: {errors[0].error}")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
