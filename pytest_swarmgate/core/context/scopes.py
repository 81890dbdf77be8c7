"""Where definitions begin and end in a file's text. Pure; nothing parsed is ever run or imported.

Python is read with the standard library's `ast` (definitions, and for the `repo` mode the
names each line calls, imports and inherits). Go, JavaScript, TypeScript, C, Java and shell are
read by tree-sitter (`treesitter`, its grammars imported on first use). Other languages get a scan
that says it is a fallback: braces for C++, Rust, C#, PHP and the like, and for a tree-sitter
language whose grammar is missing or whose broken tree gives nothing; indentation for the rest;
SQL and prose have no scopes and are plain text.
"""

from __future__ import annotations

import ast
import posixpath
import re
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

# Only the standard library at import: each grammar is imported with the first file of its language.
from . import treesitter

PYTHON = "python (ast)"
TREE_SITTER = "tree-sitter ({})"  # the grammar's name
FALLBACK = "{} scan (fallback: {})"  # the scan, and why no parser read the file
BRACES = FALLBACK.format("brace", "no parser for this language")
INDENT = FALLBACK.format("indentation", "no parser for this language")
PLAIN = "plain text"
SCANS = frozenset({BRACES, INDENT, PLAIN})  # what `language` names that never fails to read a file

_PYTHON_EXT = frozenset({".py", ".pyi", ".pyw"})
_BRACE_EXT = frozenset({
    ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".m", ".mm", ".java", ".js", ".jsx", ".mjs",
    ".cjs", ".ts", ".tsx", ".mts", ".cts", ".go", ".rs", ".cs", ".php", ".swift", ".kt", ".kts", ".scala",
    ".groovy", ".dart", ".sh", ".bash", ".zsh", ".ksh", ".proto",
})  # fmt: skip
_SHELL_EXT = frozenset({".sh", ".bash", ".zsh", ".ksh"})
_GRAMMAR_EXT = {
    ".go": "go", ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx", ".c": "c", ".h": "c",
    ".java": "java", ".sh": "bash", ".bash": "bash",
}  # fmt: skip
# A script without an extension is read as bash when its shebang names a POSIX shell.
_SHELL_SHEBANG = re.compile(r"#!\s*\S*/(?:env\s+)?(?:ba|da)?sh\b")
_PLAIN_EXT = frozenset({".sql", ".md", ".rst", ".txt", ".csv", ".json", ".lock", ".svg", ".html", ".xml"})
# A header longer than this is cut: a signature is a few lines, not a screen.
MAX_HEADER_LINES = 12
# Block comments read on one line by the brace scan; the rest of a line with more is taken as code.
MAX_LINE_COMMENTS = 100


@dataclass(frozen=True)
class Scope:
    """One definition: its qualified name, and its lines (decorators included) with the header's last line."""

    name: str
    kind: str  # "class", "def", or "block" for a scan's scopes
    start: int
    header_end: int
    end: int


@dataclass(frozen=True)
class Facts:
    """What a Python file's lines use: calls, imports and base classes, for the `repo` mode."""

    # (line, name called, the name it is called on: `m` in `m.f()`, else "")
    calls: tuple[tuple[int, str, str], ...] = ()
    # local name -> (module, name imported from it or "" for the module itself, relative level)
    imports: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    # (line, local name) of each name an import statement binds, and of each base class named
    uses: tuple[tuple[int, str], ...] = ()


