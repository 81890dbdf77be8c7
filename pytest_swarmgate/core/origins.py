"""Where the modules the gate relies on are imported from: never from a file the diff changes.

In the pull request's own checkout, `python -m pytest` puts the checkout first on `sys.path`,
so a top-level `anthropic.py` (or `httpx/`, ...) in the PR would be imported instead of the
SDK and decide every vote. The check runs before the SDK is imported and asks the import
system where each module would come from (`find_spec` reads no module's code); a module
already imported answers with its own file. Only what is inside the tree under review and
changed by the diff counts: a checkout's own committed files are the base's, not the PR's.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath

# The top-level modules a review imports after the plugin itself was loaded: the SDK and what
# it imports on the way to a vote. pytest, pluggy and this package are imported before any
# check can run (a PR's `pytest.py` runs first of all): the README says so.
RELIED_ON = (
    "anthropic",
    "httpx",
    "httpx2",  # the HTTP stack anthropic 2.x imports under its own names
    "httpcore",
    "httpcore2",
    "h11",
    "anyio",
    "sniffio",
    "certifi",
    "idna",
    "distro",
    "jiter",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "typing_inspection",
    "pytest_swarmgate",
)


def origins(names: Iterable[str] = RELIED_ON) -> dict[str, tuple[Path, ...]]:
    """Each module's file, or a package's directories: loaded already, or where it would load from."""
    found: dict[str, tuple[Path, ...]] = {}
    for name in names:
        module = sys.modules.get(name)
        if module is not None:
            places = [getattr(module, "__file__", None), *(getattr(module, "__path__", None) or ())]
        else:
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):  # not importable at all: nothing to shadow it with
                continue
            if spec is None:
                continue
            places = [spec.origin, *(spec.submodule_search_locations or ())]
        found[name] = tuple(Path(p).resolve() for p in places if isinstance(p, str) and p not in ("built-in", "frozen"))
    return found


def shadowing(
    found: Mapping[str, Sequence[Path]], trees: Iterable[Path], changed: Iterable[str]
) -> list[tuple[str, str]]:
    """(module, changed path) for each module that resolves to a file or directory the diff changes.

    The diff's paths are relative to the repository's top, which may be above the tree pytest
    runs in: a path counts when a module's place ends with it (a file) or contains it (a package).
    """
    roots = [t.resolve() for t in trees]
    wanted = {PurePosixPath(p).as_posix().lstrip("/") for p in changed if p}
    hits: list[tuple[str, str]] = []
    for name, places in found.items():
        for place in places:
            if not any(place == r or r in place.parents for r in roots):
                continue
            hit = _changed_at(place.as_posix(), wanted)
            if hit is not None:
                hits.append((name, hit))
                break
    return hits


def _changed_at(place: str, wanted: set[str]) -> str | None:
    """A changed path that is `place` itself (its suffix) or lies under it, if any."""
    for path in sorted(wanted):
        full = "/" + path
        if place.endswith(full):
            return path
        parent = full.rpartition("/")[0]
        while parent:
            if place.endswith(parent):
                return path
            parent = parent.rpartition("/")[0]
    return None
