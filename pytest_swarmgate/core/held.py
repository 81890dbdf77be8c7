"""Changes the gate holds for a human instead of judging them. Pure.

The gate often runs in the pull request's own checkout, so the PR can edit what decides
what the gate reviews: the ini keys and `addopts`, `conftest.py` hooks, `.gitattributes`
(a `-diff` attribute makes code "binary"), the CI workflow that runs the gate. And git
shows a code file with one NUL byte in it as binary, which no voter can read. Such
changes are *held*: they fail the gate until a human allows them for this exact diff
(`--swarm-allow-held=<diff sha256 prefix>`, typed on the command line).

This makes the attempt visible; it cannot stop a hostile `conftest.py` or test module
that already runs in the gate's process. The README's trusted set-up (the gate run from
the base branch, the PR's diff as data) closes that.
"""

from __future__ import annotations

import posixpath
import re
from typing import Iterable, Sequence

from .diff import is_media
from .model import NotReviewed, Section

# Files whose every change can steer the gate.
DEDICATED = {
    "conftest.py": "pytest runs this code in the gate's process",
    ".gitattributes": "git attributes decide what the diff shows",
    "pytest.ini": "pytest configuration",
    ".pytest.ini": "pytest configuration",
    "pytest.toml": "pytest configuration",
    ".pytest.toml": "pytest configuration",
    ".gitlab-ci.yml": "the CI job that runs the gate",
    ".travis.yml": "the CI job that runs the gate",
    "jenkinsfile": "the CI job that runs the gate",
    "azure-pipelines.yml": "the CI job that runs the gate",
    "bitbucket-pipelines.yml": "the CI job that runs the gate",
    "noxfile.py": "the session that runs the gate",
}
WORKFLOWS = (".github/workflows/", ".github/actions/", ".circleci/")
# Shared ini files: only changes inside their pytest section, or lines that name its keys.
SHARED_INI = {"pyproject.toml", "tox.ini", "setup.cfg"}
PYTEST_SECTION = re.compile(r"^\s*\[(pytest|tool:pytest|tool\.pytest[\w.\-]*|testenv[^\]]*)\]\s*$", re.IGNORECASE)
ANY_SECTION = re.compile(r"^\s*\[")
PYTEST_KEY = re.compile(
    r"swarm[-_]|addopts|required_plugins|pythonpath|(^|[\s\"'])-p\s?\w|\bplugins\b", re.IGNORECASE
)
# In a hunk whose section is not shown, a line that starts like an option or a quoted list
# item may continue a multi-line `addopts`: hold it rather than guess.
CONTINUATION = re.compile(r"^\s+[-\"']")
# Binary files that carry no code are media (diff.MEDIA_EXTENSIONS, the one list): every other
# binary file (a .so, a .pyc, a script with a NUL byte) is held, since no voter can read it and it may still run.


def held_changes(sections: Iterable[Section], not_reviewed: Iterable[NotReviewed]) -> list[str]:
    """One line per changed file the gate cannot vouch for, with the reason."""
    found: set[str] = set()
    for section in sections:
        reason = _config_reason((section.path, section.old_path), section.change, section.text)
        if reason:
            found.add(f"{section.path}: {reason}")
    for entry in not_reviewed:
        reason = _config_reason((entry.path, entry.old_path), "modified", None) or _unreadable_code(entry)
        if reason:
            found.add(f"{entry.path}: {reason}")
    return sorted(found)


def _config_reason(paths: Sequence[str | None], change: str, text: str | None) -> str | None:
    for path in filter(None, paths):
        # Lower case: a runner on a case-insensitive file system loads Conftest.py too.
        path = path.lower()
        name = posixpath.basename(path)
        if name in DEDICATED:
            return DEDICATED[name]
        if path.startswith(WORKFLOWS):
            return "the CI workflow that runs the gate"
        if name in SHARED_INI:
            # Without text (binary, a pure rename) nothing can be inspected: hold it.
            if text is None or change in ("added", "deleted", "renamed"):
                return f"{name} may carry pytest settings"
            line = _pytest_setting_changed(text)
            if line is not None:
                return f"changes pytest or gate settings ({line[:80]})"
    return None


def _pytest_setting_changed(text: str) -> str | None:
    """The first changed line inside a pytest section, or naming a pytest key, else None.

    The section is known from the hunk's own lines; a hunk that shows no section header
    is judged by its keys alone.
    """
    section: bool | None = None  # None: this hunk has not shown its section
    for line in text.splitlines():
        if line.startswith(("+++ ", "--- ")):
            continue
        if line.startswith("@@"):
            # git's hunk header may name the enclosing line (`addopts = """`): judge it too.
            context = line.split("@@", 2)[-1]
            section = True if PYTEST_KEY.search(context) or PYTEST_SECTION.match(context.strip()) else None
            continue
        body = line[1:]
        if ANY_SECTION.match(body):
            section = bool(PYTEST_SECTION.match(body))
        if line[:1] not in "+-" or not body.strip():
            continue
        if section or PYTEST_KEY.search(body) or (section is None and CONTINUATION.match(body)):
            return body.strip()
    return None


def _unreadable_code(entry: NotReviewed) -> str | None:
    if not entry.reason.startswith("binary"):
        return None
    if is_media(entry.path):
        return None
    return "a binary file that is not media: no voter could read it, and it may run"
