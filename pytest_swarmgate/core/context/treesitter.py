"""Where definitions begin and end in Go, JavaScript, TypeScript, C, Java and shell, read by tree-sitter. Pure.

Each grammar is its own wheel from PyPI (compiled C; nothing is downloaded at run time), imported the first
time a file of its language is outlined: without --swarm-review no grammar is ever loaded. A tree with
ERROR nodes still gives the definitions it has; `scopes.outline` falls back to the brace scan when a
grammar is missing or a broken tree gives none.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tree_sitter import Node, Parser, Query

# Hostile input: deeper definitions are no scope (a reviewer needs no 65th nested closure), a name is an
# identifier cut to a readable length, and a parse stops at a deadline.
MAX_DEPTH = 64
MAX_NAME = 120
DEADLINE_SECONDS = 1.0
# One definition: qualified name, "class" or "def", its first line, the line its body opens on, its last line
# (1-based). `scopes` makes it a Scope, its header cut there as for every parser.
Found = tuple[str, str, int, int, int]
SMALL_ERROR_TOKENS, MAX_ERROR_TOKENS = 64, 10_000

# The type-like definitions are "class" scopes; every other definition is a "def".
CLASS_NODES = frozenset({
    "class_declaration", "abstract_class_declaration", "interface_declaration", "enum_declaration",
    "record_declaration", "annotation_type_declaration", "type_alias_declaration", "internal_module", "type_spec",
    "type_alias", "struct_specifier", "union_specifier", "enum_specifier",
})  # fmt: skip

_FUNCTION_VALUE = "[(arrow_function) (function_expression) (generator_function)]"
# A function bound to a name is a definition too: `const f = () => {}`, `{h: function () {}}`,
# `exports.handler = async () => {}`.
_JS_BOUND = (
    f"(variable_declarator name: (identifier) value: {_FUNCTION_VALUE}) @def",
    f"(pair key: (property_identifier) value: {_FUNCTION_VALUE}) @def",
    f"(assignment_expression left: (member_expression property: (property_identifier)) right: {_FUNCTION_VALUE}) @def",
)
_JS_NODES = ("function_declaration", "generator_function_declaration", "method_definition", "class_declaration")
_TS_NODES = (
    *_JS_NODES,
    "abstract_class_declaration",
    "interface_declaration",
    "enum_declaration",
    "type_alias_declaration",
    "internal_module",
)
# A class field holding a function (`handle = (e) => {}`): JavaScript and TypeScript name the field apart.
_TS_BOUND = (*_JS_BOUND, f"(public_field_definition name: (property_identifier) value: {_FUNCTION_VALUE}) @def")


@dataclass(frozen=True)
class Grammar:
    """A language's wheel (its module and the function that gives its language) and its definitions."""

    module: str
    function: str
    nodes: tuple[str, ...]  # node types that are a definition wherever they appear
    patterns: tuple[str, ...] = ()  # query patterns of definitions that depend on their shape

    def query(self) -> str:
        """The query that captures every definition node as @def."""
        return "\n".join([f"({node}) @def" for node in self.nodes] + list(self.patterns))


GRAMMARS = {
    "go": Grammar(
        "tree_sitter_go", "language", ("function_declaration", "method_declaration", "type_spec", "type_alias")
    ),
    "javascript": Grammar(
        "tree_sitter_javascript",
        "language",
        _JS_NODES,
        (*_JS_BOUND, f"(field_definition property: (property_identifier) value: {_FUNCTION_VALUE}) @def"),
    ),
    "typescript": Grammar("tree_sitter_typescript", "language_typescript", _TS_NODES, _TS_BOUND),
    "tsx": Grammar("tree_sitter_typescript", "language_tsx", _TS_NODES, _TS_BOUND),
    # Only a struct with a body defines one: `struct point p;` names it.
    "c": Grammar(
        "tree_sitter_c",
        "language",
        ("function_definition",),
        tuple(f"({node} body: (_)) @def" for node in ("struct_specifier", "union_specifier", "enum_specifier")),
    ),
    "java": Grammar(
        "tree_sitter_java",
        "language",
        (
            "class_declaration",
            "interface_declaration",
            "enum_declaration",
            "record_declaration",
            "annotation_type_declaration",
            "method_declaration",
            "constructor_declaration",
        ),
    ),
    "bash": Grammar("tree_sitter_bash", "language", ("function_definition",)),
}


