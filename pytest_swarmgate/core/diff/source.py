"""Where the diff comes from: a file, stdin, or `git diff`; the only I/O of the diff package."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from ..text import one_line
from .entries import DiffError

# How the gate runs `git diff`, and how the README's recipe makes the patch (a test keeps them
# equal): every setting of the repository, the user or the pull request that could change what
# the diff shows is pinned. Colour, external diff drivers and textconv filters off; renames
# found; prefixes, relative paths and the submodule format fixed; and every submodule shown, since
# `ignore = all` in `.gitmodules` or `diff.ignoreSubmodules` would otherwise hide a bump entirely.
# (`-c core.quotepath=off`, names as UTF-8 rather than octal escapes, is only readability: quoted
# names are parsed too.)
GIT_DIFF_FLAGS = (
    "--no-color", "--no-ext-diff", "--no-textconv", "--find-renames", "--ignore-submodules=none",
    "--submodule=short", "--src-prefix=a/", "--dst-prefix=b/", "--no-relative",
)  # fmt: skip


def decode(data: bytes) -> str:
    """Decode diff bytes as UTF-8, replacing invalid bytes.

    "replace" rather than "surrogateescape": the text travels to JSON reports, terminals
    and the API, which all need valid Unicode; a lone surrogate would crash them later.
    A leading byte-order mark is dropped so the first `diff --git` line still parses.
    """
    return data.decode("utf-8-sig", errors="replace")


def read_diff_file(path: str) -> str:
    """Read a diff from a file, or from stdin when path is "-"."""
    try:
        if path == "-":
            stream = sys.stdin
            if stream is None:
                raise DiffError("cannot read diff file -: stdin is not available")
            buffer = getattr(stream, "buffer", None)
            # a real stdin has a byte buffer; a replaced one (StringIO) only gives text
            if buffer is not None:
                return decode(buffer.read())
            return stream.read()
        with open(path, "rb") as f:
            return decode(f.read())
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DiffError(f"cannot read diff file {one_line(path)}: {one_line(reason)}") from None


def _git(args: list[str], cwd: str | os.PathLike[str]) -> subprocess.CompletedProcess[bytes]:
    """Run git with list arguments (never a shell) and capture its output."""
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise DiffError("git is not installed or not on PATH") from None
    except OSError as exc:
        raise DiffError(f"cannot run git in {os.fspath(cwd)}: {exc.strerror or exc}") from None


def _first_line(data: bytes) -> str:
    lines = [ln for ln in decode(data).splitlines() if ln.strip()]
    return one_line(lines[0]) if lines else "no error message"


def git_diff(base: str, cwd: str | os.PathLike[str]) -> str:
    """The diff of HEAD against its merge base with `base` (`git diff base...HEAD`)."""
    if not base or base.startswith("-") or "\0" in base or base != base.strip():
        # a leading "-" would be read by git as an option, not a revision
        raise DiffError(f"invalid git ref {one_line(repr(base))}")
    if not os.path.isdir(cwd):
        raise DiffError(f"cannot run git in {os.fspath(cwd)}: no such directory")
    proc = _git(["-c", "core.quotepath=off", "diff", *GIT_DIFF_FLAGS, f"{base}...HEAD", "--"], cwd)
    if proc.returncode == 0:
        return decode(proc.stdout)
    reason = _first_line(proc.stderr)
    # tell the usual failures apart without parsing git's (translated) messages
    if _git(["rev-parse", "--git-dir"], cwd).returncode != 0:
        raise DiffError(f"not a git repository: {os.fspath(cwd)}")
    if _git(["rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], cwd).returncode != 0:
        raise DiffError(f"unknown git ref '{one_line(base)}': {reason}")
    raise DiffError(f"git diff {one_line(base)}...HEAD failed: {reason}")


def diff_sha256(text: str) -> str:
    """Hex sha256 of the diff text encoded as UTF-8."""
    # surrogatepass: hashing must never fail, even on text that did not come from decode
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
