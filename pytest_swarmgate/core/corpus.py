"""Load a labeled calibration corpus: fixture diffs known to be SAFE or UNSAFE.

A corpus is a directory holding `manifest.json` and the diffs it lists:

    {"version": 1, "fixtures": [
      {"diff": "diffs/sqli.bad.diff", "expected": "UNSAFE", "category": "sql-injection",
       "cwe": "CWE-89", "flaw": {"path": "app/reports.py", "line": 42}, "why": "...",
       "twin": "diffs/sqli.good.diff", "language": "python", "adversarial": false,
       "tree": "trees/sqli"},
      ...]}

`tree` (optional) names a directory of the repository's files before the change: the diff
applies to it, and the voters' context (the enclosing definitions, the file, the code it
calls) is read from it, as from a checkout. Without it a fixture is a bare patch.

The corpus may be a team's own, half-trusted input, so the loader is strict: every diff
path stays inside the directory, every `*.diff` / `*.patch` file under it is listed (an
unlisted one would silently go unscored), every entry is labeled, and unknown keys are
rejected (a typo such as `"expeted"` must not pass as "no label"). Each problem raises
CorpusError with a one-line message naming the manifest and the entry.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
DIFF_SUFFIXES: tuple[str, ...] = (".diff", ".patch")
LABELS: tuple[str, ...] = ("SAFE", "UNSAFE")

_REQUIRED = ("diff", "expected", "category")
_OPTIONAL = ("cwe", "flaw", "why", "twin", "language", "adversarial", "tree")


class CorpusError(Exception):
    """A corpus that cannot be scored; str(e) is one line naming the problem and the file/entry."""

    def __init__(self, message: str) -> None:
        # Paths and values come from the corpus: a newline in one must not break the one-line rule.
        super().__init__(message.replace("\r", "\\r").replace("\n", "\\n"))


@dataclass(frozen=True)
class Fixture:
    """One labeled diff; `id` is its path relative to the corpus directory (posix)."""

    id: str
    diff_path: Path
    expected: Literal["SAFE", "UNSAFE"]
    category: str
    cwe: str | None
    flaw_path: str | None
    flaw_line: int | None
    why: str
    adversarial: bool
    language: str | None
    twin: str | None = None
    # The files before the change, for the voters' context; None: a bare patch.
    tree: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: the paths as strings."""
        d = dataclasses.asdict(self)
        d["diff_path"], d["tree"] = str(self.diff_path), None if self.tree is None else str(self.tree)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Fixture:
        tree = d.get("tree")
        return cls(**{**d, "diff_path": Path(d["diff_path"]), "tree": None if tree is None else Path(tree)})

    def text(self) -> str:
        """The diff's text (read on demand: the loader only checks that it exists)."""
        return self.diff_path.read_text(encoding="utf-8", errors="replace")


def load_corpus(directory: str | Path) -> list[Fixture]:
    """Every fixture the manifest of `directory` lists, validated, sorted by id."""
    root = Path(directory)
    if not root.is_dir():
        raise CorpusError(f"corpus directory {root} does not exist or is not a directory")
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise CorpusError(f"no {MANIFEST} in {root}")
    entries = _read_manifest(manifest)
    real_root = root.resolve()
    fixtures: dict[str, Fixture] = {}
    for index, entry in enumerate(entries, start=1):
        fixture = _fixture(root, real_root, manifest, index, entry)
        if fixture.id in fixtures:
            raise CorpusError(f"{manifest}: fixture {index} ({fixture.id}): duplicate entry for this diff")
        fixtures[fixture.id] = fixture
    _check_twins(manifest, fixtures)
    _check_unlisted(root, manifest, fixtures)
    return [fixtures[i] for i in sorted(fixtures)]


