"""Changes the gate holds for a human instead of judging them: what steers the gate's own run. Pure.

The gate often runs in the pull request's own checkout, so the PR can edit what decides how
pytest, the gate or the process around them runs: pytest's configuration (judged on what
pytest would read, parsed as pytest parses it, never on its spelling), `conftest.py`, plugins
registered through `pytest11` entry points, `.pth` files and `sitecustomize.py`, git
attributes, CODEOWNERS, and the CI file that runs the gate. Such changes are *held*: they
fail the gate until a human releases them for this exact diff (`--swarm-allow-held=<the
diff's sha256>`, typed in the job). Every other file, other CI files included, is code the
panel judges. A changed file nobody can judge (a binary that is not media, a submodule bump,
a pure rename while the parser leaves it unread) is held too, so nothing passes unjudged.

This makes the attempt visible; it cannot stop a hostile `conftest.py` or test module that
already runs in the gate's process. The README's trusted set-up (the gate run from the base
branch, the PR's diff as data) closes that.
"""

from __future__ import annotations

import importlib
import posixpath
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import iniconfig

from .choices import HeldKind
from .diff import is_media
from .model import Held, NotReviewed, Section
from .text import hidden_characters
from .texts import NoTexts, Texts, Unknown

# The TOML parser pytest itself uses: tomllib, or on Python 3.10 tomli (a pytest dependency there).
tomllib: Any = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")

# Held whatever the change, by old or new path (lower case: a runner on a case-insensitive
# file system loads Conftest.py too).
BY_NAME = {
    "conftest.py": "pytest runs this code in the gate's process",
    ".gitattributes": "git attributes decide what the diff shows",
    ".gitmodules": "submodule settings decide what the diff shows",
    "entry_points.txt": "installed metadata that can register a pytest plugin",
}
# Modules Python imports at start-up, in every form an import finds them (`x.py`, a package
# `x/__init__.py`, a compiled `x.cpython-312-x86_64-linux-gnu.so`): held by any path component.
# `_distutils_hack` is what setuptools' `distutils-precedence.pth` imports in every process.
START_UP_MODULES = {
    "sitecustomize": "Python runs this at start-up in the gate's process",
    "usercustomize": "Python runs this at start-up in the gate's process",
    "_distutils_hack": "setuptools' distutils-precedence.pth imports this at start-up in the gate's process",
}
_IMPORTABLE = {"", ".py", ".pyc", ".pyo", ".pyw", ".pyd", ".so"}
# A setup.py is code run at install: it can register a pytest plugin from anywhere in its text,
# so it is held when its text names entry points, and when its full text cannot be read.
SETUP_PY_WORDS = ("entry_points", "entry-points", "pytest11")
SETUP_PY_REASON = "setup.py can register a pytest plugin (a pytest11 entry point) when the package is installed"
# A Git LFS pointer stands for content that is not in the diff (the spec's first line).
LFS_POINTER = "+version https://git-lfs.github.com/spec/v1"
LFS_REASON = "a Git LFS pointer: the file it stands for is not in the diff, so no voter could read it"
CODEOWNERS = {"codeowners", ".github/codeowners", "docs/codeowners", ".gitlab/codeowners"}
CODEOWNERS_REASON = "CODEOWNERS decides who must approve changes to the gate"
# CI configuration of the common systems: held only when the file that runs the gate is not
# known (on GitHub, GITHUB_WORKFLOW_REF names it, and only that one is held). Not
# `.pre-commit-config.yaml`: pre-commit runs linters, not the gate, so the panel judges it.
CI_NAMES = {
    ".gitlab-ci.yml", ".travis.yml", "jenkinsfile", "azure-pipelines.yml", "azure-pipelines.yaml",
    "bitbucket-pipelines.yml", ".cirrus.yml", ".drone.yml", "appveyor.yml", ".appveyor.yml",
}  # fmt: skip
CI_DIRS = (".github/workflows/", ".github/actions/", ".gitlab/ci/", ".circleci/", ".buildkite/", ".azure-pipelines/")
CI_REASON = "CI configuration that may run the gate"
# Files pytest (and so the gate, whose settings are ini keys) reads configuration from.
TOML_CONFIG = {"pyproject.toml", "pytest.toml", ".pytest.toml"}
INI_CONFIG = {"pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg"}
# Their mere presence can make pytest choose them (or their directory as rootdir).
CHOSEN_BY_PRESENCE = {"pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml", "pyproject.toml"}


