"""Benchmark figures for pytest-swarmgate, measured on this machine (no timings live in the tests).

    python bench/bench.py [--runs N] [--reps N] [--only review|startup]

review   One review of 5 voters x 20 sections (100 calls) through the real path: the
         engine's `review`, `AnthropicCaster`, `make_client` (the real `anthropic`
         AsyncAnthropic client) over real HTTP to `StubServer(latency=0.5)` on 127.0.0.1,
         vote cache off. At concurrency 100 (target <= 0.7 s, physical floor 0.5 s) and 16
         (the default), the stub's prompt-cache usage, a rerun with the vote cache on, and
         one end-to-end `pytest --swarm-review` run whose own report gives `wall_time_s`.
startup  `pytest --co -q` on a generated 200-test project with the plugin installed and
         its flag off, against the same with `-p no:swarmgate`: interleaved subprocesses,
         medians and their ratio (target <= 1.03), and whether `anthropic` / `unidiff` are
         imported with the flag off (they must not be).

Nothing in the package is patched: this script measures the code as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import gc
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

VOTERS = 5
SECTIONS = 20
LATENCY = 0.5
FAST = 100
DEFAULT_CONCURRENCY = 16
TARGET_WALL = 0.7
TARGET_RATIO = 1.03
TESTS_FILES, TESTS_PER_FILE = 20, 10
PYTEST_BASE = ["-m", "pytest", "--co", "-q", "-p", "no:cacheprovider"]
WATCHED_MODULES = ("pytest_swarmgate.plugin", "anthropic", "unidiff", "httpx2", "pytest_swarmgate.runner")


# --------------------------------------------------------------------------- helpers


def fmt_s(x: float) -> str:
    return f"{x:.3f}"


def spread(xs: Sequence[float]) -> tuple[float, float, float]:
    return min(xs), statistics.median(xs), max(xs)


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a pytest subprocess: nothing that changes what pytest loads or runs."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "SWARMGATE"))
        and k not in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONWARNINGS", "PYTHONHOME")
    }
    env.update(extra)
    return env


def generated_diff(files: int = SECTIONS) -> str:
    """A `git diff` of `files` modified Python files, one hunk each, so one section each."""
    out = []
    for i in range(files):
        path = f"src/app/module_{i:02d}.py"
        added = [
            f"def handler_{i}(request):\n",
            f"    name = request.args.get('name_{i}', '')\n",
            "    if not name.isidentifier():\n",
            "        raise ValueError('bad name')\n",
            f"    return os.path.join('/srv/data', name + '.{i}.json')\n",
        ]
        new_len = 2 + len(added)
        hunk = f"@@ -1,4 +1,{new_len} @@\n import os\n \n-def handler_{i}(request):\n-    return None\n" + "".join(
            "+" + line for line in added
        )
        out.append(
            f"diff --git a/{path} b/{path}\nindex {i:07x}..{i + 1:07x} 100644\n--- a/{path}\n+++ b/{path}\n{hunk}"
        )
    return "".join(out)


@contextlib.contextmanager
def env_vars(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------- review


class GcWatch:
    """Counts the cyclic collector's passes (and their time) while active, per generation."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.count[info["generation"]] += 1
            self.seconds[info["generation"]] += time.perf_counter() - self._start

    def __enter__(self) -> None:
        gc.callbacks.append(self)

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


@dataclass
class ReviewRun:
    wall: float  # engine.review() only, as awaited
    client_s: float  # make_client(), outside `wall` (gate.execute counts it in wall_time_s)
    cpu: float  # process CPU during review(): the client and the in-process stub
    calls: int
    results: list[Any]
    first_in: float  # when the first / last request reached the stub, from the start of review()
    last_in: float
    gc: GcWatch


