"""The `repo` mode for Python: the definitions a section's changed lines call, import or inherit from,
and the places in the pull request's other changed files that call a definition the section changes.

Found by name through `ast` (see scopes.Facts), never by importing anything: a definition in the
same file first, then in the modules the file imports (resolved to repository paths, read through
the run's source), then in the other changed files. A name is a name: two functions called `run`
are both offered, and the budget decides.
"""

from __future__ import annotations

import builtins
import posixpath
from collections.abc import Callable, Iterable, Sequence

from .parts import FileText, Offer, excerpt
from .scopes import PYTHON, Facts, Scope, language

MAX_NAMES = 12  # names looked up per section
MAX_CALLERS = 8  # call sites offered per section
MAX_PER_NAME = 3  # definitions of one name offered from the other changed files
_BUILTINS = frozenset(dir(builtins))
# Module roots tried for an absolute import, besides the repository's top.
_ROOTS = ("", "src", "lib")

Lookup = Callable[[str], "FileText | None"]  # a path's new text, or None


def used_names(facts: Facts, lines: set[int]) -> list[tuple[str, str]]:
    """(name, the name it is called on or "") that the given lines call, import or inherit from, in order."""
    found = [(name, owner) for line, name, owner in facts.calls if line in lines]
    found += [(name, "") for line, name in facts.uses if line in lines]
    return [u for u in dict.fromkeys(found) if u[0] not in _BUILTINS or u[1]][:MAX_NAMES]


def module_paths(path: str, module: str, level: int) -> list[str]:
    """Repository paths a module of an import in `path` may live at (`a/b.py`, `a/b/__init__.py`)."""
    parts = module.split(".") if module else []
    if not all(p.isidentifier() for p in parts):
        return []
    if level:
        base = posixpath.dirname(path).split("/") if posixpath.dirname(path) else []
        if level - 1 > len(base):
            return []
        roots = ["/".join(base[: len(base) - (level - 1)])]
    else:
        roots = list(_ROOTS)
    out: list[str] = []
    for root in roots:
        stem = "/".join(p for p in [root, *parts] if p)
        if stem:
            out += [f"{stem}.py", f"{stem}/__init__.py"]
    return out


def import_targets(path: str, facts: Facts, name: str, owner: str) -> list[tuple[str, str]]:
    """(candidate path, name to find there) for a name the file imports: `from m import f`, `m.f()`."""
    bound = facts.imports.get(owner or name)
    if bound is None:
        return []
    module, imported, level = bound
    if owner:
        # `import a.b as m; m.f()` or `from a import b; b.f()`: f in the module the owner names.
        full = f"{module}.{imported}" if imported else module
        return [(p, name) for p in module_paths(path, full.strip("."), level)]
    return [(p, imported) for p in module_paths(path, module, level)] if imported else []


def prefetch_paths(path: str, facts: Facts, lines: set[int]) -> list[str]:
    """The paths `definition_offers` reads for the names these lines use, to read them all in one batch."""
    return [p for name, owner in used_names(facts, lines) for p, _ in import_targets(path, facts, name, owner)]


class RepoIndex:
    """The definitions and the calls of the pull request's changed Python files, by name, built once per run."""

    def __init__(self, texts: Iterable[FileText]) -> None:
        self.defs: dict[str, list[tuple[FileText, Scope]]] = {}
        self.calls: dict[str, list[tuple[FileText, int]]] = {}
        for text in texts:
            if language(text.path, text.lines[0] if text.lines else "") != PYTHON:
                continue  # decided before parsing: the other languages' scans would buy nothing here
            tree = text.outline
            if tree.error or tree.facts is None:
                continue
            for scope in tree.scopes:
                self.defs.setdefault(scope.name.rpartition(".")[2], []).append((text, scope))
            for line, name, _owner in tree.facts.calls:
                self.calls.setdefault(name, []).append((text, line))

    def defined(self, name: str, besides: str) -> list[tuple[FileText, Scope]]:
        """Definitions called `name` in changed files other than `besides`, the first MAX_PER_NAME."""
        return [(t, s) for t, s in self.defs.get(name, ()) if t.path != besides][:MAX_PER_NAME]


def definition_offers(new: FileText, lines: set[int], index: RepoIndex, lookup: Lookup) -> list[Offer]:
    """Definitions the changed lines use: same file, imported modules, then the other changed files."""
    facts = new.outline.facts
    if facts is None:
        return []
    used = used_names(facts, lines)
    found: list[tuple[FileText, Scope]] = []
    for name, owner in used:
        if not owner or owner == "self":
            found += [(new, s) for s in new.outline.named(name) if not any(s.start <= n <= s.end for n in lines)]
    for name, owner in used:
        for candidate, target in import_targets(new.path, facts, name, owner):
            text = lookup(candidate)
            if text is not None and text.outline.parser == PYTHON:
                found += [(text, s) for s in text.outline.named(target)]
    for name, owner in used:
        if owner in ("", "self"):
            found += index.defined(name, new.path)
    return [_definition(t, s) for t, s in _unique(found)]


def _unique(found: Iterable[tuple[FileText, Scope]]) -> list[tuple[FileText, Scope]]:
    seen: set[tuple[str, int]] = set()
    out: list[tuple[FileText, Scope]] = []
    for text, scope in found:
        if (text.path, scope.start) not in seen:
            seen.add((text.path, scope.start))
            out.append((text, scope))
    return out


def _definition(text: FileText, scope: Scope) -> Offer:
    forms = [excerpt("definition", text, [(scope.start, scope.end)], scope.name)]
    forms.append(excerpt("definition", text, [(scope.start, scope.header_end)], scope.name, "definition (header)"))
    return Offer("definition", f"definition {scope.name} ({text.path})", tuple(f for f in forms if f is not None))


def caller_offers(changed: Sequence[str], index: RepoIndex, besides: str) -> list[Offer]:
    """The places in the other changed files that call a definition this section changes: one part per
    calling definition, with its headers and each call line between its neighbours."""
    sites: dict[tuple[str, int, str], tuple[FileText, list[tuple[int, int]]]] = {}
    for name in changed[:MAX_NAMES]:
        for text, line in index.calls.get(name.rpartition(".")[2], ()):
            if text.path == besides:
                continue
            inner = text.outline.innermost(line)
            key = (text.path, inner.start if inner else line, name)
            if key not in sites:
                if len(sites) == MAX_CALLERS:
                    continue  # the chain of a site left out is never looked for: a common name has thousands
                sites[key] = (text, [(s.start, s.header_end) for s in text.outline.enclosing(line)])
            sites[key][1].append((line - 1, line + 1))
    offers: list[Offer] = []
    for (path, _, name), (text, ranges) in sites.items():
        form = excerpt("caller", text, ranges, name, f"caller of {name}")
        if form is not None:
            offers.append(Offer("caller", f"caller of {name} ({path}:{form.part.start})", (form,)))
    return offers