def workflow_path(workflow_ref: str | None) -> str | None:
    """The repository path of the running GitHub workflow from `GITHUB_WORKFLOW_REF`, else None.

    `owner/repo/.github/workflows/ci.yml@refs/pull/1/merge` -> `.github/workflows/ci.yml`.
    """
    if not workflow_ref:
        return None
    head = workflow_ref.rsplit("@", 1)[0]
    parts = head.split("/", 2)
    if len(parts) != 3 or not parts[2].startswith(".github/workflows/"):
        return None
    return parts[2]


# CI systems that say who they are, and the files that configure their jobs ("/" ends a folder).
CI_SYSTEMS = (
    ("GITLAB_CI", (".gitlab-ci.yml", ".gitlab/ci/")),
    ("CIRCLECI", (".circleci/",)),
    ("BUILDKITE", (".buildkite/", "buildkite.yml", "buildkite.yaml")),
    ("JENKINS_URL", ("jenkinsfile",)),
    ("TF_BUILD", ("azure-pipelines.yml", "azure-pipelines.yaml", ".azure-pipelines/")),
    ("TRAVIS", (".travis.yml",)),
    ("BITBUCKET_BUILD_NUMBER", ("bitbucket-pipelines.yml",)),
    ("GITHUB_ACTIONS", (".github/workflows/", ".github/actions/")),
)


def ci_files(env: Mapping[str, str]) -> tuple[str, ...] | None:
    """The files that configure the CI job running the gate, when the environment says; None: unknown.

    On GitHub, GITHUB_WORKFLOW_REF names the one workflow; GitLab's CI_CONFIG_PATH names its
    file. A job's own variables cannot be set by a pull request without editing these files.
    """
    workflow = workflow_path(env.get("GITHUB_WORKFLOW_REF"))
    if workflow:
        return (workflow,)
    for variable, files in CI_SYSTEMS:
        if env.get(variable):
            own = env.get("CI_CONFIG_PATH", "") if variable == "GITLAB_CI" else ""
            return (*files, own) if own and "@" not in own and ":" not in own else files
    return None


def held_changes(
    sections: Iterable[Section],
    not_reviewed: Iterable[NotReviewed],
    *,
    texts: Texts | None = None,
    ci_files: Sequence[str] | None = None,
    policy_files: Sequence[str] = (),
) -> list[Held]:
    """One Held per changed file the gate holds for a human, sorted by path.

    `sections` and `not_reviewed` are the whole diff before any include/exclude glob or hook.
    `texts` gives the full old and new text of a file where known (else the hunks are judged
    alone); `ci_files` are the CI files known to run the gate (a trailing "/" for a folder;
    None: unknown, so every CI file of the common systems is held); `policy_files` hold the team's
    review guidance (--swarm-policy): a change to one steers every voter, so it is held as config.
    """
    texts = texts or NoTexts()
    sections = list(sections)
    by_path: dict[str, list[Section]] = {}
    for section in sections:
        by_path.setdefault(section.path, []).append(section)
    found: set[Held] = set()
    for path, parts in by_path.items():
        text = "".join(s.text for s in sorted(parts, key=lambda s: s.part))
        # Every entry of the path: a patch series may name it twice, renamed from conftest.py once.
        why = next(
            (
                why
                for old_path, change in dict.fromkeys((s.old_path, s.change) for s in parts)
                if (
                    why := _as("steering", _steering(path, old_path, ci_files))
                    or _as("config", _config(path, old_path, change, text, texts))
                    or _as("steering", _setup_py(path, old_path, text, texts))
                )
            ),
            None,
        )
        guidance = {path, *(s.old_path for s in parts if s.old_path)} & set(policy_files)
        if guidance and not why:
            why = ("config", f"changes {min(guidance)}, the team's review guidance every voter reads (--swarm-policy)")
        why = why or _as("unreadable", _lfs_pointer(path, text)) or _as("hidden", _hidden(text))
        if why:
            found.add(Held(path, *why))
    for entry in not_reviewed:
        why = _as("steering", _steering(entry.path, entry.old_path, ci_files)) or _unjudged(entry, texts)
        if why:
            found.add(Held(entry.path, *why))
    return sorted(found, key=Held.line)


