"""Changes a pull request makes to the configuration of the gate that judges it. Pure.

The gate usually runs in the pull request's own checkout, so the PR can edit the ini keys,
`addopts`, `conftest.py` hooks and `.gitattributes` that decide what the gate reviews
(`swarm_exclude = *`, `swarm_on_inconclusive = pass`, a `-diff` attribute that makes code
"binary"). Such a PR must not be passed by the gate it reconfigures: these changes fail the
gate until a human allows them (`--swarm-allow-config-change` on the command line). A
hostile conftest.py runs inside this process and could still tamper with anything; the
README's trusted set-up (the gate run from the base branch with `--noconftest`) closes
that, this check makes the attempt visible.
"""

from __future__ import annotations

import posixpath
import re
from typing import Iterable

from .model import Section

# Files whose every change can steer the gate: code that pytest runs, and git attributes.
ANY_CHANGE = {"conftest.py": "pytest runs this code in the gate's process", ".gitattributes": "git attributes decide what the diff shows"}
# Ini files: only changed lines that touch pytest's or the gate's settings.
INI_FILES = {"pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml"}
INI_LINE = re.compile(r"swarm|addopts|required_plugins|pytest|(^|\s)-p\s", re.IGNORECASE)


def config_changes(sections: Iterable[Section]) -> list[str]:
    """One line per changed file that configures the gate, with what makes it matter."""
    found = []
    for section in sections:
        name = posixpath.basename(section.path)
        if name in ANY_CHANGE:
            found.append(f"{section.path}: {ANY_CHANGE[name]}")
        elif name in INI_FILES:
            lines = [line[1:].strip() for line in _changed_lines(section.text) if INI_LINE.search(line[1:])]
            if lines:
                found.append(f"{section.path}: changes pytest or gate settings ({lines[0][:80]})")
    return sorted(set(found))


def _changed_lines(text: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++ ", "--- "))
    ]
