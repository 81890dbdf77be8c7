"""What the voters see with context (issue 19), measured on real histories: no API call but the stub's.

    python bench/context_bench.py history REPO_DIR... [--commits 300] [--budget 20000]
    python bench/context_bench.py cost REPO_DIR [--files 10] [--budget 20000]
    python bench/context_bench.py plan REPO_DIR OLD NEW      # planning time and peak memory, off vs default
    python bench/context_bench.py outline [--lines 5000]     # seconds to outline a generated file per language

`history`: the last N first-parent commits of HEAD that touch Python, one `git diff -M <parent>
<commit>` each (the gate's flags), planned as the gate plans it with the texts from git. Per mode:
the share of Python hunks whose enclosing def/class header reaches the voter (`off`: in the hunk
or in git's `@@` line, as today), the new-file lines the voter sees over the lines of the files it
judges, context characters per section (median, p95), and the seconds to build a commit's context.

`cost`: the most recent first-parent commit that changes exactly `--files` files, reviewed through
the real path (`pytest --swarm-review`, the SDK over HTTP to the stub, latency 0.5 s) in a local
clone, `--swarm-context=off` against the default: tokens as the stub's prompt cache counts them
(characters / 4), list-price cost at $3 / MTok input, $3.75 cache write, $0.30 cache read, $15
output, and wall time. The clone, the cache and HOME live in a temporary directory.

`plan`: `git diff OLD NEW` planned (parse, sections, the held check, the context) in a fresh
process per mode, with wall time and peak memory (max RSS).

`outline`: a generated file of about `--lines` lines per language (a type and its methods, repeated
with new names), outlined once cold (the grammar's import and parser included) and then the best of
five: seconds, scopes found, and the parser that found them (tree-sitter, or the brace scan).

Nothing from the repositories is run or imported: the gate reads their files through git.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from pytest_swarmgate.core.context import build_contexts
from pytest_swarmgate.core.context.scopes import PYTHON, Outline, outline
from pytest_swarmgate.core.diff import parse_diff, sections_of
from pytest_swarmgate.core.model import Section
from pytest_swarmgate.core.texts import GitTexts, Unknown, parse_hunks

GIT_DIFF = ["-c", "core.quotepath=off", "diff", "--no-color", "--no-ext-diff", "--no-textconv", "-M",
            "--src-prefix=a/", "--dst-prefix=b/", "--no-relative", "--submodule=short"]  # fmt: skip
MODES = ("scope", "file", "repo")
PRICES = {"input_tokens": 3.0, "cache_write_tokens": 3.75, "cache_read_tokens": 0.30, "output_tokens": 15.0}
_PART = re.compile(r"^## .*?: (.+), (old|new) lines \d+-\d+ \(")
_NUMBERED = re.compile(r"^\s*(\d+) \| ")


def git(git_dir: str, *args: str) -> bytes:
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], capture_output=True, check=True).stdout


def name_of(git_dir: str) -> str:
    parts = [p for p in Path(git_dir).resolve().parts if p not in ("repo", ".git")]
    return parts[-1].split("+")[-1]


def commits(git_dir: str, count: int) -> list[tuple[str, str]]:
    """(parent, commit) of the last `count` first-parent commits that touch a Python file."""
    out = git(git_dir, "log", "--first-parent", "--format=%H %P", f"-n{count}", "HEAD", "--", "*.py").decode()
    return [(line.split()[1], line.split()[0]) for line in out.splitlines() if len(line.split()) >= 2]


def plan_sections(git_dir: str, old: str, new: str) -> tuple[list[Section], list]:  # type: ignore[type-arg]
    text = git(git_dir, *GIT_DIFF, old, new, "--").decode("utf-8", "replace")
    files = parse_diff(text)
    sections, _ = sections_of(files, budget=60_000)
    return sections, files


def shown(section: Section) -> set[int]:
    """New-file lines of the section's own path that its context shows."""
    lines: set[int] = set()
    current = False
    for row in section.context.text.split("\n") if section.context else ():
        head = _PART.match(row)
        if head or row.startswith("## "):
            current = bool(head) and head.group(1) == section.path and head.group(2) == "new"  # type: ignore[union-attr]
            continue
        number = _NUMBERED.match(row)
        if current and number:
            lines.add(int(number.group(1)))
    return lines