class Outline:
    """A file's definitions sorted by start, the parser that found them, why it failed (None: it did
    not), and for Python in the `repo` mode what its lines use. Lookups are indexed on first use."""

    def __init__(
        self, scopes: Sequence[Scope], parser: str, error: str | None = None, facts: Facts | None = None
    ) -> None:
        self.scopes, self.parser, self.error, self.facts = tuple(scopes), parser, error, facts
        self._inner: list[int] | None = None
        self._parent: list[int] = []
        self._names: dict[str, list[Scope]] | None = None

    def _index(self) -> list[int]:
        """Per line, the innermost scope that holds it (-1: none); and each scope's parent."""
        if self._inner is None:
            inner = [-1] * (max((s.end for s in self.scopes), default=0) + 2)
            open_at: list[int] = []
            for i, scope in enumerate(self.scopes):  # sorted by start, the outer first
                while open_at and self.scopes[open_at[-1]].end < scope.start:
                    open_at.pop()
                self._parent.append(open_at[-1] if open_at else -1)
                open_at.append(i)
                inner[scope.start : scope.end + 1] = [i] * (scope.end - scope.start + 1)
            self._inner = inner
        return self._inner

    def innermost(self, line: int) -> Scope | None:
        """The innermost definition around a line (the last of `enclosing`), None when there is none."""
        inner = self._index()
        i = inner[line] if 0 <= line < len(inner) else -1
        return self.scopes[i] if i != -1 else None

    def enclosing(self, line: int) -> list[Scope]:
        """The definitions around a line, outermost first."""
        inner = self._index()
        i = inner[line] if 0 <= line < len(inner) else -1
        chain: list[Scope] = []
        while i != -1:
            scope = self.scopes[i]
            if scope.start <= line <= scope.end:
                chain.append(scope)
            i = self._parent[i]
        return chain[::-1]

    def chains(self, lines: Iterable[int]) -> list[list[Scope]]:
        """The distinct chains of definitions around the lines (lines in one scope share one), in line order."""
        inner = self._index()
        seen: dict[int, int] = {}
        for line in sorted(lines):
            seen.setdefault(inner[line] if 0 <= line < len(inner) else -1, line)
        return [self.enclosing(line) for line in seen.values()]

    def named(self, name: str) -> list[Scope]:
        """Definitions whose own name (the last part of the qualified one) is `name`."""
        if self._names is None:
            self._names = {}
            for scope in self.scopes:
                if scope.kind != "block":
                    self._names.setdefault(scope.name.rpartition(".")[2], []).append(scope)
        return self._names.get(name, [])


def grammar(path: str, first_line: str) -> str | None:
    """The tree-sitter grammar for a file, by extension (a shebang for none), or None."""
    ext = posixpath.splitext(path)[1].lower()
    if not ext and _SHELL_SHEBANG.match(first_line):
        return "bash"
    return _GRAMMAR_EXT.get(ext)


def language(path: str, first_line: str) -> str:
    """The parser for a file: PYTHON, a TREE_SITTER grammar, BRACES, INDENT or PLAIN, by extension (a shebang
    for none)."""
    ext = posixpath.splitext(path)[1].lower()
    if ext in _PYTHON_EXT or (not ext and first_line.startswith("#!") and "python" in first_line):
        return PYTHON
    if (name := grammar(path, first_line)) is not None:
        return TREE_SITTER.format(name)
    if ext in _BRACE_EXT or (not ext and first_line.startswith("#!") and "sh" in first_line):
        return BRACES
    return PLAIN if ext in _PLAIN_EXT else INDENT


def outline(path: str, text: str, facts: bool = False) -> Outline:
    """The definitions of a file's text, by the parser its language gets; with `facts`, Python's uses too."""
    first = text.partition("\n")[0]
    parser = language(path, first)
    if parser == PYTHON:
        return python_outline(text, facts)  # `ast` reads the text, not its lines
    lines = text.split("\n")
    if (name := grammar(path, first)) is not None:
        return tree_outline(name, text, lines)
    if parser == BRACES:
        return Outline(brace_scopes(lines, shell=posixpath.splitext(path)[1].lower() in _SHELL_EXT), BRACES)
    if parser == INDENT:
        return Outline(indent_scopes(lines), INDENT)
    return Outline((), PLAIN)


