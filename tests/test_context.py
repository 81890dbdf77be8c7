"""The context builder, pure: what each section's voters see beside its diff, within the budget.

Every attack text here is data: file names and code strings that are parsed, never run.
"""

from __future__ import annotations

import dataclasses
import difflib
import textwrap
from collections.abc import Mapping

import pytest

from pytest_swarmgate.core.cache import vote_key
from pytest_swarmgate.core.context import ContextBuilder, build_contexts
from pytest_swarmgate.core.context.parts import FileText, excerpt, whole_chars
from pytest_swarmgate.core.context.scopes import BRACES, INDENT, PLAIN, PYTHON, brace_scopes, language, python_outline
from pytest_swarmgate.core.diff import parse_diff, sections_of
from pytest_swarmgate.core.model import Section, Voter
from pytest_swarmgate.core.prompt import messages, new_fence, section_block
from pytest_swarmgate.core.texts import NoTexts, Unknown


def file_diff(path: str, old: str | None, new: str | None, *, old_path: str | None = None) -> str:
    """A git diff of one file between two texts (None: the file does not exist on that side)."""
    a_path = old_path or path
    head = f"diff --git a/{a_path} b/{path}\n"
    if old_path:
        head += f"similarity index 90%\nrename from {old_path}\nrename to {path}\n"
    if old is None:
        head += "new file mode 100644\n"
    if new is None:
        head += "deleted file mode 100644\n"
    a = (old or "").splitlines(keepends=True)
    b = (new or "").splitlines(keepends=True)
    hunks = list(difflib.unified_diff(a, b, n=3))[2:]
    if not hunks:
        return head
    minus = f"a/{a_path}" if old is not None else "/dev/null"
    plus = f"b/{path}" if new is not None else "/dev/null"
    return head + f"--- {minus}\n+++ {plus}\n" + "".join(hunks)


class Source:
    """Old and new texts by path; a path missing is absent, an Unknown value is raised."""

    def __init__(self, old: Mapping[str, str | Unknown], new: Mapping[str, str | Unknown]) -> None:
        self.sides = {"old": dict(old), "new": dict(new)}
        self.reads: list[tuple[str, str]] = []

    def _get(self, side: str, path: str) -> str | None:
        self.reads.append((side, path))
        value = self.sides[side].get(path)
        if isinstance(value, Unknown):
            raise value
        return value

    def old(self, path: str) -> str | None:
        return self._get("old", path)

    def new(self, path: str) -> str | None:
        return self._get("new", path)

    def describe(self, path: str, side: str) -> str:
        return f"test {side}"


def contexts(
    changes: Mapping[str, tuple[str | None, str | None]],
    mode: str = "scope",
    budget: int = 20_000,
    source: object | None = None,
    extra_new: Mapping[str, str] | None = None,
) -> dict[str, Section]:
    """Every section of a diff made from `changes` (path -> (old, new)), with its context, by id."""
    diff = "".join(file_diff(p, o, n) for p, (o, n) in sorted(changes.items()))
    files = parse_diff(diff)
    sections, _ = sections_of(files)
    if source is None:
        old = {p: o for p, (o, _) in changes.items() if o is not None}
        new = {p: n for p, (_, n) in changes.items() if n is not None} | dict(extra_new or {})
        source = Source(old, new)
    built = build_contexts(sections, files, source, mode, budget)  # type: ignore[arg-type]
    return {s.id: s for s in built}


ORDERS_OLD = textwrap.dedent(
    '''\
    import sqlite3


    class Orders:
        """Orders of one shop."""

        def __init__(self, db):
            self.db = db

        @staticmethod
        @property
        def find(
            db,
            customer,
        ):
            if not customer.isalnum():
                raise ValueError(customer)
            rows = db.execute("SELECT id FROM orders WHERE customer = ?", (customer,))
            return rows.fetchall()

        def total(self):
            return 0
    '''
)
ORDERS_NEW = ORDERS_OLD.replace(
    '        rows = db.execute("SELECT id FROM orders WHERE customer = ?", (customer,))\n',
    '        rows = db.execute("SELECT id FROM orders WHERE customer = \'" + customer + "\'")\n',
)


