"""A release-grade package: the sdist and the wheel built from a clean copy of the tree, as a
release would build them, hold the LICENSE; the unpacked sdist runs its own tests; the long
description opens with the install line of the package index, and that line's demo runs from
the wheel."""

from __future__ import annotations

import email
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from test_readme import ROOT, clean_copy, fresh_venv

pytestmark = pytest.mark.slow

COPYRIGHT = "Copyright (c) 2026 the pytest-swarmgate authors"
# A few of the sdist's tests, run inside it: pure ones, one that reads the packaged corpus, one the action.
SDIST_TESTS = [
    "tests/test_diff.py",
    "tests/test_corpus.py",
    "tests/test_calibrate.py::test_the_bundled_corpus_collects_without_calls",
    "tests/test_action.py::test_action_yml_is_valid_action_metadata",
]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build` on a copy of the tracked files: the sdist, then the wheel built from it.

    --no-isolation: the build backend is the test extra's own setuptools, so no download."""
    tmp = tmp_path_factory.mktemp("release")
    tree = clean_copy(tmp / "tree")
    out = tmp / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(tree)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def only(directory: Path, pattern: str) -> Path:
    (found,) = directory.glob(pattern)
    return found


def test_the_license_is_in_the_repository_the_sdist_and_the_wheel(dist: Path) -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n") and COPYRIGHT in text
    with tarfile.open(only(dist, "*.tar.gz")) as sdist:
        (top,) = {name.split("/")[0] for name in sdist.getnames()}
        member = sdist.extractfile(f"{top}/LICENSE")
        assert member is not None and member.read().decode() == text
        pkg_info = email.message_from_bytes(sdist.extractfile(f"{top}/PKG-INFO").read())  # type: ignore[union-attr]
    with zipfile.ZipFile(only(dist, "*.whl")) as wheel:
        info = next(n.split("/")[0] for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        assert wheel.read(f"{info}/licenses/LICENSE").decode() == text
        metadata = email.message_from_bytes(wheel.read(f"{info}/METADATA"))
    for meta in (pkg_info, metadata):
        assert meta["License-Expression"] == "MIT" and meta.get_all("License-File") == ["LICENSE"]


def test_the_long_description_opens_with_the_install_line_then_holds_the_readme(dist: Path) -> None:
    with zipfile.ZipFile(only(dist, "*.whl")) as wheel:
        name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(wheel.read(name))
    assert metadata["Description-Content-Type"] == "text/markdown"
    description = metadata.get_payload()
    assert isinstance(description, str)
    assert description.splitlines()[0].strip() == "pip install pytest-swarmgate"
    assert (ROOT / "README.md").read_text(encoding="utf-8") in description
    # The index's readme is rendered by twine's own renderer: it must pass, warnings included.
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_unpacked_sdist_runs_its_own_tests(dist: Path, tmp_path: Path) -> None:
    with tarfile.open(only(dist, "*.tar.gz")) as sdist:
        sdist.extractall(tmp_path, filter="data")
    (tree,) = tmp_path.iterdir()
    assert (tree / "tests" / "conftest.py").is_file()
    manifest = tree / "pytest_swarmgate" / "corpus" / "manifest.json"
    assert manifest.is_file() and not manifest.parent.is_symlink()  # the link's target, as files
    assert not (tree / "fixtures").exists(), "the corpus is in the sdist once, as package data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ANTHROPIC_"))}
    env.update(PYTHONPATH=str(tree), HOME=str(tmp_path))
    imported = subprocess.run(
        [sys.executable, "-c", "import pytest_swarmgate; print(pytest_swarmgate.__file__)"],
        cwd=tree, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert Path(imported.stdout.strip()).is_relative_to(tree), "the sdist's code is the code under test"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *SDIST_TESTS, "-q", "-p", "no:cacheprovider"],
        cwd=tree, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout.splitlines()[-1] and "skipped" not in done.stdout.splitlines()[-1]


def test_the_long_descriptions_demo_runs_from_the_wheel(dist: Path, tmp_path: Path) -> None:
    """The second line of the index's page, `python -m pytest_swarmgate.demo`, in a fresh venv
    with the wheel installed (its dependencies taken from this environment, see fresh_venv)."""
    venv = fresh_venv(tmp_path / "venv")
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(only(dist, "*.whl"))],
        check=True, capture_output=True,
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ANTHROPIC_", "PYTHON"))}
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    done = subprocess.run(
        [python, "-m", "pytest_swarmgate.demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert str(venv) in done.stdout and "gate: UNSAFE" in done.stdout  # the wheel's sample diff, not the tree's