# Why a change is held: its kind and the words that say why.
Why = tuple[HeldKind, str]


def _as(kind: HeldKind, reason: str | None) -> Why | None:
    return (kind, reason) if reason else None


def _steering(path: str, old_path: str | None, ci_files: Sequence[str] | None) -> str | None:
    """Why changing (adding, editing, moving or deleting) this file steers the gate's run, else None."""
    for each in filter(None, dict.fromkeys((path, old_path))):
        lower = each.lower()
        name = posixpath.basename(lower)
        if name in BY_NAME and (name != "entry_points.txt" or _in_metadata(lower)):
            return BY_NAME[name]
        start_up = _start_up_module(lower)
        if start_up:
            return start_up
        if name.endswith(".pth"):
            return "a .pth file: Python runs its import lines at start-up"
        if lower in CODEOWNERS:
            return CODEOWNERS_REASON
        if ci_files is not None:
            if any(lower.startswith(f.lower()) if f.endswith("/") else lower == f.lower() for f in ci_files):
                return "the CI configuration that runs the gate"
        elif name in CI_NAMES or lower.startswith(CI_DIRS) or name.startswith("jenkinsfile"):
            return CI_REASON
    return None


def _start_up_module(lower: str) -> str | None:
    """Why a path is (part of) a module Python imports at start-up, else None."""
    *folders, name = lower.split("/")
    stem, ext = name.split(".", 1)[0], posixpath.splitext(name)[1]
    if stem in START_UP_MODULES and ext in _IMPORTABLE:
        folders.append(stem)
    return next((START_UP_MODULES[f] for f in folders if f in START_UP_MODULES), None)


def _setup_py(path: str, old_path: str | None, diff_text: str, texts: Texts) -> str | None:
    """Why a change to a setup.py is held: its text names entry points, or cannot be read whole."""
    if not any(posixpath.basename(p.lower()) == "setup.py" for p in filter(None, (path, old_path))):
        return None
    try:
        sides = [texts.old(old_path or path), texts.new(path)]
    except Unknown:
        return SETUP_PY_REASON + " (its full text is not known here)"
    if any(word in each for each in (diff_text, *filter(None, sides)) for word in SETUP_PY_WORDS):
        return SETUP_PY_REASON
    return None


def _lfs_pointer(path: str, diff_text: str) -> str | None:
    """Why an added Git LFS pointer to a file that is not media is held, else None."""
    # a substring search first: splitting every section's text into lines is most of the held check's time
    if is_media(path) or LFS_POINTER not in diff_text:
        return None
    if not any(line.rstrip("\r\n") == LFS_POINTER for line in diff_text.splitlines()):
        return None
    return LFS_REASON


def _hidden(diff_text: str) -> str | None:
    """Why added lines with characters a reader cannot see are held (Trojan Source), else None."""
    # none in the whole text, none in its added lines: ASCII is known without a scan, the rest in one
    if diff_text.isascii() or not hidden_characters(diff_text):
        return None
    added = "".join(line for line in diff_text.splitlines(keepends=True) if line.startswith("+"))
    found = hidden_characters(added)
    if not found:
        return None
    return (
        f"added lines hold characters a reader cannot see ({', '.join(found[:5])}{', ...' * (len(found) > 5)}):"
        " bidirectional or invisible text can make code run differently from how it reads"
    )


def _in_metadata(path: str) -> bool:
    parent = posixpath.basename(posixpath.dirname(path))
    return parent.endswith((".dist-info", ".egg-info"))