def test_a_hunk_grows_to_its_enclosing_method_with_decorators_and_signature() -> None:
    section = contexts({"app/orders.py": (ORDERS_OLD, ORDERS_NEW)})["app/orders.py"]
    assert section.context is not None
    text = section.context.text
    # The class header, both decorators, the signature over four lines and the whole method.
    for line in ("class Orders:", "@staticmethod", "@property", "def find(", "customer,", "raise ValueError"):
        assert line in text
    assert "def total" not in text and "def __init__" not in text
    (scope, old) = section.context.parts
    assert (scope.kind, scope.path, scope.side, scope.source) == ("scope", "app/orders.py", "new", "test new")
    assert (scope.start, scope.end) == (4, 19)
    assert "## scope: app/orders.py, new lines 4-19 (test new)" in text
    assert '   18 |         rows = db.execute("SELECT id FROM orders WHERE customer = \'" + customer' in text
    assert ORDERS_NEW != ORDERS_OLD
    # The removed line's definitions in the old file: headers only.
    assert (old.kind, old.side, old.source) == ("scope", "old", "test old")
    assert "scope (old file): app/orders.py, old lines 4-15" in text


def test_the_whole_file_when_it_fits_and_scopes_when_it_does_not() -> None:
    change = {"app/orders.py": (ORDERS_OLD, ORDERS_NEW)}
    whole = contexts(change, mode="file")["app/orders.py"].context
    assert whole is not None and whole.parts[0].kind == "file"
    assert (whole.parts[0].start, whole.parts[0].end) == (1, len(ORDERS_NEW.splitlines()))
    assert "def total" in whole.text
    tight = contexts(change, mode="file", budget=whole.parts[0].chars - 1)["app/orders.py"].context
    assert tight is not None and tight.parts[0].kind == "scope"
    assert "def total" not in tight.text


@pytest.mark.parametrize("lines", [0, 1, 9, 99_999, 100_000, 123_456])
def test_the_whole_file_is_measured_as_its_excerpt_counts(lines: int) -> None:
    text = FileText("d\u00e9j\u00e0/a.py", "new", "".join(f"{'x' * (n % 7)}\n" for n in range(lines)), "git HEAD")
    form = excerpt("file", text, [(1, len(text.lines))], title="whole file")
    assert whole_chars(text) == (form.part.chars if form else 0)


def test_what_does_not_fit_is_named() -> None:
    context = contexts({"app/orders.py": (ORDERS_OLD, ORDERS_NEW)}, budget=300)["app/orders.py"].context
    assert context is not None
    assert [(p.kind, p.side) for p in context.parts] == [("scope", "new")]
    assert "scope (headers): app/orders.py, new lines 4-15" in context.text and "raise ValueError" not in context.text
    assert context.notes == (
        "context cut at the budget of 300 characters: 1 scope left out (old scope of app/orders.py)",
        "shortened to fit the budget: scope of app/orders.py",
    )
    assert sum(p.chars for p in context.parts) <= 300
    nothing = contexts({"app/orders.py": (ORDERS_OLD, ORDERS_NEW)}, budget=20)["app/orders.py"].context
    assert nothing is not None and nothing.parts == ()
    assert nothing.notes[0].startswith("context cut at the budget of 20 characters: 2 scopes left out (scope of")
    assert "## note: context cut at the budget" in nothing.text


def test_a_file_that_does_not_parse_gets_diff_only_context_and_a_note() -> None:
    broken = ORDERS_NEW.replace("def total(self):", "def total(self:")
    section = contexts({"app/orders.py": (ORDERS_OLD, broken), "app/b.py": ("x = 1\n", "x = 2\n")})["app/orders.py"]
    context = section.context
    assert context is not None
    assert [p.kind for p in context.parts] == ["map"]
    assert context.notes == (
        "app/orders.py (new, test new) does not parse as Python (line 21: '(' was never closed): "
        "diff-only context for this section",
    )