def tree_outline(name: str, text: str, lines: Sequence[str]) -> Outline:
    """Definitions by a tree-sitter grammar, or by the brace scan (saying why) when it has none to give."""
    label = TREE_SITTER.format(name)
    try:
        found, broken = treesitter.definitions(name, text)
    except ImportError:
        why = f"{label} is not installed"
    except TimeoutError:
        # Hostile or enormous: a scan would take longer still, and guess.
        return Outline((), label, f"does not parse by {label} within {treesitter.DEADLINE_SECONDS:g} s")
    except ValueError:  # tree-sitter's own: a grammar this tree-sitter cannot load
        why = f"{label} cannot load its grammar"
    else:
        if found or not broken:
            scopes = [
                Scope(qualified, kind, first, max(first, min(body, last, first + MAX_HEADER_LINES - 1)), last)
                for qualified, kind, first, body, last in found
            ]
            return Outline(scopes, label)
        why = f"{label} found no definition in a tree with errors"
    return Outline(brace_scopes(lines, shell=name == "bash"), FALLBACK.format("brace", why))


# --- Python -------------------------------------------------------------------------------

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def python_outline(text: str, facts: bool = False) -> Outline:
    """Definitions (and with `facts` what the lines use) through `ast.parse`; a file that does not
    parse gets an Outline with its error."""
    try:
        with warnings.catch_warnings():
            # An invalid escape in the PR's code must not become an error under `-W error`.
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
    except SyntaxError as exc:
        return Outline((), PYTHON, f"does not parse as Python (line {exc.lineno}: {exc.msg})")
    except (ValueError, RecursionError, MemoryError) as exc:
        return Outline((), PYTHON, f"does not parse as Python ({type(exc).__name__})")
    defs = list(_definitions(tree))
    scopes = sorted((_scope(node, prefix) for node, prefix in defs), key=lambda s: (s.start, -s.end))
    return Outline(scopes, PYTHON, None, _facts(tree, defs) if facts else None)


def _definitions(tree: ast.Module) -> Iterator[tuple[Definition, str]]:
    """Every def and class with the qualified name around it (`Class.method.`), through statement
    bodies only (expressions hold no definitions), without recursion."""
    stack: list[tuple[list[ast.AST], str]] = [(list(tree.body), "")]
    while stack:
        body, prefix = stack.pop()
        for node in body:
            if isinstance(node, _DEFS):
                yield node, prefix
                stack.append((list(node.body), f"{prefix}{node.name}."))
                continue
            for name in ("body", "orelse", "finalbody", "handlers", "cases"):
                inner = getattr(node, name, None)
                if isinstance(inner, list):
                    stack.append((inner, prefix))


# Nodes that hold no other node, and the fields that never hold one: `_walk` skips both.
_LEAVES = (ast.Name, ast.Constant, ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop, ast.alias)
_NOT_NODES = frozenset({"ctx", "id", "attr", "arg", "module", "level", "asname", "type_comment", "kind", "is_async",
                        "conversion", "simple", "op"})  # fmt: skip
_FIELDS: dict[type[ast.AST], tuple[str, ...]] = {}


def _walk(tree: ast.Module) -> Iterator[ast.AST]:
    """The nodes in `ast.walk`'s order (so a name imported twice binds as it did), less the leaves: half the
    work of a file's facts is visiting names and constants."""
    todo: deque[ast.AST] = deque([tree])
    while todo:
        node = todo.popleft()
        yield node
        kind = type(node)
        fields = _FIELDS.get(kind)
        if fields is None:
            fields = _FIELDS[kind] = tuple(f for f in kind._fields if f not in _NOT_NODES)
        for name in fields:
            value = getattr(node, name, None)
            if isinstance(value, list):
                todo.extend(v for v in value if isinstance(v, ast.AST) and not isinstance(v, _LEAVES))
            elif isinstance(value, ast.AST) and not isinstance(value, _LEAVES):
                todo.append(value)


def _facts(tree: ast.Module, defs: Sequence[tuple[Definition, str]]) -> Facts:
    """What the lines call, import and inherit from, in reading order."""
    calls: list[tuple[int, int, str, str]] = []
    imports: dict[str, tuple[str, str, int]] = {}
    uses: list[tuple[int, str]] = []
    for node in _walk(tree):
        if isinstance(node, ast.Call):
            calls += _call(node)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound = _imports(node)
            imports.update(bound)
            uses += [(node.lineno, name) for name in bound]
    for node, _ in defs:
        if isinstance(node, ast.ClassDef):
            uses += [(node.lineno, b.id) for b in node.bases if isinstance(b, ast.Name)]
    ordered = tuple((line, name, owner) for line, _, name, owner in sorted(calls))
    return Facts(ordered, imports, tuple(sorted(uses)))


