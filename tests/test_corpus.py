"""Loading a labeled corpus: a valid one loads; every problem is one line naming the entry."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_swarmgate.core.corpus import CorpusError, Fixture, load_corpus

DIFF = "--- a/app/x.py\n+++ b/app/x.py\n@@ -1 +1 @@\n-a\n+b\n"


def bad_entry(**overrides: Any) -> dict[str, Any]:
    entry = {
        "diff": "diffs/sqli.bad.diff",
        "expected": "UNSAFE",
        "category": "sql-injection",
        "cwe": "CWE-89",
        "flaw": {"path": "app/reports.py", "line": 42},
        "why": "string-built query",
        "twin": "diffs/sqli.good.diff",
        "language": "python",
        "adversarial": False,
    }
    entry.update(overrides)
    return entry


def good_entry(**overrides: Any) -> dict[str, Any]:
    entry = {
        "diff": "diffs/sqli.good.diff",
        "expected": "SAFE",
        "category": "sql-injection",
        "cwe": "CWE-89",
        "flaw": None,
        "why": "parameterised",
        "twin": "diffs/sqli.bad.diff",
    }
    entry.update(overrides)
    return entry


def write_corpus(
    root: Path, entries: list[Any], files: tuple[str, ...] = ("diffs/sqli.bad.diff", "diffs/sqli.good.diff")
) -> Path:
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(DIFF)
    (root / "manifest.json").write_text(json.dumps({"version": 1, "fixtures": entries}, indent=2))
    return root


def load_error(root: Path) -> str:
    with pytest.raises(CorpusError) as info:
        load_corpus(root)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    return message


def test_valid_corpus_loads_sorted(tmp_path: Path) -> None:
    root = write_corpus(tmp_path, [good_entry(), bad_entry()])
    fixtures = load_corpus(str(root))
    assert [f.id for f in fixtures] == ["diffs/sqli.bad.diff", "diffs/sqli.good.diff"]
    bad, good = fixtures
    assert bad == Fixture(
        id="diffs/sqli.bad.diff",
        diff_path=root / "diffs/sqli.bad.diff",
        expected="UNSAFE",
        category="sql-injection",
        cwe="CWE-89",
        flaw_path="app/reports.py",
        flaw_line=42,
        why="string-built query",
        adversarial=False,
        language="python",
        twin="diffs/sqli.good.diff",
    )
    assert (good.expected, good.flaw_path, good.flaw_line, good.language, good.adversarial) == (
        "SAFE",
        None,
        None,
        None,
        False,
    )
    assert bad.text() == DIFF


def test_minimal_entries_and_normalised_paths(tmp_path: Path) -> None:
    entries = [{"diff": "./diffs/a.patch", "expected": "SAFE", "category": "misc"}]
    root = write_corpus(tmp_path, entries, files=("diffs/a.patch",))
    (fx,) = load_corpus(root)
    assert fx.id == "diffs/a.patch" and fx.cwe is None and fx.why == "" and fx.twin is None


def test_missing_directory(tmp_path: Path) -> None:
    assert "does not exist" in load_error(tmp_path / "nope")


def test_no_manifest(tmp_path: Path) -> None:
    assert load_error(tmp_path) == f"no manifest.json in {tmp_path}"


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"version": 1,\n  "fixtures": [,]}')
    message = load_error(tmp_path)
    assert "manifest.json: invalid JSON at line 2 column" in message


Mutate = Callable[[list[dict[str, Any]]], None]


def _set(i: int, **kv: Any) -> Mutate:
    return lambda entries: entries[i].update(kv)


def _drop(i: int, key: str) -> Mutate:
    return lambda entries: entries[i].pop(key)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_drop(0, "expected"), "fixture 1 (diffs/sqli.bad.diff): missing label 'expected'"),
        (_set(1, expected="safe"), "fixture 2 (diffs/sqli.good.diff): label 'expected' must be SAFE or UNSAFE"),
        (_drop(0, "diff"), "fixture 1: missing 'diff'"),
        (_drop(1, "category"), "fixture 2 (diffs/sqli.good.diff): missing 'category'"),
        (_set(0, category=""), "fixture 1 (diffs/sqli.bad.diff): 'category' must be a non-empty string"),
        (_set(0, diff="diffs/gone.diff"), "fixture 1 (diffs/gone.diff): 'diff' file diffs/gone.diff does not exist"),
        (_set(0, diff="../outside.diff"), "fixture 1 (../outside.diff): 'diff' path '../outside.diff' escapes"),
        (_set(0, diff="diffs/../../x.diff"), "escapes the corpus directory"),
        (_set(0, diff="/etc/passwd"), "fixture 1 (/etc/passwd): 'diff' path '/etc/passwd' must be relative"),
        (_set(0, diff="C:\\corpus\\x.diff"), "must be relative to the corpus directory"),
        (_set(1, diff="diffs/sqli.bad.diff", twin=None), "fixture 2 (diffs/sqli.bad.diff): duplicate entry"),
        (_set(0, expeted="UNSAFE"), "fixture 1 (diffs/sqli.bad.diff): unknown key 'expeted'"),
        (_set(0, twin="diffs/none.diff"), "fixture 1 (diffs/sqli.bad.diff): 'twin' file diffs/none.diff does not"),
        (_set(1, flaw={"path": "a.py", "line": 3}), "fixture 2 (diffs/sqli.good.diff): a SAFE fixture cannot"),
        (_set(0, flaw={"path": "a.py", "line": "42"}), "'flaw.line' must be a positive integer"),
        (_set(0, flaw={"line": 4}), "'flaw' must be null or an object with a 'path'"),
        (_set(0, adversarial="yes"), "'adversarial' must be true or false"),
        (_set(0, cwe=89), "'cwe' must be a string or null"),
    ],
)
def test_entry_errors_name_the_entry(tmp_path: Path, mutate: Mutate, expected: str) -> None:
    entries = [bad_entry(), good_entry()]
    mutate(entries)
    message = load_error(write_corpus(tmp_path, entries))
    assert expected in message
    assert str(tmp_path / "manifest.json") in message or "has no manifest entry" in message


def test_entry_not_an_object(tmp_path: Path) -> None:
    message = load_error(write_corpus(tmp_path, [bad_entry(), "diffs/sqli.good.diff"]))
    assert message.endswith("manifest.json: fixture 2: must be an object")


def test_fixtures_not_a_list(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"version": 1, "fixtures": {}}')
    assert load_error(tmp_path).endswith("'fixtures' must be a list")


def test_unsupported_version(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"version": 2, "fixtures": []}')
    assert "unsupported manifest version 2" in load_error(tmp_path)


def test_unlisted_diff_file(tmp_path: Path) -> None:
    root = write_corpus(tmp_path, [bad_entry(), good_entry()])
    (root / "diffs" / "more").mkdir()
    (root / "diffs" / "more" / "extra.PATCH").write_text(DIFF)
    assert load_error(root).startswith("diffs/more/extra.PATCH has no manifest entry")


def test_twin_must_be_listed(tmp_path: Path) -> None:
    root = write_corpus(tmp_path, [bad_entry()], files=("diffs/sqli.bad.diff", "diffs/sqli.good.txt"))
    (root / "manifest.json").write_text(json.dumps({"version": 1, "fixtures": [bad_entry(twin="diffs/sqli.good.txt")]}))
    assert "twin diffs/sqli.good.txt is not another manifest entry" in load_error(root)


def test_twin_must_have_the_opposite_label(tmp_path: Path) -> None:
    message = load_error(write_corpus(tmp_path, [bad_entry(), good_entry(expected="UNSAFE")]))
    assert "fixture 1 (diffs/sqli.bad.diff): twin diffs/sqli.good.diff has the same label UNSAFE" in message


def test_twin_cannot_be_itself(tmp_path: Path) -> None:
    message = load_error(write_corpus(tmp_path, [bad_entry(twin="diffs/sqli.bad.diff"), good_entry(twin=None)]))
    assert "fixture 1 (diffs/sqli.bad.diff): twin diffs/sqli.bad.diff is not another manifest entry" in message


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlink_escaping_the_corpus(tmp_path: Path) -> None:
    outside = tmp_path / "outside.diff"
    outside.write_text(DIFF)
    root = tmp_path / "corpus"
    root.mkdir()
    write_corpus(root, [bad_entry(diff="link.txt", twin=None)], files=())
    try:
        (root / "link.txt").symlink_to(outside)
    except OSError:
        pytest.skip("cannot create symlinks here")
    assert "escapes the corpus directory (symlink)" in load_error(root)


def test_newline_in_a_path_stays_one_line(tmp_path: Path) -> None:
    message = load_error(write_corpus(tmp_path, [bad_entry(diff="diffs/a\nb.diff")]))
    assert "does not exist" in message