@pytest.mark.parametrize(
    "text",
    [
        "(" * 400 + ")" * 400,  # nesting the parser refuses
        "x = 1\0\n",  # a NUL byte
        "def f(:\n",
        "\ufeffdef f():\n    return '\\d'\n",  # an invalid escape: a SyntaxWarning that -W error would raise
    ],
)
def test_bad_python_never_crashes_the_builder(text: str) -> None:
    section = contexts({"app/x.py": (None, text)})["app/x.py"]
    assert section.context is None or all(p.kind != "scope" or p.end >= p.start for p in section.context.parts)


def test_unknown_text_is_a_note_and_no_repository_is_none() -> None:
    unknown = Source({"a.py": Unknown("a.py", "binary content")}, {"a.py": Unknown("a.py", "over 4 bytes (not read)")})
    section = contexts({"a.py": ("x = 1\n", "x = 2\n")}, source=unknown)["a.py"]
    assert section.context is not None
    assert section.context.notes == (
        "a.py (new): over 4 bytes (not read): diff-only context for it",
        "a.py (old): binary content: diff-only context for it",
    )
    # No repository at all: the run notes it once (runner.py), no section repeats it.
    assert contexts({"a.py": ("x = 1\n", "x = 2\n")}, source=NoTexts())["a.py"].context is None


def test_an_added_file_needs_no_repository_its_text_is_in_the_diff() -> None:
    """Its scopes would repeat the diff; its definitions serve the other sections, read from the diff."""
    helper = "def run(cmd):\n    x = 1\n    y = 2\n    return cmd\n"
    caller = "from tools.lib import run\n\n\ndef main(argv):\n    return run(argv[1])\n"
    built = contexts({"tools/lib.py": (None, helper), "tools/main.py": (None, caller)}, "repo", source=NoTexts())
    own = built["tools/lib.py"].context
    assert own is not None and all(p.kind != "scope" for p in own.parts)
    assert [(p.kind, p.name, p.source) for p in own.parts if p.kind == "caller"] == [("caller", "run", "diff")]
    other = built["tools/main.py"].context
    assert other is not None
    assert [(p.kind, p.path, p.source) for p in other.parts if p.kind == "definition"] == [
        ("definition", "tools/lib.py", "diff")
    ]
    assert "tools/lib.py (added, +4 -0): changes run" in other.text


def test_a_pure_rename_shows_what_it_makes_importable() -> None:
    payload = "import os\nos.system('touch ' + os.path.join(os.environ['TMPDIR'], 'marker'))\n"
    diff = file_diff("app/plugin.py", payload, payload, old_path="notes/evil.txt")
    files = parse_diff(diff)
    sections, _ = sections_of(files)
    source = Source({"notes/evil.txt": payload}, {"app/plugin.py": payload})
    (section,) = build_contexts(sections, files, source, "scope", 20_000)
    assert section.context is not None
    (part,) = section.context.parts
    assert (part.kind, part.path, part.side, part.start, part.end) == ("file", "app/plugin.py", "new", 1, 2)
    assert "os.system('touch ' + os.path.join(" in section.context.text
    whole = section.context.parts[0].chars
    (small,) = build_contexts(sections, files, source, "scope", whole - 1)
    assert small.context is not None and small.context.parts[0].end < 2
    assert "file content (first 1 of 2 lines; the rest left out at the budget)" in small.context.text