def review_once(
    stub: Any, sections: Sequence[Any], panel: Sequence[Any], k: int, concurrency: int, cache: Any = None
) -> ReviewRun:
    from pytest_swarmgate.core.engine import review
    from pytest_swarmgate.core.voters import (
        DEFAULT_MAX_TOKENS,
        AnthropicCaster,
        make_client,
    )
    from pytest_swarmgate.options import BY_NAME
    from pytest_swarmgate.runner import endpoint

    timeout = float(BY_NAME["timeout"].default)
    stub.clear_log()
    c0 = time.perf_counter()
    # The same construction as the plugin's pytest_swarmgate_make_client / make_voter hooks.
    client = make_client(timeout=timeout, max_retries=int(BY_NAME["max-retries"].default))
    cast = AnthropicCaster(client, timeout=timeout, max_tokens=DEFAULT_MAX_TOKENS)
    client_s = time.perf_counter() - c0
    watch = GcWatch()

    async def main() -> tuple[float, float, float, list[Any]]:
        epoch = time.time()
        t0, cpu0 = time.perf_counter(), time.process_time()
        try:
            with watch:
                results = await review(
                    sections, panel, k, cast, concurrency=concurrency, cache=cache, endpoint=endpoint(client)
                )
            return time.perf_counter() - t0, time.process_time() - cpu0, epoch, results
        finally:
            # Close inside the loop that owns the connections (gate.execute leaves this to GC).
            await client.close()

    # Start each run as a fresh process would: without the previous runs' garbage, which
    # otherwise makes a ~50 ms full collection land inside some timed runs and not others.
    gc.collect()
    wall, cpu, epoch, results = asyncio.run(main())
    calls = stub.calls()
    arrivals = sorted(r.time - epoch for r in calls) or [0.0]
    return ReviewRun(wall, client_s, cpu, len(calls), results, arrivals[0], arrivals[-1], watch)


def check_votes(run: ReviewRun, expect_calls: int) -> str:
    votes = [v for r in run.results for v in r.votes]
    errors = [v for v in votes if v.verdict == "ERROR"]
    problems = []
    if errors:
        problems.append(f"{len(errors)} ERROR votes, e.g. {errors[0].error}")
    if run.calls != expect_calls:
        problems.append(f"{run.calls} calls reached the stub, expected {expect_calls}")
    if len(votes) != VOTERS * SECTIONS:
        problems.append(f"{len(votes)} votes, expected {VOTERS * SECTIONS}")
    return "; ".join(problems)


def usage_line(run: ReviewRun) -> str:
    votes = [v for r in run.results for v in r.votes if not v.cached]
    writes = [v for v in votes if v.usage.cache_write_tokens]
    reads = [v for v in votes if v.usage.cache_read_tokens]
    total_w = sum(v.usage.cache_write_tokens for v in votes)
    total_r = sum(v.usage.cache_read_tokens for v in votes)
    total_in = sum(v.usage.input_tokens for v in votes)
    total_out = sum(v.usage.output_tokens for v in votes)
    return (
        f"cache_write {total_w:>7,} tok in {len(writes):>3} calls | cache_read {total_r:>7,} tok in {len(reads):>3} "
        "calls"
        f" | uncached input {total_in:,} | output {total_out:,}"
    )


