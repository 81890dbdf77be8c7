"""Definitions read by tree-sitter: per language, the fallback when a grammar is missing, hostile input, and
one run through the real path (git, `pytest --swarm-review`, the SDK over HTTP to the stub).

Every source here is a string; nothing in it is run.
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import git

from pytest_swarmgate.core.context import treesitter
from pytest_swarmgate.core.context.scopes import BRACES, MAX_HEADER_LINES, TREE_SITTER, language, outline
from pytest_swarmgate.testing import Reply, Script


def scopes(path: str, text: str) -> list[tuple[str, str, int, int, int]]:
    tree = outline(path, text)
    assert tree.parser.startswith("tree-sitter (") and tree.error is None, tree.parser
    return [(s.name, s.kind, s.start, s.header_end, s.end) for s in tree.scopes]


GO = """package srv

// Server serves.
type Server struct {
	mu sync.Mutex
}

type (
	ID      int
	Handler interface {
		Serve()
	}
)

func (s *Server) Handle(w http.ResponseWriter,
	r *http.Request) {
	done := func() {}
	done()
}

func New[T any](x T) *Server { return nil }
"""


def test_go_types_functions_and_methods_named_by_their_receiver() -> None:
    assert scopes("srv/handle.go", GO) == [
        ("Server", "class", 4, 4, 6),
        ("ID", "class", 9, 9, 9),
        ("Handler", "class", 10, 10, 12),
        ("Server.Handle", "def", 15, 16, 19),  # the header runs to the `{` on the signature's second line
        ("New", "def", 21, 21, 21),
    ]
    assert outline("srv/handle.go", GO).parser == TREE_SITTER.format("go") == "tree-sitter (go)"


JS = """export default class Router extends Base {
  static make = () => new Router();
  handle(req,
         res) {
    if (!req) { return '}'; }
  }
}
const route = async (req) => {
  return req.body;
};
exports.handler = function (event) {};
const api = { get: function () {}, put() {} };
"""


def test_javascript_classes_methods_and_functions_bound_to_a_name() -> None:
    expected = [
        ("Router", "class", 1, 1, 7),
        ("Router.make", "def", 2, 2, 2),
        ("Router.handle", "def", 3, 4, 6),
        ("route", "def", 8, 8, 10),
        ("handler", "def", 11, 11, 11),
        ("get", "def", 12, 12, 12),
        ("put", "def", 12, 12, 12),
    ]
    for path in ("web/router.js", "web/router.mjs", "web/router.cjs", "web/router.jsx"):
        assert scopes(path, JS) == expected


TS = """@Component({selector: 'app'})
export class Panel<T> implements View {
  @HostListener('click')
  onClick(event: MouseEvent,
          extra: string): void {
  }
}
export interface View { render(): void }
type Id = { value: string }
enum Mode { A, B }
namespace Util { export function pad(s: string) { return s; } }
"""


def test_typescript_decorators_interfaces_types_and_namespaces() -> None:
    assert scopes("ui/panel.ts", TS) == [
        ("Panel", "class", 1, 2, 7),  # the class's decorator is its first line
        ("Panel.onClick", "def", 3, 5, 6),  # so is a method's
        ("View", "class", 8, 8, 8),
        ("Id", "class", 9, 9, 9),
        ("Mode", "class", 10, 10, 10),
        ("Util", "class", 11, 11, 11),
        ("Util.pad", "def", 11, 11, 11),
    ]
    assert outline("ui/panel.mts", TS).parser == "tree-sitter (typescript)"


def test_tsx_reads_markup_inside_a_component() -> None:
    tsx = "export function Panel({ title }: Props) {\n  return <div className='x'>{title}</div>;\n}\n"
    tsx += "const Row = (p: RowProps) => (\n  <li>{p.name}</li>\n);\n"
    assert scopes("ui/panel.tsx", tsx) == [("Panel", "def", 1, 1, 3), ("Row", "def", 4, 4, 6)]
    assert outline("ui/panel.tsx", tsx).parser == "tree-sitter (tsx)"


C = """#include <stdio.h>

struct conn {
  int fd;
};
typedef struct { int y; } point;
struct conn *lookup(int fd);

static int *
handle(struct conn *c,
       const char *buf)
{
  struct conn copy;
  return 0;
}
"""


def test_c_function_definitions_and_structs_with_a_body() -> None:
    # A prototype (`lookup`) and a struct only named (`struct conn copy;`) define nothing.
    assert scopes("net/conn.c", C) == [
        ("conn", "class", 3, 3, 5),
        ("point", "class", 6, 6, 6),
        ("handle", "def", 9, 12, 15),  # return type, name, two-line parameters, `{` alone on line 12
    ]
    assert outline("net/conn.h", C).parser == "tree-sitter (c)"


JAVA = """package app;