def _scope(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, prefix: str) -> Scope:
    start = min([d.lineno for d in node.decorator_list] + [node.lineno])
    # The header runs to the line before the body (a signature over several lines), or is the def line itself.
    header_end = max(node.lineno, node.body[0].lineno - 1) if node.body else node.lineno
    header_end = min(header_end, start + MAX_HEADER_LINES - 1)
    kind = "class" if isinstance(node, ast.ClassDef) else "def"
    return Scope(prefix + node.name, kind, start, header_end, node.end_lineno or node.lineno)


def _call(node: ast.Call) -> list[tuple[int, int, str, str]]:
    """(line, column, name called, the name it is called on) of one call."""
    func = node.func
    if isinstance(func, ast.Name):
        return [(node.lineno, node.col_offset, func.id, "")]
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else ""
        return [(node.lineno, func.end_col_offset or 0, func.attr, owner)]
    return []


def _imports(node: ast.Import | ast.ImportFrom) -> dict[str, tuple[str, str, int]]:
    """Local name -> (module, imported name or "", level) for one import statement."""
    if isinstance(node, ast.Import):
        # `import a.b` binds `a`; `import a.b as m` binds `m` to a.b.
        return {(a.asname or a.name.partition(".")[0]): (a.name if a.asname else a.name.partition(".")[0], "", 0)
                for a in node.names}  # fmt: skip
    module = node.module or ""
    return {(a.asname or a.name): (module, a.name, node.level) for a in node.names if a.name != "*"}


# --- Fallback scans -----------------------------------------------------------------------

_QUOTES = "\"'`"
# A string's rest after its opening quote: escapes, other characters, then the closing quote.
_STRING_REST = {q: re.compile(rf"(?:\\.|[^{q}\\])*{q}") for q in _QUOTES}
_OPENING = {alive: re.compile(f"[{re.escape(alive)}]") for alive in ("\"'`", "'`", '"`', "\"'", '"', "'", "`")}
_CONTROL = re.compile(
    r"^\s*(?:}\s*)?(?:if|else|elif|for|foreach|while|do|switch|case|default|try|catch|except|finally|return|with|"
    r"synchronized|select|defer|go|unsafe|loop|match|then)\b"
)
_DEF_WORD = re.compile(
    r"\b(?:class|struct|interface|enum|namespace|impl|trait|union|module|object|record|func|function|fn|def|"
    r"type)\s+([A-Za-z_$][\w$]*)"
)
# Linear on hostile lines: a name starts where a word does (tried from inside one, a long identifier costs
# quadratic time), and an arrow's parameters are looked for within a bound (`a=(a=(a=(...` would be too).
_CALLED = re.compile(r"(?<![\w$])([A-Za-z_$][\w$]*)\s*\(")
_ASSIGNED = re.compile(
    r"(?<![\w$])([A-Za-z_$][\w$]*)\s*[:=]\s*(?:async\s*)?(?:function\b|\([^)]{0,200}\)\s*=>|\w+\s*=>)"
)
_KEYWORDS = frozenset({"func", "function", "fn", "if", "for", "while", "switch", "catch", "return", "sizeof"})


def _blank_strings(line: str) -> str:
    """Each string literal of the line as `""`, in linear time: when a quote finds no closing one, no later
    quote of its kind can (it was escaped in the failed scan), so its kind is not tried again."""
    out: list[str] = []
    done = 0
    alive = _QUOTES
    while alive:
        opening = _OPENING[alive].search(line, done)
        if opening is None:
            break
        quote = opening.group()
        rest = _STRING_REST[quote].match(line, opening.end())
        if rest is None:
            alive = alive.replace(quote, "")
            continue
        out += [line[done : opening.start()], '""']
        done = rest.end()
    return "".join(out) + line[done:]