def load(name: str) -> tuple[Parser, Query]:
    """The parser and the definitions query of one grammar, built once; ImportError when its wheel is missing."""
    import tree_sitter

    return _load(name, tree_sitter)


@cache
def _load(name: str, binding: ModuleType) -> tuple[Parser, Query]:
    """Built once per import of the binding: a process that imports it afresh (pytester's in-process
    runs drop the modules they imported) gets types that objects of the earlier import are not of."""
    Language, Parser, Query = binding.Language, binding.Parser, binding.Query

    grammar = GRAMMARS[name]
    language = Language(getattr(importlib.import_module(grammar.module), grammar.function)())
    return Parser(language), Query(language, grammar.query())


def definitions(name: str, text: str) -> tuple[list[Found], bool]:
    """The definitions of `text` in the grammar `name`, sorted by start, and whether its tree has errors."""
    from tree_sitter import QueryCursor

    parser, query = load(name)
    deadline = time.monotonic() + DEADLINE_SECONDS

    def late(*_progress: object) -> bool:
        return time.monotonic() > deadline

    # A lone surrogate becomes `?` and a NUL a space, the lines and columns staying where they are: scanners
    # take NUL for the end of input, and the bash grammar's then runs in quadratic time and memory.
    source = text.replace("\0", " ").encode("utf-8", "replace")
    try:
        tree = parser.parse(lambda offset, _point: source[offset : offset + 65536], progress_callback=late)
    except ValueError as exc:  # what tree-sitter raises when the progress callback stops it
        parser.reset()  # or the next parse, of another file, would resume this one
        raise TimeoutError(name) from exc
    root = tree.root_node
    cursor = QueryCursor(query)
    found: dict[tuple[int, int, str], Node] = {}
    for node, ranges in _searches(root, deadline):
        for start, end in ranges:
            cursor.set_byte_range(start, end)
            found.update(((n.start_byte, n.end_byte, n.type), n) for n in cursor.captures(node).get("def", []))
    nodes = sorted(found.values(), key=lambda n: (n.start_byte, -n.end_byte))
    scopes: list[Found] = []
    open_at: list[tuple[int, str]] = []  # (end byte, qualified name) of the definitions around
    for node in nodes:
        own = _name(node, source)
        while open_at and open_at[-1][0] <= node.start_byte:
            open_at.pop()
        if own is None or len(open_at) >= MAX_DEPTH:
            continue
        name = f"{open_at[-1][1]}.{own}" if open_at else own
        open_at.append((node.end_byte, name))
        kind = "class" if node.type in CLASS_NODES else "def"
        start, end = _start(node), node.end_point.row + 1
        body = _body(node)
        scopes.append((name, kind, start, body.start_point.row + 1 if body is not None else end, end))
    scopes.sort(key=lambda s: (s[2], -s[4]))
    return scopes, root.has_error