def _unjudged(entry: NotReviewed, texts: Texts) -> Why | None:
    """Why a file the panel does not see must be held, or None (media, a deleted binary, a config no-op)."""
    config = _config(entry.path, entry.old_path, _change_of(entry, texts), None, texts)
    if config:
        return "config", config
    if entry.kind == "media":
        return None
    if entry.kind == "binary" and entry.change == "deleted":
        # Removing bytes no voter could read adds nothing that runs; deleting code is a text diff.
        return None
    if entry.kind == "binary":
        return "unreadable", "a binary file that is not media: no voter could read it, and it may run"
    return "unreadable", f"not reviewed ({entry.reason}) and not media: no voter judged it"


def _change_of(entry: NotReviewed, texts: Texts) -> str:
    if entry.change in ("added", "deleted"):
        return entry.change
    try:
        if texts.new(entry.path) is None and texts.old(entry.path) is not None:
            return "deleted"
    except Unknown:
        pass  # not knowable here: judged as modified, the stricter reading
    return "renamed" if entry.old_path and entry.old_path != entry.path else "modified"


def _config_name(path: str) -> str | None:
    name = posixpath.basename(path.lower())
    return name if name in TOML_CONFIG or name in INI_CONFIG else None


def _config(path: str, old_path: str | None, change: str, diff_text: str | None, texts: Texts) -> str | None:
    """Why a change to a pytest configuration file is held, or None when pytest and the gate read the same."""
    name = _config_name(path) or (_config_name(old_path) if old_path else None)
    if name is None:
        return None
    if old_path and old_path != path:
        return f"moves {name}, which pytest reads configuration from"
    try:
        old, new = texts.old(path), texts.new(path)
    except Unknown:
        if change in ("added", "deleted") and name in CHOSEN_BY_PRESENCE:
            return f"{'adds' if change == 'added' else 'deletes'} {name}: pytest may choose it as its configuration"
        if diff_text is None or name in TOML_CONFIG:
            # TOML's meaning of a line depends on every line above it (multi-line strings and
            # arrays), so hunks alone cannot show what pytest reads.
            return f"changes {name}, and without its full text the gate cannot show pytest reads the same"
        return _ini_hunks(name, diff_text)
    if (old is None) != (new is None) and name in CHOSEN_BY_PRESENCE:
        return f"{'adds' if old is None else 'deletes'} {name}: pytest may choose it as its configuration"
    try:
        before, after = _reads(name, old), _reads(name, new)
    except ValueError as exc:
        return f"{name} does not parse as pytest parses it ({exc}), so what pytest reads cannot be shown unchanged"
    if before != after:
        changed = sorted({key for key, _ in before ^ after})
        return f"changes what pytest or the gate reads: {', '.join(changed)[:160]}"
    return None


# --- What pytest and the gate read, parsed as pytest parses it -----------------------------

Reads = frozenset[tuple[str, str]]  # (dotted key path, repr of the value)
# TOML key paths (compared in lower case, though pytest is case-sensitive: wider is safer).
TOML_READS = (
    ("tool", "pytest"),
    ("project", "entry-points", "pytest11"),
    ("project", "entry_points", "pytest11"),
    ("tool", "poetry", "plugins", "pytest11"),
    ("tool", "flit", "entrypoints", "pytest11"),
)
# ini: whole sections, and single keys of other sections (section and key stripped, lower case).
INI_SECTIONS = {"tox.ini": {"pytest"}, "setup.cfg": {"tool:pytest", "pytest"}}
# `[options] entry_points = file: ep.cfg` takes them from another file: that key is read too.
INI_KEYS = {"setup.cfg": {("options.entry_points", "pytest11"), ("options", "entry_points")}}


def _reads(name: str, text: str | None) -> Reads:
    """What pytest or the gate reads from this text (empty when the file is absent); ValueError if unparseable."""
    if text is None:
        return frozenset()
    if name in TOML_CONFIG:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"TOML: {exc}") from None
        if name != "pyproject.toml":
            return frozenset(_flatten("", doc))
        found: set[tuple[str, str]] = set()
        for wanted in TOML_READS:
            for where, value in _walk(doc, wanted, ()):
                found |= _flatten(".".join(where), value)
        return frozenset(found)
    try:
        ini = iniconfig.IniConfig(name, data=text)
    except iniconfig.ParseError as exc:
        raise ValueError(f"ini: {exc}") from None
    found = set()
    for section in ini:
        norm = section.name.strip().lower()
        for key, value in section.items():
            if _ini_relevant(name, norm, key.strip().lower()):
                found.add((f"[{section.name}] {key}", repr(value)))
        if _ini_relevant(name, norm, None):
            found.add((f"[{section.name}]", ""))
    return frozenset(found)