def test_the_map_lists_every_file_and_marks_the_section() -> None:
    # The map names what the diff names: definition lines it changes (and git's `@@` trailers).
    changes = {
        f"pkg/m{i:02}.py": (f"def f{i}(a):\n    return a\n", f"def f{i}(a, b):\n    return a\n") for i in range(30)
    }
    built = contexts(changes)
    context = built["pkg/m05.py"].context
    assert context is not None
    assert "## map of the pull request: 30 changed files" in context.text
    assert "pkg/m05.py (modified, +1 -1): changes f5  <- this section" in context.text
    assert "pkg/m29.py (modified, +1 -1): changes f29" in context.text
    # Cut at a quarter of the budget, nearest by path first, and the cut is named.
    tight = contexts(changes, budget=2400)["pkg/m05.py"].context
    assert tight is not None
    heading = next(line for line in tight.text.splitlines() if line.startswith("## map"))
    assert "left out at the budget; the nearest by path are shown" in heading
    assert "pkg/m04.py" in tight.text and "pkg/m06.py" in tight.text and "pkg/m29.py" not in tight.text
    # One file: no map.
    one = contexts({"a.py": ("x = 1\n", "x = 2\n")})["a.py"].context
    assert one is None or all(p.kind != "map" for p in one.parts)


def test_repo_mode_finds_definitions_in_the_file_its_imports_and_the_pr_and_callers() -> None:
    helpers = 'def quote(value):\n    return value.replace("\'", "\'\'")\n'
    filler = "".join(f"    v{i} = {i}\n" for i in range(80))
    app_old = "from app.util import quote\n\n\ndef local(x):\n    return x\n\n\ndef find(db, c):\n    return db\n"
    app_old += f"\n\ndef unrelated():\n{filler}"
    app_new = app_old.replace("    return db\n", "    q = quote(local(c)) + sanitize(c)\n    return db.execute(q)\n")
    other_old = "def sanitize(c):\n    return c\n\n\ndef view(db, c):\n    return c\n"
    other_new = other_old.replace("    return c\n\n\n", "    return c.strip()\n\n\n").replace(
        "def view(db, c):\n    return c\n",
        "def view(db, c):\n    from app.orders import find\n    return find(db, c)\n",
    )
    built = contexts(
        {"app/orders.py": (app_old, app_new), "app/views.py": (other_old, other_new)},
        mode="repo",
        budget=1500,  # not enough for the whole file: its definitions come one by one
        extra_new={"app/util.py": helpers},
    )
    context = built["app/orders.py"].context
    assert context is not None
    defs = [(p.name, p.path) for p in context.parts if p.kind == "definition"]
    # Same file first, then the imported module, then the other changed files.
    assert defs == [("local", "app/orders.py"), ("quote", "app/util.py"), ("sanitize", "app/views.py")]
    callers = [(p.name, p.path, p.start, p.end) for p in context.parts if p.kind == "caller"]
    assert callers == [("find", "app/views.py", 5, 7)]
    assert "## caller of find: app/views.py, new lines 5-7 (test new)" in context.text


def test_the_facts_find_every_call_and_import_ast_walk_finds() -> None:
    text = textwrap.dedent(
        """\
        try:
            import json
        except ImportError:
            import simplejson as json
        @deco(a())
        def f(x: Annotated[int, b()] = c(), *, y=lambda: d()) -> e():
            import os.path as p
            return f"{g(x)!r:{h()}}" + [i(v) for v in w.j()][0] + (k() if m.n() else 0)
        class K(Base, meta.Other, metaclass=o()):
            z: T = q.r()
        """
    )
    facts = python_outline(text, facts=True).facts
    assert facts is not None
    assert {name for _, name, _ in facts.calls} == {"deco", *"abcdeghijkno", "r"}
    assert (8, "n", "m") in facts.calls and (10, "r", "q") in facts.calls
    # The later binding wins, as when the file runs: `json` is simplejson's.
    assert facts.imports["json"] == ("simplejson", "", 0) and facts.imports["p"] == ("os.path", "", 0)
    assert (9, "Base") in facts.uses