def def_line(lines: Sequence[str], start: int, end: int) -> int:
    """The `def`/`class` line of a definition whose header spans start..end (decorators first)."""
    for n in range(start, end + 1):
        if re.match(r"\s*(async\s+def|def|class)\b", lines[n - 1]):
            return n
    return start


def header_hits(section: Section, new_text: str, seen: set[int]) -> tuple[int, int, int]:
    """(hunks with an enclosing definition, how many show its header today, how many with the context)."""
    tree = outline(section.path, new_text)
    if tree.parser != PYTHON or tree.error:
        return 0, 0, 0
    lines = new_text.split("\n")
    total = today = now = 0
    for hunk in parse_hunks(section.text):
        first = hunk.added[0] if hunk.added else hunk.new_start
        chain = [s for s in tree.enclosing(first) if s.kind != "block"]
        if not chain:
            continue
        header = def_line(lines, chain[-1].start, chain[-1].header_end)
        in_hunk = hunk.new_start <= header < hunk.new_start + len(hunk.new)
        trailer = _trailer(section.text, hunk.old_start, hunk.new_start)
        in_at = bool(trailer) and lines[header - 1].strip().startswith(trailer.strip())
        total += 1
        today += in_hunk or in_at
        now += in_hunk or in_at or header in seen
    return total, today, now