def _ini_relevant(name: str, section: str, key: str | None) -> bool:
    """Whether pytest or the gate reads this section (key None) or key."""
    if name in ("pytest.ini", ".pytest.ini"):
        return True
    if section in INI_SECTIONS.get(name, ()):
        return True
    return key is not None and (section, key) in INI_KEYS.get(name, ())


def _walk(node: Any, wanted: tuple[str, ...], where: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (key path, value) under `node` whose keys match `wanted` in any letter case."""
    if not wanted:
        yield where, node
        return
    if isinstance(node, dict):
        for key, value in node.items():
            if key.lower() == wanted[0]:
                yield from _walk(value, wanted[1:], (*where, key))


def _flatten(prefix: str, value: Any) -> set[tuple[str, str]]:
    """Leaf (key path, repr) pairs of a TOML value; a table is also present by itself."""
    if isinstance(value, dict):
        out = {(prefix, "table")}
        for key, sub in value.items():
            out |= _flatten(f"{prefix}.{key}" if prefix else key, sub)
        return out
    return {(prefix, repr(value))}


# --- Judging ini hunks alone, line by line as iniconfig reads them --------------------------


def _ini_hunks(name: str, diff_text: str) -> str | None:
    """The first changed line that pytest or the gate may read, judged from the hunks alone; else None.

    iniconfig has no multi-line construct but indented continuation lines, so a hunk shows
    each changed line's section (the last header above it) and key (the last key line above
    a continuation). A line whose section or key the hunk does not show is held.
    """
    lines = diff_text.split("\n")
    in_hunks = False
    old_state: list[str | None] = [None, None]  # [section, key], None: not shown
    new_state: list[str | None] = [None, None]
    for line in lines:
        if line.startswith("@@"):
            in_hunks = True
            old_state[:] = [None, None]
            new_state[:] = [None, None]
            continue
        if not in_hunks or line[:1] not in (" ", "-", "+"):
            continue
        mark, body = line[:1], line[1:]
        # Split as iniconfig splits (str.splitlines: also \x0b, \x1c, U+2028 ...).
        for piece in body.splitlines() or [""]:
            for state, side in ((old_state, "-"), (new_state, "+")):
                if mark not in (" ", side):
                    continue
                before = tuple(state)
                kind = _ini_step(piece, state)
                if mark == " " or kind == "comment":
                    continue
                suspects = [before, tuple(state)] if kind in ("header", "key") else [tuple(state)]
                if any(_ini_may_read(name, s) for s in suspects):
                    return f"changes pytest or gate settings ({piece.strip()[:80]})"
    return None


def _ini_step(line: str, state: list[str | None]) -> str:
    """Advance [section, key] over one line as iniconfig parses it; the line's kind."""
    if line.lstrip()[:1] in ("#", ";") or not line.strip():
        return "comment"
    line = line.rstrip()
    if line[0] == "[":
        cut = line
        for c in "#;":
            cut = cut.split(c)[0].rstrip()
        if cut.endswith("]"):
            state[:] = [cut[1:-1].strip().lower(), None]
            return "header"
        return "value"
    if not line[0].isspace():
        key = line.split("=", 1)[0]
        if ":" in key or "=" not in line:
            key = line.split(":", 1)[0]
        state[1] = key.strip().lower()
        return "key"
    return "value"


def _ini_may_read(name: str, state: tuple[str | None, ...]) -> bool:
    """Whether a line in this [section, key] state may be read by pytest or the gate (unknown: yes)."""
    section, key = state
    if section is None:
        return True
    if _ini_relevant(name, section, None):
        return True
    keyed = {s for s, _ in INI_KEYS.get(name, ())}
    if section in keyed:
        return key is None or _ini_relevant(name, section, key)
    return False