def e2e_pytest(stub_url: str, diff_text: str) -> dict[str, Any]:
    """One real `pytest --swarm-review` session (fresh process, cold imports) against the stub."""
    with tempfile.TemporaryDirectory(prefix="swarmgate-bench-e2e-") as tmp:
        root = Path(tmp)
        (root / "pytest.ini").write_text("[pytest]\n")
        (root / "test_ok.py").write_text("def test_ok():\n    pass\n")
        (root / "pr.diff").write_text(diff_text)
        report = root / "report.json"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--swarm-review",
            "--swarm-diff=pr.diff",
            f"--swarm-concurrency={FAST}",
            "--swarm-no-cache",
            f"--swarm-json={report}",
        ]
        env = clean_env(ANTHROPIC_BASE_URL=stub_url, ANTHROPIC_API_KEY="stub-key")
        env.pop("ANTHROPIC_AUTH_TOKEN", None)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0 or not report.exists():
            return {"error": f"exit {proc.returncode}: {(proc.stdout + proc.stderr).strip().splitlines()[-1:]}"}
        data = json.loads(report.read_text())
    cold_import = subprocess.run(
        [
            sys.executable,
            "-c",
            "import time; t = time.perf_counter(); import anthropic; print(time.perf_counter() - t)",
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "elapsed": elapsed,
        "wall_time_s": data["timings"]["wall_time_s"],
        "calls": data["totals"]["calls"],
        "errors": data["totals"]["error_votes"],
        "import_anthropic": float(cold_import.stdout.strip() or "nan"),
    }


def bench_review(runs: int) -> list[str]:
    from pytest_swarmgate.core.cache import VoteCache
    from pytest_swarmgate.core.diff import parse_sections
    from pytest_swarmgate.options import DEFAULT_MODEL
    from pytest_swarmgate.settings import build_panel, default_threshold
    from pytest_swarmgate.testing import StubServer

    diff_text = generated_diff()
    sections, not_reviewed = parse_sections(diff_text)
    assert len(sections) == SECTIONS and not not_reviewed, (len(sections), not_reviewed)
    panel = build_panel(VOTERS, [DEFAULT_MODEL])
    k = default_threshold(VOTERS)
    calls = VOTERS * SECTIONS
    floor16 = math.ceil(calls / DEFAULT_CONCURRENCY) * LATENCY
    lines: list[str] = []
    out = lines.append
    out(
        f"REVIEW  {VOTERS} voters x {SECTIONS} sections = {calls} calls, stub latency {LATENCY:.2f} s/call, "
        f"K={k}, vote cache off, {runs} runs per row"
    )
    out(
        "  real path: engine.review -> AnthropicCaster -> anthropic.AsyncAnthropic (make_client) -> HTTP -> "
        "StubServer on 127.0.0.1 (in this process)"
    )

    problems: list[str] = []
    with StubServer(latency=LATENCY) as stub, env_vars(ANTHROPIC_BASE_URL=stub.url, ANTHROPIC_API_KEY="stub-key"):
        saved_token = os.environ.pop("ANTHROPIC_AUTH_TOKEN", None)
        try:
            warm = review_once(stub, sections, panel, k, FAST)  # imports, first-use costs: not counted
            rows: dict[int, list[ReviewRun]] = {FAST: [], DEFAULT_CONCURRENCY: []}
            for conc in (FAST, DEFAULT_CONCURRENCY):
                for _ in range(runs):
                    run = review_once(stub, sections, panel, k, conc)
                    if p := check_votes(run, calls):
                        problems.append(f"concurrency {conc}: {p}")
                    rows[conc].append(run)
            with tempfile.TemporaryDirectory(prefix="swarmgate-bench-votes-") as tmp:
                cache = VoteCache(Path(tmp), b"bench: a secret of this process")
                first = review_once(stub, sections, panel, k, FAST, cache=cache)
                rerun = review_once(stub, sections, panel, k, FAST, cache=cache)
                cached_votes = sum(v.cached for r in rerun.results for v in r.votes)
            e2e = e2e_pytest(stub.url, diff_text)
        finally:
            if saved_token is not None:
                os.environ["ANTHROPIC_AUTH_TOKEN"] = saved_token

    out("  concurrency   min     median  max     floor   target")
    lo, med, hi = spread([r.wall for r in rows[FAST]])
    verdict = "ok" if med <= TARGET_WALL else "OVER"
    out(
        f"  {FAST:<11}   {fmt_s(lo)}   {fmt_s(med)}   {fmt_s(hi)}   {LATENCY:.3f}   <= {TARGET_WALL} s  {verdict} "
        "(median)"
    )
    lo, med16, hi = spread([r.wall for r in rows[DEFAULT_CONCURRENCY]])
    out(
        f"  {DEFAULT_CONCURRENCY:<11}   {fmt_s(lo)}   {fmt_s(med16)}   {fmt_s(hi)}   {floor16:.3f}   "
        f"(floor = ceil({calls}/{DEFAULT_CONCURRENCY}) x {LATENCY} s)"
    )
    out(f"  sequential    {calls} calls x {LATENCY} s = {calls * LATENCY:.1f} s (arithmetic, not measured)")
    out(
        f"  speed-up at {FAST}: {calls * LATENCY / med:.0f}x over sequential; "
        f"{med16 / med:.1f}x over the default concurrency {DEFAULT_CONCURRENCY}"
    )
    cpu = statistics.median(r.cpu for r in rows[FAST])
    over = statistics.median(r.wall - LATENCY for r in rows[FAST])
    out(
        f"  where the time over {LATENCY} s goes at {FAST} (medians): {over * 1000:.0f} ms over the floor; "
        f"process CPU in review() {cpu * 1000:.0f} ms = {cpu / calls * 1000:.2f} ms/call (SDK + httpx2 + stub, one GIL)"
    )
    out(
        f"    requests reached the stub {statistics.median(r.first_in for r in rows[FAST]) * 1000:.0f}-"
        f"{statistics.median(r.last_in for r in rows[FAST]) * 1000:.0f} ms after review() started; "
        f"make_client() {statistics.median(r.client_s for r in rows[FAST]) * 1000:.0f} ms (outside these walls); "
        f"warm-up run (not counted) {fmt_s(warm.wall)} s"
    )
    gc_n = [sum(r.gc.count[g] for r in rows[FAST]) for g in range(3)]
    gc_ms = [sum(r.gc.seconds[g] for r in rows[FAST]) * 1000 for g in range(3)]
    out(
        f"    cyclic GC inside the {runs} timed runs at {FAST} (each run starts after gc.collect()): "
        + ", ".join(f"gen{g} {gc_n[g]}x {gc_ms[g]:.0f} ms" for g in range(3))
    )
    out("  prompt cache, stub usage of one run (an entry is readable once the call that wrote it has answered;")
    out("  these sections are below the prewarm size, so calls in flight together all write):")
    out(f"    concurrency {FAST:<3} {usage_line(rows[FAST][0])}")
    out(f"    concurrency {DEFAULT_CONCURRENCY:<3} {usage_line(rows[DEFAULT_CONCURRENCY][0])}")
    out(
        f"  vote cache on (temp dir): first run {first.calls} calls {fmt_s(first.wall)} s; "
        f"rerun on the same diff {rerun.calls} calls, {cached_votes}/{calls} votes from cache, {fmt_s(rerun.wall)} s"
    )
    if "error" in e2e:
        problems.append(f"end-to-end pytest run failed: {e2e['error']}")
    else:
        out(
            f"  end-to-end `pytest --swarm-review --swarm-concurrency={FAST} --swarm-no-cache` (fresh process): "
            f"report wall_time_s {e2e['wall_time_s']:.3f} s, {e2e['calls']} calls, {e2e['errors']} errors, "
            f"process {e2e['elapsed']:.2f} s"
        )
        out(
            f"    wall_time_s spans make_client(), whose lazy `import anthropic` costs {e2e['import_anthropic']:.3f} s "
            "cold, then review()"
        )
    if rerun.calls != 0:
        problems.append(f"vote-cache rerun made {rerun.calls} calls, expected 0")
    for p in problems:
        out(f"  PROBLEM: {p}")
    return lines


# --------------------------------------------------------------------------- startup


def write_project(root: Path) -> None:
    (root / "pytest.ini").write_text("[pytest]\n")
    for i in range(TESTS_FILES):
        body = ["import pytest\n\n"]
        for j in range(TESTS_PER_FILE):
            body.append(f"def test_{j}():\n    assert {i} + {j} == {i + j}\n\n\n")
        (root / f"test_mod{i:02d}.py").write_text("".join(body))


MODULE_PROBE = f"""
import json, sys, pytest
rc = pytest.main(sys.argv[1:])
print("@@MODULES@@" + json.dumps({{"rc": int(rc), "loaded": {{m: m in sys.modules for m in {WATCHED_MODULES!r}}}}}))
"""


def module_check(root: Path, env: dict[str, str], extra: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", MODULE_PROBE, "--co", "-q", "-p", "no:cacheprovider", *extra],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("@@MODULES@@"):
            result: dict[str, Any] = json.loads(line[len("@@MODULES@@") :])
            return result
    raise RuntimeError(f"module probe failed: {proc.stdout[-500:]}{proc.stderr[-500:]}")


def plugin_import_ms(env: dict[str, str], n: int = 5) -> float:
    code = (
        "import time, pytest; t = time.perf_counter(); import pytest_swarmgate.plugin; "
        "print((time.perf_counter() - t) * 1000)"
    )
    xs = [
        float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False).stdout)
        for _ in range(n)
    ]
    return statistics.median(xs)


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_collect(root: Path, env: dict[str, str], extra: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one `pytest --co` subprocess; CPU is user+sys of that child alone."""
    cpu0 = child_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *PYTEST_BASE, *extra],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"pytest --co exited {proc.returncode} with {extra}")
    return elapsed, child_cpu() - cpu0


@dataclass
class Startup:
    wall_on: float  # medians; "on" = plugin installed, flag off
    wall_off: float  # -p no:swarmgate
    cpu_on: float
    cpu_off: float

    @property
    def ratio(self) -> float:
        return self.wall_on / self.wall_off

    @property
    def cpu_ratio(self) -> float:
        return self.cpu_on / self.cpu_off


def startup_condition(root: Path, env: dict[str, str], reps: int) -> Startup:
    on: list[tuple[float, float]] = []
    off: list[tuple[float, float]] = []
    for _ in range(2):  # warm-up: page cache, bytecode caches, assertion-rewrite caches
        time_collect(root, env, [])
        time_collect(root, env, ["-p", "no:swarmgate"])
    for i in range(reps):
        order: tuple[tuple[list[tuple[float, float]], list[str]], ...] = ((on, []), (off, ["-p", "no:swarmgate"]))
        for bucket, extra in order if i % 2 == 0 else order[::-1]:
            bucket.append(time_collect(root, env, extra))
    med = statistics.median
    return Startup(med(w for w, _ in on), med(w for w, _ in off), med(c for _, c in on), med(c for _, c in off))


def bench_startup(reps: int) -> list[str]:
    lines: list[str] = []
    out = lines.append
    with tempfile.TemporaryDirectory(prefix="swarmgate-bench-startup-") as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        write_project(root)
        cached_env = clean_env(PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"))
        cached_env.pop("PYTHONDONTWRITEBYTECODE", None)
        conditions = [("bytecode cached (as a normal install)", cached_env)]
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            conditions.append(("PYTHONDONTWRITEBYTECODE=1 as inherited", clean_env()))

        out(
            f"STARTUP  `python -m pytest --co -q -p no:cacheprovider` on {TESTS_FILES} files x {TESTS_PER_FILE} tests "
            f"= {TESTS_FILES * TESTS_PER_FILE} tests; sys.executable, PYTEST_*/PYTHONPATH cleared; "
            f"{reps} runs each, interleaved, alternating order; medians"
        )
        out("  condition                                 wall: flag off  -p no:swarmgate  ratio   | CPU ratio  target")
        for name, env in conditions:
            r = startup_condition(root, env, reps)
            verdict = "ok" if r.ratio <= TARGET_RATIO else "OVER"
            out(
                f"  {name:<40}  {fmt_s(r.wall_on)} s         {fmt_s(r.wall_off)} s          {r.ratio:.3f}   | "
                f"{r.cpu_ratio:.3f}      <= {TARGET_RATIO} (wall)  {verdict}"
            )
        on = module_check(root, cached_env, [])
        off = module_check(root, cached_env, ["-p", "no:swarmgate"])
        loaded = on["loaded"]
        ok = loaded["pytest_swarmgate.plugin"] and not loaded["anthropic"] and not loaded["unidiff"]
        listed = ", ".join(f"{m} {'yes' if v else 'no'}" for m, v in loaded.items())
        out(f"  imported with the flag off (sys.modules after pytest.main): {listed}  -> {'ok' if ok else 'PROBLEM'}")
        out(
            "  with -p no:swarmgate: pytest_swarmgate.plugin "
            f"{'yes' if off['loaded']['pytest_swarmgate.plugin'] else 'no'}"
            f"; `import pytest_swarmgate.plugin` after pytest: {plugin_import_ms(cached_env):.1f} ms (median of 5 "
            "fresh processes)"
        )
    return lines


# --------------------------------------------------------------------------- main


def header() -> list[str]:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    versions = f"python {platform.python_version()}  pytest {version('pytest')}  anthropic {version('anthropic')}"
    return [
        f"pytest-swarmgate bench  {now}  {versions}  httpx2 {version('httpx2')}",
        f"machine: {os.cpu_count()} CPUs, {platform.machine()}, load average {load} (1/5/15 min, at start)",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="review runs per concurrency (default 5)")
    parser.add_argument("--reps", type=int, default=20, help="pytest --co runs per side (default 20)")
    parser.add_argument("--only", choices=("review", "startup"), help="run one part only")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.reps < 1:
        parser.error("--runs and --reps must be at least 1")
    started = time.perf_counter()
    for line in header():
        print(line, flush=True)
    if args.only in (None, "review"):
        print(flush=True)
        for line in bench_review(args.runs):
            print(line, flush=True)
    if args.only in (None, "startup"):
        print(flush=True)
        for line in bench_startup(args.reps):
            print(line, flush=True)
    print(
        f"\nbench time {time.perf_counter() - started:.0f} s; load average at end "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