def test_brace_and_indentation_scans_say_they_are_fallbacks() -> None:
    old = "struct Server;\n\nimpl Server {\n    fn handle(&self,\n        r: &Request) -> Result<()> {\n"
    old += "        if r.empty() {\n            return Ok(());\n        }\n        self.write(r.body)\n    }\n}\n"
    new = old.replace("self.write(r.body)", "self.write(exec(r.body))")
    context = contexts({"srv/handle.rs": (old, new)})["srv/handle.rs"].context
    assert context is not None and context.parts[0].kind == "scope"
    assert f"## scope, by {BRACES}: srv/handle.rs, new lines 3-10" in context.text
    assert "    fn handle(&self," in context.text
    assert (language("a.rs", ""), language("deploy", "#!/bin/zsh"), language("x.yml", ""), language("q.sql", "")) == (
        BRACES,
        BRACES,
        INDENT,
        PLAIN,
    )
    assert language("tool", "#!/usr/bin/env python3") == PYTHON
    assert (language("a.ts", ""), language("deploy", "#!/bin/sh")) == ("tree-sitter (typescript)", "tree-sitter (bash)")
    js = "class A extends B {\n  m(a,\n    b) {\n    if (a) { return '}'; }\n  }\n}\n"
    js += "const f = (x) => {\n  return x;\n};\n"
    names = [(s.name, s.start, s.header_end, s.end) for s in brace_scopes(js.split("\n"))]
    assert names == [("A", 1, 1, 6), ("m", 2, 3, 5), ("f", 7, 7, 9)]


def test_the_context_travels_inside_the_fence_before_the_section_breakpoint() -> None:
    section = contexts({"app/orders.py": (ORDERS_OLD, ORDERS_NEW), "b.py": ("x = 1\n", "x = 2\n")})["app/orders.py"]
    assert section.context is not None
    fence = new_fence([section])
    block = section_block(section, fence)
    assert block.count(fence) == 4
    head, diff_and_context, closing = block.rsplit(fence, 2)[0], *block.rsplit(fence, 2)[1:]
    assert closing == ""
    assert diff_and_context.startswith(" context\n## scope: app/orders.py")
    assert block.index(section.text) < block.index(f"{fence} context") < block.index(section.context.text)
    content = messages(section, Voter("v1", "m"), fence)[0]["content"]
    assert section.context.text in content[0]["text"] and content[0]["cache_control"] == {"type": "ephemeral"}
    assert section.context.text not in content[1]["text"]
    assert head.startswith("fence: ")


def test_the_fence_is_drawn_outside_the_context_too(monkeypatch: pytest.MonkeyPatch) -> None:
    section = contexts({"a.py": ("x = 1\n", "x = 2\n"), "b.py": ("y = 1\n", "y = 2\n")})["a.py"]
    assert section.context is not None
    drawn = iter(["a" * 24, "b" * 24])
    taken = "=====SWARMGATE-" + "a" * 24 + "====="
    planted = dataclasses.replace(
        section, context=dataclasses.replace(section.context, text=section.context.text + taken)
    )
    monkeypatch.setattr("secrets.token_hex", lambda n: next(drawn))
    assert new_fence([planted]) == "=====SWARMGATE-" + "b" * 24 + "====="


def test_the_vote_cache_key_covers_the_context() -> None:
    with_map = contexts({"a.py": ("x = 1\n", "x = 2\n"), "b.py": ("y = 1\n", "y = 2\n")})["a.py"]
    bare = dataclasses.replace(with_map, context=None)
    voter = Voter("v1", "m")
    assert vote_key(with_map, voter, "e", "i") != vote_key(bare, voter, "e", "i")
    assert Section.from_dict(with_map.to_dict()) == with_map


def test_off_builds_nothing_and_reads_nothing() -> None:
    source = Source({"a.py": "x = 1\n"}, {"a.py": "x = 2\n"})
    built = contexts({"a.py": ("x = 1\n", "x = 2\n"), "b.py": ("y\n", "z\n")}, mode="off", source=source)
    assert all(s.context is None for s in built.values()) and source.reads == []
    with pytest.raises(ValueError):
        ContextBuilder([], NoTexts(), "scope", 0)


def test_an_empty_file_or_a_mode_change_of_one_needs_no_note() -> None:
    diff = "diff --git a/empty.py b/empty.py\nnew file mode 100644\nindex 0000000..e69de29\n"
    files = parse_diff(diff)
    sections, _ = sections_of(files)
    (section,) = build_contexts(sections, files, Source({}, {"empty.py": ""}), "repo", 1000)
    assert section.context is None