def _trailer(text: str, old_start: int, new_start: int) -> str:
    """What git wrote after the `@@ ... @@` of the hunk starting at these lines (its function context)."""
    for row in text.split("\n"):
        m = re.match(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@ ?(.*)$", row)
        if m and (int(m.group(1)), int(m.group(2))) == (old_start, new_start):
            return m.group(3)
    return ""


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class Tally:
    """The figures of one repository and mode."""

    def __init__(self) -> None:
        self.hunks = self.today = self.now = 0
        self.seen_lines = self.diff_lines = self.file_lines = 0
        self.chars: list[int] = []
        self.seconds: list[float] = []

    def line(self, label: str) -> str:
        share = f"{self.now / self.hunks:.1%}" if self.hunks else "-"
        today = f"{self.today / self.hunks:.1%}" if self.hunks else "-"
        sees = self.seen_lines / self.file_lines if self.file_lines else 0
        diff = self.diff_lines / self.file_lines if self.file_lines else 0
        return (
            f"{label:<18} hunks {self.hunks:>5}  header today {today:>6}  with context {share:>6}  "
            f"lines seen {diff:.1%} -> {sees:.1%}  chars/section median {statistics.median(self.chars or [0]):>6.0f} "
            f"p95 {pct(self.chars, 0.95):>6.0f}  build s median {statistics.median(self.seconds or [0]):.3f} "
            f"max {max(self.seconds or [0]):.3f}"
        )


def measure_commit(git_dir: str, parent: str, commit: str, mode: str, budget: int, tally: Tally) -> None:
    sections, files = plan_sections(git_dir, parent, commit)
    if not sections:
        return
    start = time.perf_counter()
    built = build_contexts(sections, files, GitTexts(git_dir, parent, commit), mode, budget)  # type: ignore[arg-type]
    tally.seconds.append(time.perf_counter() - start)
    texts = GitTexts(git_dir, parent, commit)
    for section in built:
        tally.chars.append(len(section.context.text) if section.context else 0)
        if not section.path.endswith(".py") or section.change == "deleted":
            continue
        try:
            new_text = texts.new(section.path) or ""
        except Unknown:
            continue
        seen = shown(section)
        diff_lines = {n for h in parse_hunks(section.text) for n in range(h.new_start, h.new_start + len(h.new))}
        total, today, now = header_hits(section, new_text, seen)
        tally.hunks, tally.today, tally.now = tally.hunks + total, tally.today + today, tally.now + now
        tally.file_lines += len(new_text.split("\n"))
        tally.diff_lines += len(diff_lines)
        tally.seen_lines += len(diff_lines | seen)


def history(args: argparse.Namespace) -> int:
    for git_dir in args.git_dirs:
        pairs = commits(git_dir, args.commits)
        for mode in args.modes:
            tally = Tally()
            for parent, commit in pairs:
                measure_commit(git_dir, parent, commit, mode, args.budget, tally)
            print(tally.line(f"{name_of(git_dir)} {mode}"), flush=True)
    return 0


# --- cost through the real path ------------------------------------------------------------


def pick_commit(git_dir: str, files: int) -> tuple[str, str]:
    """The most recent first-parent commit of HEAD that changes exactly `files` files."""
    out = git(git_dir, "log", "--first-parent", "--format=%H %P", "-n2000", "HEAD").decode()
    for line in out.splitlines():
        commit, parent = line.split()[:2]
        names = git(git_dir, "diff", "--name-only", parent, commit).decode().split()
        if len(names) == files:
            return parent, commit
    raise SystemExit(f"no commit changes exactly {files} files in the last 2000")


def run_gate(clone: Path, home: Path, base: str, extra: Iterable[str], report: Path, url: str) -> dict:  # type: ignore[type-arg]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ANTHROPIC_", "GITHUB_"))}
    env |= {"HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "ANTHROPIC_BASE_URL": url,
            "ANTHROPIC_API_KEY": "stub-not-a-secret", "GIT_CONFIG_GLOBAL": os.devnull}  # fmt: skip
    ini = home / "empty.ini"
    ini.write_text("[pytest]\n")
    cmd = [sys.executable, "-m", "pytest", "-c", str(ini), "--rootdir", str(clone), "--noconftest", "-p",
           "no:cacheprovider", "--swarm-review", "--swarm-only", f"--swarm-base={base}", "--swarm-no-cache",
           f"--swarm-json={report}", "-q", *extra]  # fmt: skip
    subprocess.run(cmd, cwd=clone, env=env, capture_output=True, check=False)
    return json.loads(report.read_text())  # type: ignore[no-any-return]


def cost(args: argparse.Namespace) -> int:
    from pytest_swarmgate.testing import Script, StubServer

    parent, commit = pick_commit(args.git_dir, args.files)
    print(f"{name_of(args.git_dir)} {commit[:12]} ({args.files} files), N=5, stub latency 0.5 s")
    with tempfile.TemporaryDirectory() as tmp, StubServer(Script(), latency=0.5) as stub:
        home, clone = Path(tmp) / "home", Path(tmp) / "clone"
        home.mkdir()
        subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", args.git_dir, str(clone)], check=True)
        subprocess.run(["git", "-C", str(clone), "checkout", "-q", "--detach", commit], check=True)
        budget = [f"--swarm-context-budget={args.budget}"] if args.budget else []
        rows = {}
        for label, extra in (("off", ["--swarm-context=off"]), ("default", budget)):
            data = run_gate(clone, home, parent, extra, Path(tmp) / f"{label}.json", stub.url)
            tokens = data["totals"]["tokens"]
            dollars = sum(tokens[k] * p for k, p in PRICES.items()) / 1e6
            inputs = sum(tokens[k] * PRICES[k] for k in PRICES if k != "output_tokens") / 1e6
            rows[label] = (inputs, data["run"]["wall_time_s"])
            print(
                f"  {label:<8} sections {data['totals']['sections']:>3} calls {data['totals']['calls']:>3} "
                f"in={tokens['input_tokens']} cache_write={tokens['cache_write_tokens']} "
                f"cache_read={tokens['cache_read_tokens']} out={tokens['output_tokens']}  "
                f"input ${inputs:.4f} total ${dollars:.4f}  wall {data['run']['wall_time_s']:.2f}s"
            )
        ratio, wall = rows["default"][0] / rows["off"][0], rows["default"][1] / rows["off"][1]
        print(f"  default / off: input cost x{ratio:.2f}, wall x{wall:.2f}")
    return 0


# --- planning time and memory ----------------------------------------------------------------


def plan_once(args: argparse.Namespace) -> int:
    """One planning run in this process (the child of `plan`): prints seconds and max RSS."""
    from pytest_swarmgate.core.held import held_changes

    start = time.perf_counter()
    sections, files = plan_sections(args.git_dir, args.old, args.new)
    everything, unread = sections_of(files)
    texts = GitTexts(args.git_dir, args.old, args.new)
    held_changes(everything, unread, texts=texts, ci_files=())
    built = build_contexts(sections, files, texts, args.mode, args.budget)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    chars = sum(len(s.context.text) for s in built if s.context)
    print(json.dumps({"sections": len(built), "seconds": seconds, "rss_mb": rss, "context_chars": chars}))
    return 0


def plan(args: argparse.Namespace) -> int:
    print(f"{name_of(args.git_dir)} git diff {args.old} {args.new}")
    for mode in ("off", *MODES):
        cmd = [sys.executable, __file__, "plan-once", args.git_dir, args.old, args.new, "--mode", mode,
               "--budget", str(args.budget)]  # fmt: skip
        data = json.loads(subprocess.run(cmd, capture_output=True, check=True, text=True).stdout)
        print(
            f"  {mode:<6} sections {data['sections']} planning {data['seconds']:.2f}s peak RSS {data['rss_mb']:.0f} MB "
            f"context {data['context_chars'] / 1e6:.1f}M chars"
        )
    return 0


# --- outline time per language ------------------------------------------------------------

# One unit per language, `{n}` numbering its names: a type, a method with a two-line signature, a function.
UNITS = {
    "go": "type Server{n} struct {{\n\tmu sync.Mutex\n}}\n\nfunc (s *Server{n}) Handle(w http.ResponseWriter,\n"
    "\tr *http.Request) error {{\n\tif r == nil {{\n\t\treturn nil\n\t}}\n\treturn s.next{n}(w, r)\n}}\n\n",
    "js": "class Server{n} extends Base {{\n  handle(req,\n      res) {{\n    if (!req) {{ return null; }}\n"
    "    return this.next(req, res);\n  }}\n}}\nconst route{n} = async (req) => {{\n  return req.body;\n}};\n\n",
    "ts": "export class Server{n} implements Handler {{\n  handle(req: Request,\n      res: Response): void {{\n"
    "    if (!req) {{ return; }}\n    this.next(req, res);\n  }}\n}}\nexport interface Opts{n} {{ port: number }}\n\n",
    "c": "struct conn{n} {{\n  int fd;\n}};\n\nstatic int\nhandle{n}(struct conn{n} *c,\n         const char *buf)\n"
    "{{\n  if (!c) {{\n    return -1;\n  }}\n  return write(c->fd, buf, 1);\n}}\n\n",
    "java": "class Server{n} extends Base {{\n  @Override\n  public void handle(Request req,\n      Response res) {{\n"
    "    if (req == null) {{ return; }}\n    next(req, res);\n  }}\n}}\n\n",
    "sh": 'handle_{n}() {{\n  local f="$1"\n  if [ -z "$f" ]; then\n    return 1\n  fi\n  cat "$f"\n}}\n\n',
    "rs": "impl Server{n} {{\n    fn handle(&self,\n        req: &Request) -> Result<()> {{\n"
    "        if req.empty() {{\n            return Ok(());\n        }}\n        self.next(req)\n    }}\n}}\n\n",
}


def generated(ext: str, lines: int) -> str:
    """A file of about `lines` lines of the language, its unit repeated with new names."""
    unit = UNITS[ext]
    return "".join(unit.format(n=n) for n in range(max(1, lines // unit.format(n=0).count("\n"))))


def outline_times(args: argparse.Namespace) -> int:
    for ext in UNITS:
        text = generated(ext, args.lines)
        cold, tree = _timed(f"gen.{ext}", text)
        best = min(_timed(f"gen.{ext}", text)[0] for _ in range(5))
        print(
            f"  .{ext:<5} {text.count(chr(10)):>6} lines {len(text) / 1e3:>5.0f} kB  cold {cold * 1e3:6.1f} ms  "
            f"warm {best * 1e3:6.1f} ms  {len(tree.scopes):>5} scopes  by {tree.parser}"
        )
    return 0


def _timed(path: str, text: str) -> tuple[float, Outline]:
    start = time.perf_counter()
    tree = outline(path, text)
    return time.perf_counter() - start, tree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    h = sub.add_parser("history")
    h.add_argument("git_dirs", nargs="+")
    h.add_argument("--commits", type=int, default=300)
    h.add_argument("--budget", type=int, default=20_000)
    h.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    c = sub.add_parser("cost")
    c.add_argument("git_dir")
    c.add_argument("--files", type=int, default=10)
    c.add_argument("--budget", type=int, default=0, help="0: the option's default")
    for name in ("plan", "plan-once"):
        p = sub.add_parser(name)
        p.add_argument("git_dir")
        p.add_argument("old")
        p.add_argument("new")
        p.add_argument("--budget", type=int, default=20_000)
        p.add_argument("--mode", default="repo", choices=("off", *MODES))
    o = sub.add_parser("outline")
    o.add_argument("--lines", type=int, default=5000)
    args = parser.parse_args()
    if args.command == "outline":
        return outline_times(args)
    if shutil.which("git") is None:
        raise SystemExit("git is needed")
    command = {"history": history, "cost": cost, "plan": plan, "plan-once": plan_once}[args.command]
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