def _code(line: str, in_comment: bool, shell: bool) -> tuple[str, bool]:
    """The line without strings and comments, and whether a block comment is still open after it."""
    out = ""
    for _ in range(MAX_LINE_COMMENTS):  # each turn reads the rest of the line: `/**/` repeated is hostile
        if not line:
            return out, in_comment
        if in_comment:
            end = line.find("*/")
            if end == -1:
                return out, True
            line, in_comment = line[end + 2 :], False
            continue
        line = _blank_strings(line)
        starts = [i for i in (line.find("/*"), line.find("//"), line.find("#") if shell else -1) if i != -1]
        if not starts:
            return out + line, False
        cut = min(starts)
        out += line[:cut]
        if line.startswith("/*", cut):
            line, in_comment = line[cut + 2 :], True
        else:
            return out, False
    return out + line, False  # past the bound the rest of the line is taken as code


def _header_start(codes: Sequence[str], line: int) -> int:
    """The first line of the header whose `{` is on `line` (1-based): a signature may span lines above."""
    start = line
    if not codes[line - 1].split("{", 1)[0].strip():
        start -= 1  # `{` alone on its line: the header is the line above
    while start > 1 and line - start < MAX_HEADER_LINES - 1:
        above = codes[start - 2].strip()
        # A statement, a block's edge or a preprocessor line ends it; an annotation (`@Override`) belongs to it.
        if not above or above.endswith((";", "{", "}")) or above.startswith("#"):
            break
        start -= 1
    return max(start, 1)


def _block_name(header: str) -> str | None:
    """A definition's name from its header, or None when the block is a statement (if, for, an initializer)."""
    flat = " ".join(header.split())
    if _CONTROL.match(flat):
        return None
    word = _DEF_WORD.search(flat)
    if word:
        return word.group(1)
    before = flat.split("{", 1)[0]
    assigned = _ASSIGNED.search(before)
    if assigned:
        return assigned.group(1)  # `const f = (a) => {`, `handler: function () {`
    called = [m.group(1) for m in _CALLED.finditer(before) if m.group(1) not in _KEYWORDS]
    return called[0] if called and not re.search(r"=\s*$", before.split("(", 1)[0]) else None


def brace_scopes(lines: Sequence[str], shell: bool = False) -> tuple[Scope, ...]:
    """Blocks between matching braces whose header looks like a definition (a function, class, method...)."""
    codes: list[str] = []
    in_comment = False
    for raw in lines:
        code, in_comment = _code(raw, in_comment, shell)
        codes.append(code)
    headers: dict[int, tuple[int, str | None]] = {}

    def header(line: int) -> tuple[int, str | None]:
        # Every `{` of a line has the same header: read once, or `{{{{...` on one line would be quadratic.
        if line not in headers:
            start = _header_start(codes, line)
            headers[line] = start, _block_name("\n".join(codes[start - 1 : line]))
        return headers[line]

    open_at: list[tuple[int, str | None]] = []
    scopes: list[Scope] = []
    for number, code in enumerate(codes, 1):
        for ch in code:
            if ch == "{":
                open_at.append((number, header(number)[1]))
            elif ch == "}" and open_at:
                opened, name = open_at.pop()
                if name is not None:
                    scopes.append(Scope(name, "block", header(opened)[0], opened, number))
    scopes += [Scope(n, "block", header(o)[0], o, len(codes)) for o, n in open_at if n is not None]
    return tuple(sorted(scopes, key=lambda s: (s.start, -s.end)))


def indent_scopes(lines: Sequence[str]) -> tuple[Scope, ...]:
    """Every line followed by more indented lines is a scope up to the next line indented as little."""
    scopes: list[Scope] = []
    open_at: list[tuple[int, int]] = []  # (indent, line)
    last = 0
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        indent = len(raw) - len(raw.lstrip(" \t"))
        while open_at and open_at[-1][0] >= indent:
            _, start = open_at.pop()
            if last > start:
                scopes.append(Scope(lines[start - 1].strip()[:60], "block", start, start, last))
        open_at.append((indent, number))
        last = number
    scopes += [Scope(lines[s - 1].strip()[:60], "block", s, s, last) for _, s in open_at if last > s]
    return tuple(sorted(scopes, key=lambda s: (s.start, -s.end)))