@Service
public class Orders extends Base {
  @Override
  public List<Order> find(String customer,
      int limit) {
    return db.query(customer, limit);
  }
  Orders() {}
  interface Store { void save(Order o); }
  enum State { OPEN; boolean done() { return false; } }
}
"""


def test_java_classes_interfaces_enums_methods_and_constructors() -> None:
    assert scopes("src/Orders.java", JAVA) == [
        ("Orders", "class", 3, 4, 13),  # the annotation belongs to the class
        ("Orders.find", "def", 5, 7, 9),
        ("Orders.Orders", "def", 10, 10, 10),
        ("Orders.Store", "class", 11, 11, 11),
        ("Orders.Store.save", "def", 11, 11, 11),
        ("Orders.State", "class", 12, 12, 12),
        ("Orders.State.done", "def", 12, 12, 12),
    ]


SHELL = """#!/bin/sh
set -eu
deploy() {
  echo "}"
}
function cleanup
{
  rm -f "$TMPDIR/marker"
}
"""


def test_shell_functions_in_scripts_with_an_extension_or_a_shebang() -> None:
    expected = [("deploy", "def", 3, 3, 5), ("cleanup", "def", 6, 7, 9)]
    assert scopes("ops/deploy.sh", SHELL) == scopes("ops/deploy.bash", SHELL) == expected
    assert scopes("ops/deploy", SHELL) == expected
    assert scopes("ops/run", SHELL.replace("#!/bin/sh", "#!/usr/bin/env bash")) == expected
    assert language("ops/run", "#!/bin/zsh") == BRACES  # no grammar for zsh: the scan, saying so


def test_a_long_signature_is_cut_at_the_header_limit() -> None:
    params = "".join(f"\tp{i} int,\n" for i in range(30))
    go = f"package x\n\nfunc Long(\n{params}) {{\n\treturn\n}}\n"
    (scope,) = outline("x.go", go).scopes
    assert (scope.start, scope.header_end, scope.end) == (3, 3 + MAX_HEADER_LINES - 1, 36)


def test_a_tree_with_errors_still_gives_the_definitions_it_has() -> None:
    broken = GO.replace("\tdone()\n", "\tdone(((\n")
    tree = outline("srv/handle.go", broken)
    assert tree.parser == "tree-sitter (go)" and tree.error is None
    assert "Server.Handle" in [s.name for s in tree.scopes]


def test_a_missing_grammar_falls_back_to_the_brace_scan_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> object:
        raise ImportError(f"No module named {treesitter.GRAMMARS[name].module!r}")

    monkeypatch.setattr(treesitter, "load", missing)
    tree = outline("srv/handle.go", GO)
    assert tree.parser == "brace scan (fallback: tree-sitter (go) is not installed)"
    assert "Handle" in [s.name for s in tree.scopes] and {s.kind for s in tree.scopes} == {"block"}


def test_a_tree_too_broken_to_give_any_definition_falls_back_to_the_brace_scan() -> None:
    # An unclosed parameter list: tree-sitter finds no declaration in it, the scan finds the block.
    tree = outline("web/a.js", "function check( {\n  return true;\n}\n")
    assert tree.parser == "brace scan (fallback: tree-sitter (javascript) found no definition in a tree with errors)"
    assert [(s.name, s.start, s.end) for s in tree.scopes] == [("check", 1, 3)]
    assert outline("empty.go", "package x\n\nvar a = 1\n").parser == "tree-sitter (go)"  # no error: no fallback


def test_rust_keeps_the_brace_scan() -> None:
    tree = outline("src/lib.rs", "impl Server {\n    fn handle(&self) {\n    }\n}\n")
    assert tree.parser == BRACES
    assert [(s.name, s.start, s.end) for s in tree.scopes] == [("Server", 1, 4), ("handle", 2, 3)]


# A quadratic cost shows at a quarter of a megabyte as surely as at one, at a quarter of the linear cost.
N = 250_000
HOSTILE = {
    "1 MB single line": "x = 1; " * (999_000 // 7),  # just under the largest text parsed (parts.MAX_PARSE_CHARS)
    "nested braces": "{" * N,
    "nested functions": "function a(){" * (N // 13),
    "nested closures": "func f() { x := func() {" * (N // 24),
    "closed nesting": "function f() {" + "{" * (N // 2) + "}" * (N // 2) + "}",
    "long identifier": "a" * N + "{",
    "NUL bytes": "\0" * N,
    "replacement characters": "\ufffd" * (N // 3),
    "open parentheses": "(" * N,
    "escaped quotes": '"\\' * (N // 2) + "{",
    "empty comments": "/**/" * (N // 4) + "{",
    "arrow prefixes": "a=(" * (N // 3) + "{",
    "lone surrogates": "\udcff{" * (N // 2),
}


@pytest.mark.parametrize("ext", ["go", "js", "ts", "tsx", "c", "java", "sh", "rs"])
def test_hostile_text_never_raises_and_takes_about_a_second_at_most(ext: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A shorter deadline than the real 1 s: error recovery on some of these would use all of it, every time.
    monkeypatch.setattr(treesitter, "DEADLINE_SECONDS", 0.3)
    slowest = ""
    worst = 0.0
    for what, text in HOSTILE.items():
        start = time.perf_counter()
        tree = outline(f"x.{ext}", text)
        took = time.perf_counter() - start
        if took > worst:
            worst, slowest = took, what
        assert isinstance(tree.scopes, tuple)
        assert tree.error is None or "within" in tree.error  # only the parse deadline stops it
    # The parse stops at its deadline; a fallback adds the brace scan (as for Rust, up to ~0.5 s on these);
    # the rest of the margin is for a loaded CI machine.
    assert worst < 2.0, f"{slowest}: {worst:.2f} s"


def test_a_parse_stopped_at_the_deadline_leaves_the_next_file_parsed_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(treesitter, "DEADLINE_SECONDS", 0.001)
    stopped = outline("x.go", "func f() { x := func() {" * 20_000)
    assert stopped.scopes == () and stopped.error == "does not parse by tree-sitter (go) within 0.001 s"
    monkeypatch.undo()
    assert [s.name for s in outline("srv/handle.go", GO).scopes] == ["Server", "ID", "Handler", "Server.Handle", "New"]


def test_the_grammars_load_only_with_a_file_of_their_language(pytester: pytest.Pytester) -> None:
    code = (
        "import sys\nfrom pytest_swarmgate.core.context.scopes import outline\n"
        "outline('a.py', 'def f():\\n    pass\\n'); outline('a.rs', 'fn f() {}\\n')\n"
        "loaded = lambda: sorted({m.split('.')[0] for m in sys.modules if m.startswith('tree_sitter')})\n"
        "print('before', loaded())\n"
        "outline('a.go', 'package a\\nfunc f() {}\\n')\n"
        "print('after', loaded())\n"
    )
    result = pytester.run("python", "-c", code)
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["before []", "after ['tree_sitter', 'tree_sitter_go']"])


# --- through the real path ------------------------------------------------------------------

FILLER = "".join(f"\tstep{i} := {i}\n\t_ = step{i}\n" for i in range(20))
HANDLER = (
    "package srv\n\n"
    "func (s *Server) Serve(w http.ResponseWriter, // PUBLIC-ROUTE-MARKER\n"
    "\tr *http.Request) {\n"
    f"{FILLER}"
    '\trows := s.db.Query("SELECT id FROM orders WHERE customer = ?", r.FormValue("c"))\n'
    "\tjson.NewEncoder(w).Encode(rows)\n"
    "}\n"
)
HANDLER_NEW = HANDLER.replace(
    '"SELECT id FROM orders WHERE customer = ?", r.FormValue("c")',
    '"SELECT id FROM orders WHERE customer = " + r.FormValue("c")',
)


def test_a_go_section_shows_its_method_header_found_by_tree_sitter(pytester: pytest.Pytester, serve) -> None:
    stub = serve(Script().on_prompt("PUBLIC-ROUTE-MARKER", reply=Reply.verdict("UNSAFE")))
    repo = pytester.path
    git(repo, "init", "-q", "-b", "main")
    (repo / "srv").mkdir()
    (repo / "srv/serve.go").write_text(HANDLER)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "feature")
    (repo / "srv/serve.go").write_text(HANDLER_NEW)
    git(repo, "commit", "-qam", "feature")
    result = pytester.runpytest(
        "--swarm-review", "--swarm-only", "-p", "no:cacheprovider", "--swarm-base=main", "--swarm-context=scope", "-v"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["srv/serve.go: UNSAFE 5/5 (K=4)*", "    scope srv/serve.go new 3-47 (git HEAD) * chars"]
    )
    reached = [json.dumps(r.body) for r in stub.calls() if "PUBLIC-ROUTE-MARKER" in json.dumps(r.body)]
    assert len(reached) == 5
    assert all("## scope, by tree-sitter (go): srv/serve.go, new lines 3-47" in p for p in reached)
    assert not any("fallback" in p for p in reached)