def _read_manifest(manifest: Path) -> list[Any]:
    """The manifest's fixture list, after checking the JSON and the envelope."""
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise CorpusError(f"{manifest}: not UTF-8 text ({e.reason})") from None
    except json.JSONDecodeError as e:
        raise CorpusError(f"{manifest}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(data, dict):
        raise CorpusError(f"{manifest}: the top level must be an object with a 'fixtures' list")
    version = data.get("version", MANIFEST_VERSION)
    if version != MANIFEST_VERSION:
        raise CorpusError(f"{manifest}: unsupported manifest version {version!r} (expected {MANIFEST_VERSION})")
    fixtures = data.get("fixtures")
    if not isinstance(fixtures, list):
        raise CorpusError(f"{manifest}: 'fixtures' must be a list")
    return fixtures


def _fixture(root: Path, real_root: Path, manifest: Path, index: int, entry: Any) -> Fixture:
    """One validated Fixture from manifest entry number `index` (1-based)."""
    if not isinstance(entry, dict):
        raise CorpusError(f"{manifest}: fixture {index}: must be an object")
    raw_diff = entry.get("diff")
    where = f"{manifest}: fixture {index}" + (f" ({raw_diff})" if isinstance(raw_diff, str) else "")
    unknown = sorted(set(entry) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise CorpusError(f"{where}: unknown key {unknown[0]!r}")
    if "diff" not in entry:
        raise CorpusError(f"{where}: missing 'diff'")
    fixture_id = _inside(root, real_root, raw_diff, where, "diff")
    expected = entry.get("expected")
    if expected is None:
        raise CorpusError(f"{where}: missing label 'expected'")
    if expected not in LABELS:
        raise CorpusError(f"{where}: label 'expected' must be SAFE or UNSAFE, got {expected!r}")
    category = entry.get("category")
    if category is None:
        raise CorpusError(f"{where}: missing 'category'")
    if not isinstance(category, str) or not category.strip():
        raise CorpusError(f"{where}: 'category' must be a non-empty string")
    flaw_path, flaw_line = _flaw(entry.get("flaw"), expected, where)
    twin = entry.get("twin")
    return Fixture(
        id=fixture_id,
        diff_path=root / fixture_id,
        expected=expected,
        category=category,
        cwe=_optional_str(entry, "cwe", where),
        flaw_path=flaw_path,
        flaw_line=flaw_line,
        why=_optional_str(entry, "why", where) or "",
        adversarial=_bool(entry, "adversarial", where),
        language=_optional_str(entry, "language", where),
        twin=None if twin is None else _inside(root, real_root, twin, where, "twin"),
        tree=None
        if entry.get("tree") is None
        else root / _inside(root, real_root, entry["tree"], where, "tree", dir=True),
    )


def _inside(root: Path, real_root: Path, raw: Any, where: str, key: str, *, dir: bool = False) -> str:
    """The normalised posix path of an existing file (or `dir`ectory) inside the corpus, or CorpusError."""
    if not isinstance(raw, str) or not raw.strip():
        raise CorpusError(f"{where}: '{key}' must be a non-empty relative path")
    posix = PurePosixPath(raw.replace("\\", "/"))
    # Reject absolute paths in either convention and any `..`: the corpus may come from a PR.
    if posix.is_absolute() or PureWindowsPath(raw).is_absolute() or PureWindowsPath(raw).drive:
        raise CorpusError(f"{where}: '{key}' path {raw!r} must be relative to the corpus directory")
    if ".." in posix.parts:
        raise CorpusError(f"{where}: '{key}' path {raw!r} escapes the corpus directory")
    rel = posix.as_posix()
    target = root / rel
    if not (target.is_dir() if dir else target.is_file()):
        raise CorpusError(f"{where}: '{key}' {'directory' if dir else 'file'} {rel} does not exist")
    # A symlink can point outside even when the path text does not.
    if not target.resolve().is_relative_to(real_root):
        raise CorpusError(f"{where}: '{key}' path {raw!r} escapes the corpus directory (symlink)")
    return rel


def _flaw(flaw: Any, expected: str, where: str) -> tuple[str | None, int | None]:
    """(path, line) of the known flaw; a SAFE fixture cannot have one."""
    if flaw is None:
        return None, None
    if expected == "SAFE":
        raise CorpusError(f"{where}: a SAFE fixture cannot have a 'flaw' (use null)")
    if not isinstance(flaw, dict) or not isinstance(flaw.get("path"), str) or not flaw["path"]:
        raise CorpusError(f"{where}: 'flaw' must be null or an object with a 'path' string")
    line = flaw.get("line")
    # bool is an int subclass; `"line": true` is a mistake, not line 1.
    if line is not None and (isinstance(line, bool) or not isinstance(line, int) or line < 1):
        raise CorpusError(f"{where}: 'flaw.line' must be a positive integer or null, got {line!r}")
    return flaw["path"], line


def _optional_str(entry: Mapping[str, Any], key: str, where: str) -> str | None:
    """entry[key] when it is a string, None when absent or null, else CorpusError."""
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise CorpusError(f"{where}: '{key}' must be a string or null, got {value!r}")
    return value


def _bool(entry: Mapping[str, Any], key: str, where: str) -> bool:
    """entry[key] as a strict boolean, False when absent."""
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise CorpusError(f"{where}: '{key}' must be true or false, got {value!r}")
    return value


def _check_twins(manifest: Path, fixtures: Mapping[str, Fixture]) -> None:
    """Every twin names another listed fixture with the opposite label (the flawed/fixed pair)."""
    # Insertion order is manifest order (duplicates were rejected), so the index matches.
    for index, f in enumerate(fixtures.values(), start=1):
        if f.twin is None:
            continue
        where = f"{manifest}: fixture {index} ({f.id})"
        twin = fixtures.get(f.twin)
        if twin is None or twin.id == f.id:
            raise CorpusError(f"{where}: twin {f.twin} is not another manifest entry")
        if twin.expected == f.expected:
            raise CorpusError(f"{where}: twin {f.twin} has the same label {f.expected}; a twin is the opposite case")


def _check_unlisted(root: Path, manifest: Path, fixtures: Mapping[str, Fixture]) -> None:
    """Every diff or patch file under the corpus has a manifest entry."""
    for rel in _diff_files(root):
        if rel not in fixtures:
            raise CorpusError(f"{rel} has no manifest entry in {manifest}")


def _diff_files(root: Path) -> list[str]:
    """Posix paths of `*.diff` / `*.patch` files under root, sorted; symlinked dirs not followed."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in filenames:
            if name.lower().endswith(DIFF_SUFFIXES):
                found.append(Path(dirpath, name).relative_to(root).as_posix())
    return sorted(found)
