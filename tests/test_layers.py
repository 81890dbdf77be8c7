"""The three layers, checked on the source: imports point down only (pytest layer -> output -> core).

Every import counts, wherever it is written: at module level, inside a function, or under
`if TYPE_CHECKING:` (a type-only import still ties the layers together for a reader). The
plugin's entry point must stay cheap to import: at module level, only the standard library,
pytest, and modules of ours that themselves import nothing more.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import pytest_swarmgate

PACKAGE = "pytest_swarmgate"
PYTEST = ("pytest", "_pytest", "pluggy")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted and absolute
    line: int
    top_level: bool  # runs when the module is imported (not in a function, not TYPE_CHECKING-only)


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(root: Path, path: Path) -> list[Import]:
    """Every import in one file, with relative imports made absolute."""
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, top_level: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(name, alias.name, node.lineno, top_level) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "__future__":
                return
            # `from . import options` imports a module; `from .x import Name` may too.
            found.append(Import(name, target, node.lineno, top_level))
            found.extend(Import(name, f"{target}.{alias.name}", node.lineno, top_level) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            nested = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            type_only = isinstance(node, ast.If) and _is_type_checking(node) and child in node.body
            visit(child, top_level and not nested and not type_only)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), True)
    return found


def _within(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def layer(module: str) -> str:
    """core, output, testing, or pytest (the package's top-level modules); "" for the package itself."""
    if module == PACKAGE:
        return ""
    for name in ("core", "output", "testing"):
        if _within(module, f"{PACKAGE}.{name}"):
            return name
    return "pytest"


def _existing(root: Path, target: str) -> bool:
    """Whether `target` names a module of the tree (`from .x import Name` also yields x.Name, which is not one)."""
    path = root.joinpath(*target.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def violations(root: Path) -> list[str]:
    """Every import that points the wrong way, as `module:line imports target (why)`."""
    files = sorted((root / PACKAGE).rglob("*.py"))
    table = {module_name(root, f): imports_of(root, f) for f in files}
    # One problem per import statement, naming the most specific module of ours it imports
    # (`from .x import y` may import the module x.y), or else the third-party module itself.
    found: dict[tuple[str, int], tuple[tuple[bool, int], str]] = {}
    for module, imports in table.items():
        here = layer(module)
        for imp in imports:
            ours = _within(imp.target, PACKAGE) and _existing(root, imp.target)
            theirs = layer(imp.target) if ours else None
            why = None
            if here == "" and ours:
                why = "the package's __init__ imports nothing of its own"
            elif here in ("core", "output") and any(_within(imp.target, p) for p in PYTEST):
                why = f"{here}/ never imports pytest or pluggy"
            elif here == "core" and theirs not in (None, "", "core"):
                why = f"core/ imports neither output/ nor the pytest layer (this is {theirs})"
            elif here == "output" and theirs in ("pytest", "testing"):
                why = f"output/ never imports the {theirs} layer"
            elif here == "testing" and not (
                theirs == "testing" if ours else _stdlib(imp.target) or _within(imp.target, PACKAGE)
            ):
                why = "testing/ uses the standard library only"
            rank = (ours, len(imp.target) if ours else -len(imp.target))
            if why and ((module, imp.line) not in found or rank > found[(module, imp.line)][0]):
                found[(module, imp.line)] = (rank, f"{module}:{imp.line} imports {imp.target} ({why})")
    return [text for _, text in found.values()] + _plugin_imports(root, table) + _cycles(root, table)


def _cycles(root: Path, table: dict[str, list[Import]]) -> list[str]:
    """Every circle of imports between our modules, one line each: a circle means neither can be read first."""
    graph = {
        module: sorted({imp.target for imp in imports if imp.target != module and _is_module(root, imp.target)})
        for module, imports in table.items()
    }
    found: list[str] = []
    done: set[str] = set()
    for start in sorted(graph):
        path = _path_back(graph, start, start, [start], set())
        if path and not done & set(path):
            found.append("import cycle: " + " -> ".join(path))
            done |= set(path)
    return found


def _path_back(graph: dict[str, list[str]], start: str, here: str, path: list[str], seen: set[str]) -> list[str]:
    """A path from `here` back to `start` (depth first), or [] when there is none."""
    for target in graph.get(here, []):
        if target == start:
            return [*path, start]
        if target not in seen:
            seen.add(target)
            found = _path_back(graph, start, target, [*path, target], seen)
            if found:
                return found
    return []


def _is_module(root: Path, target: str) -> bool:
    """A module file of ours (not a package: importing a package's __init__ is no edge of a circle)."""
    return _within(target, PACKAGE) and root.joinpath(*target.split(".")).with_suffix(".py").is_file()


def _stdlib(target: str) -> bool:
    return target.partition(".")[0] in sys.stdlib_module_names


def _plugin_imports(root: Path, table: dict[str, list[Import]]) -> list[str]:
    """What importing plugin.py runs: the standard library, pytest, and our modules that import no more."""
    problems: list[str] = []
    seen: set[str] = set()
    queue = [f"{PACKAGE}.plugin", PACKAGE]
    while queue:
        module = queue.pop()
        if module in seen:
            continue
        seen.add(module)
        for imp in table.get(module, []):
            if not imp.top_level or _stdlib(imp.target) or _within(imp.target, "pytest"):
                continue
            if _within(imp.target, PACKAGE):
                if _existing(root, imp.target):
                    queue.append(imp.target)
                continue
            problems.append(
                f"{module}:{imp.line} imports {imp.target} at module level, and plugin.py imports {module} on "
                "every pytest start (only the standard library and pytest there)"
            )
    return problems


def test_the_package_imports_point_down_only() -> None:
    root = Path(pytest_swarmgate.__file__).parent.parent
    assert violations(root) == []


def test_every_module_opens_with_a_docstring_that_says_its_job() -> None:
    root = Path(pytest_swarmgate.__file__).parent
    silent = [
        str(f.relative_to(root))
        for f in sorted(root.rglob("*.py"))
        if not (ast.get_docstring(ast.parse(f.read_text(encoding="utf-8"))) or "").strip()
    ]
    assert silent == []


def plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


CLEAN = {
    "__init__.py": '__version__ = "0"\n',
    "plugin.py": "import os\nimport pytest\nfrom . import options\n\ndef f():\n    from .items import Item\n",
    "options.py": "import pytest\n",
    "items.py": "import pytest\nfrom .core.model import Vote\nfrom .output.terminal import lines\nclass Item: ...\n",
    "core/__init__.py": "",
    "core/model.py": "from .gate import Gate\n",
    "core/gate.py": "from dataclasses import dataclass\n",
    "core/voting.py": "from .model import Vote\n",
    "output/__init__.py": "",
    "output/terminal.py": "from ..core.model import Vote\nfrom .. import __version__\n",
    "testing/__init__.py": "import json\nfrom .server import Stub\n",
    "testing/server.py": "import http.server\n",
}


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    assert violations(plant(tmp_path, CLEAN)) == []


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("core/voting.py", "def f():\n    import pytest\n", "core.voting:2 imports pytest (core/ never imports pytest"),
        ("core/voting.py", "import _pytest.config\n", "imports _pytest.config (core/ never imports pytest"),
        ("core/voting.py", "from pluggy import HookimplMarker\n", "imports pluggy (core/ never imports pytest"),
        (
            "core/voting.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..output import terminal\n",
            "core.voting:3 imports pytest_swarmgate.output.terminal (core/ imports neither",
        ),
        ("core/voting.py", "from pytest_swarmgate.items import Item\n", "imports pytest_swarmgate.items (core/"),
        ("core/voting.py", "from .. import options\n", "imports pytest_swarmgate.options (core/"),
        ("output/terminal.py", "async def f():\n    from ..items import Item\n", "pytest_swarmgate.items (output/"),
        ("output/terminal.py", "import pytest\n", "output.terminal:1 imports pytest (output/ never imports pytest"),
        ("plugin.py", "import pytest\nimport anthropic\n", "plugin:2 imports anthropic at module level"),
        ("options.py", "import unidiff\n", "options:1 imports unidiff at module level, and plugin.py imports"),
        ("testing/server.py", "import anthropic\n", "imports anthropic (testing/ uses the standard library only)"),
        (
            "core/gate.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .voting import Gate\n",
            "import cycle: pytest_swarmgate.core.gate -> pytest_swarmgate.core.voting -> pytest_swarmgate.core.model "
            "-> pytest_swarmgate.core.gate",
        ),
        (
            "items.py",
            "import pytest\n\ndef f():\n    from .plugin import key\n",
            "import cycle: pytest_swarmgate.items -> pytest_swarmgate.plugin -> pytest_swarmgate.items",
        ),
    ],
)
def test_a_planted_violation_is_found(tmp_path: Path, name: str, text: str, expected: str) -> None:
    problems = violations(plant(tmp_path, {**CLEAN, name: text}))
    assert problems and expected in problems[0], problems
    # An upward import may close a circle with a downward one: reported too, and nothing else.
    planted = f"{PACKAGE}.{name[:-3].replace('/', '.')}"
    assert all(p.startswith("import cycle: ") and planted in p for p in problems[1:]), problems