def _searches(root: Node, deadline: float) -> Iterator[tuple[Node, list[tuple[int, int]]]]:
    """The subtrees to query, each with the byte ranges to search it in: all of a tree without errors.

    A query cursor slows quadratically inside an ERROR node of many tokens (`{{{{...`; tree-sitter 0.25
    and 0.26, whose query progress callback crashes besides), so such a node is left out of the ranges
    and its subtrees are searched one by one; an ERROR node of over MAX_ERROR_TOKENS is garbage and skipped.
    """
    pending = [root]
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError("tree-sitter query")
        top = pending.pop()
        if top.is_error and top.child_count > SMALL_ERROR_TOKENS:
            if top.child_count <= MAX_ERROR_TOKENS:
                pending += [c for c in top.children if c.child_count]
            continue
        big: list[Node] = []
        inside = [top]
        while inside:  # the big ERROR nodes under `top`, through the nodes that hold an error
            node = inside.pop()
            if node.is_error and node.child_count > SMALL_ERROR_TOKENS:
                big.append(node)
            elif node.has_error:
                inside += [c for c in node.children if c.has_error]
        edges = [top.start_byte] + [e for n in sorted(big, key=lambda n: n.start_byte) for e in n.byte_range]
        edges.append(top.end_byte)
        yield top, [(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True) if a < b]
        pending += big


def _text(node: Node | None, source: bytes) -> str | None:
    """A node's text, cut to MAX_NAME, sliced from the source (a tree parsed through a callback would call it)."""
    if node is None:
        return None
    end = min(node.end_byte, node.start_byte + 4 * MAX_NAME)  # UTF-8: at most 4 bytes a character
    return source[node.start_byte : end].decode("utf-8", "replace")[:MAX_NAME]


def _name(node: Node, source: bytes) -> str | None:
    """A definition's own name (`Server.Handle` for a Go method), or None for an anonymous one."""
    if node.type == "method_declaration" and (receiver := node.child_by_field_name("receiver")) is not None:
        own = _text(node.child_by_field_name("name"), source)
        return f"{_receiver(receiver, source)}.{own}" if own else None  # a Go method
    if node.type == "function_definition" and node.child_by_field_name("declarator") is not None:
        return _text(_declared(node), source)  # C
    for field in ("name", "property", "key", "left"):
        named = node.child_by_field_name(field)
        if named is not None:
            return _text(named.child_by_field_name("property") if field == "left" else named, source)
    parent = node.parent  # `typedef struct { ... } pt;`
    if node.type.endswith("_specifier") and parent is not None and parent.type == "type_definition":
        return _text(parent.child_by_field_name("declarator"), source)
    return None


def _receiver(receiver: Node, source: bytes) -> str:
    """The type a Go method is declared on: `Server` in `(s *Server)` and in `(s *Server[T])`."""
    pending = list(receiver.named_children)
    while pending:
        node = pending.pop(0)
        if node.type == "type_identifier":
            return _text(node, source) or "?"
        pending[:0] = node.named_children
    return "?"


def _declared(node: Node) -> Node | None:
    """The identifier a C definition declares, under its pointer and function declarators."""
    inner = node.child_by_field_name("declarator")
    for _ in range(MAX_DEPTH):
        if inner is None or inner.type in ("identifier", "field_identifier"):
            return inner
        inner = inner.child_by_field_name("declarator") or next(iter(inner.named_children), None)
    return None


def _start(node: Node) -> int:
    """A definition's first line: its declaration (`const`, `export`, `typedef`, Go's lone `type`) and decorators."""
    outer = node
    parent = node.parent
    if parent is not None and (
        node.type == "variable_declarator"
        or (node.type.endswith("_specifier") and parent.type == "type_definition")
        or (node.type == "type_spec" and parent.named_child_count == 1)
    ):
        outer = parent
    if outer.parent is not None and outer.parent.type == "export_statement":
        outer = outer.parent
    above = outer.prev_named_sibling
    while above is not None and above.type == "decorator":  # a class member's decorators are its siblings
        outer, above = above, above.prev_named_sibling
    return outer.start_point.row + 1


def _body(node: Node) -> Node | None:
    """The node that opens a definition's body (its `{`), or None when it has none (a prototype)."""
    body = node.child_by_field_name("body")
    if body is not None:
        return body
    for field in ("value", "right", "type"):
        inner = node.child_by_field_name(field)
        if inner is not None:
            opened = inner.child_by_field_name("body")
            return opened or next((c for c in inner.children if c.type in ("{", "field_declaration_list")), inner)
    return None
