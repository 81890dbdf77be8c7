"""Where definitions begin and end in a file's text. Pure; nothing parsed is ever run or imported.

Python is read with the standard library's `ast` (definitions, and for the `repo` mode the
names each line calls, imports and inherits). Other languages get a scan that says it is a
fallback: braces for the C family, Go, Java, JavaScript, TypeScript, Rust, shell and the like;
indentation for the rest; SQL and prose have no scopes and are plain text.
"""

from __future__ import annotations

import ast
import posixpath
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

PYTHON = "python (ast)"
BRACES = "brace scan (fallback: no parser for this language)"
INDENT = "indentation scan (fallback: no parser for this language)"
PLAIN = "plain text"

_PYTHON_EXT = frozenset({".py", ".pyi", ".pyw"})
_BRACE_EXT = frozenset({
    ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".m", ".mm", ".java", ".js", ".jsx", ".mjs",
    ".cjs", ".ts", ".tsx", ".mts", ".cts", ".go", ".rs", ".cs", ".php", ".swift", ".kt", ".kts", ".scala",
    ".groovy", ".dart", ".sh", ".bash", ".zsh", ".ksh", ".proto",
})  # fmt: skip
_SHELL_EXT = frozenset({".sh", ".bash", ".zsh", ".ksh"})
_PLAIN_EXT = frozenset({".sql", ".md", ".rst", ".txt", ".csv", ".json", ".lock", ".svg", ".html", ".xml"})
# A header longer than this is cut: a signature is a few lines, not a screen.
MAX_HEADER_LINES = 12


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


@dataclass(frozen=True)
class Outline:
    """A file's definitions sorted by start, the parser that found them, and why it failed (None: it did not)."""

    scopes: tuple[Scope, ...]
    parser: str
    error: str | None = None
    facts: Facts | None = None

    def enclosing(self, line: int) -> list[Scope]:
        """The definitions around a line, outermost first."""
        return [s for s in self.scopes if s.start <= line <= s.end]

    def named(self, name: str) -> list[Scope]:
        """Definitions whose own name (the last part of the qualified one) is `name`."""
        return [s for s in self.scopes if s.kind != "block" and s.name.rpartition(".")[2] == name]


def language(path: str, first_line: str) -> str:
    """The parser for a file: PYTHON, BRACES, INDENT or PLAIN, by extension (a shebang for none)."""
    ext = posixpath.splitext(path)[1].lower()
    if ext in _PYTHON_EXT or (not ext and first_line.startswith("#!") and "python" in first_line):
        return PYTHON
    if ext in _BRACE_EXT or (not ext and first_line.startswith("#!") and "sh" in first_line):
        return BRACES
    return PLAIN if ext in _PLAIN_EXT else INDENT


def outline(path: str, text: str) -> Outline:
    """The definitions of a file's text, by the parser its language gets."""
    lines = text.split("\n")
    parser = language(path, lines[0] if lines else "")
    if parser == PYTHON:
        return python_outline(text)
    if parser == BRACES:
        return Outline(brace_scopes(lines, shell=posixpath.splitext(path)[1].lower() in _SHELL_EXT), BRACES)
    if parser == INDENT:
        return Outline(indent_scopes(lines), INDENT)
    return Outline((), PLAIN)


# --- Python -------------------------------------------------------------------------------

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def python_outline(text: str) -> Outline:
    """Definitions and facts through `ast.parse`; a file that does not parse gets an Outline with its error."""
    try:
        with warnings.catch_warnings():
            # An invalid escape in the PR's code must not become an error under `-W error`.
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
    except SyntaxError as exc:
        return Outline((), PYTHON, f"does not parse as Python (line {exc.lineno}: {exc.msg})")
    except (ValueError, RecursionError, MemoryError) as exc:
        return Outline((), PYTHON, f"does not parse as Python ({type(exc).__name__})")
    scopes: list[Scope] = []
    calls: list[tuple[int, int, str, str]] = []
    imports: dict[str, tuple[str, str, int]] = {}
    uses: list[tuple[int, str]] = []
    for node, prefix in _walk(tree):
        if isinstance(node, _DEFS):
            scopes.append(_scope(node, prefix))
            uses += [(node.lineno, b.id) for b in getattr(node, "bases", ()) if isinstance(b, ast.Name)]
        elif isinstance(node, ast.Call):
            calls += _call(node)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound = _imports(node)
            imports.update(bound)
            uses += [(node.lineno, name) for name in bound]
    scopes.sort(key=lambda s: (s.start, -s.end))
    # In reading order: the walk meets nodes in no particular order.
    ordered = tuple((line, name, owner) for line, _, name, owner in sorted(calls))
    return Outline(tuple(scopes), PYTHON, None, Facts(ordered, imports, tuple(sorted(uses))))


def _walk(tree: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    """Every node with the qualified name of the definitions around it (`Class.method.`), without recursion."""
    stack: list[tuple[ast.AST, str]] = [(tree, "")]
    while stack:
        node, prefix = stack.pop()
        yield node, prefix
        inner = f"{prefix}{node.name}." if isinstance(node, _DEFS) else prefix
        stack.extend((child, inner) for child in ast.iter_child_nodes(node))


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

_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`(?:\\.|[^`\\])*`')
_CONTROL = re.compile(
    r"^\s*(?:}\s*)?(?:if|else|elif|for|foreach|while|do|switch|case|default|try|catch|except|finally|return|with|"
    r"synchronized|select|defer|go|unsafe|loop|match|then)\b"
)
_DEF_WORD = re.compile(
    r"\b(?:class|struct|interface|enum|namespace|impl|trait|union|module|object|record|func|function|fn|def|"
    r"type)\s+([A-Za-z_$][\w$]*)"
)
_CALLED = re.compile(r"([A-Za-z_$][\w$]*)\s*\(")
_ASSIGNED = re.compile(r"([A-Za-z_$][\w$]*)\s*[:=]\s*(?:async\s*)?(?:function\b|\([^)]*\)\s*=>|\w+\s*=>)")
_KEYWORDS = frozenset({"func", "function", "fn", "if", "for", "while", "switch", "catch", "return", "sizeof"})


def _code(line: str, in_comment: bool, shell: bool) -> tuple[str, bool]:
    """The line without strings and comments, and whether a block comment is still open after it."""
    out = ""
    while line:
        if in_comment:
            end = line.find("*/")
            if end == -1:
                return out, True
            line, in_comment = line[end + 2 :], False
            continue
        line = _STRINGS.sub('""', line)
        starts = [i for i in (line.find("/*"), line.find("//"), line.find("#") if shell else -1) if i != -1]
        if not starts:
            return out + line, False
        cut = min(starts)
        out += line[:cut]
        if line.startswith("/*", cut):
            line, in_comment = line[cut + 2 :], True
        else:
            return out, False
    return out, in_comment


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
    open_at: list[tuple[int, str | None]] = []
    scopes: list[Scope] = []
    for number, code in enumerate(codes, 1):
        for ch in code:
            if ch == "{":
                start = _header_start(codes, number)
                name = _block_name("\n".join(codes[start - 1 : number]))
                open_at.append((number, name))
            elif ch == "}" and open_at:
                opened, name = open_at.pop()
                if name is not None:
                    start = _header_start(codes, opened)
                    scopes.append(Scope(name, "block", start, opened, number))
    scopes += [Scope(n, "block", _header_start(codes, o), o, len(codes)) for o, n in open_at if n is not None]
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
