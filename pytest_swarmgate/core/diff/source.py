"""Where the diff comes from: a file, stdin, or `git diff`; the only I/O of the diff package."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from typing import IO

from ..text import one_line
from .entries import DiffError
from .pieces import DiffText

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


class DiffTooLarge(DiffError):
    """The diff is over --swarm-max-diff-bytes: the review cannot run (exit 75), which says nothing of the code."""


def too_large(what: str, limit: int) -> DiffTooLarge:
    """The one line for a diff over the size ceiling, said before it is read whole."""
    return DiffTooLarge(
        f"{what} is over --swarm-max-diff-bytes={limit}: not read whole (the gate holds about 3 times a diff in"
        " memory); review a smaller diff, or raise the limit where the runner has the memory"
    )


def bounded_read(stream: IO[bytes], limit: int | None, what: str) -> bytes:
    """Read at most `limit` bytes of `stream` (None: all); more than that is `DiffTooLarge`, read no further."""
    if limit is None:
        return stream.read()
    data = stream.read(limit + 1)  # a buffered read: blocks until limit + 1 bytes or the end
    if len(data) > limit:
        raise too_large(what, limit)
    return data


def decode(data: bytes) -> str:
    """Decode diff bytes as UTF-8, replacing invalid bytes.

    "replace" rather than "surrogateescape": the text travels to JSON reports, terminals
    and the API, which all need valid Unicode; a lone surrogate would crash them later.
    A leading byte-order mark is dropped so the first `diff --git` line still parses.
    """
    return data.decode("utf-8-sig", errors="replace")


def read_diff_file(path: str, limit: int | None = None) -> str:
    """Read a diff from a file, or from stdin when path is "-"; over `limit` bytes is `DiffTooLarge`."""
    data = _read(path, limit)
    return data if isinstance(data, str) else decode(data)


def read_diff(path: str, limit: int | None = None) -> DiffText:
    """`read_diff_file`'s text as pieces, each decoded alone (`DiffText`): what the gate plans from."""
    data = _read(path, limit)
    return DiffText((data,)) if isinstance(data, str) else DiffText.decode(data)


def _read(path: str, limit: int | None) -> bytes | str:
    """The bytes of the diff file, or of stdin when path is "-" (a replaced stdin gives text only)."""
    what = "the diff on stdin" if path == "-" else f"the diff file {one_line(path)}"
    try:
        if path == "-":
            stream = sys.stdin
            if stream is None:
                raise DiffError("cannot read diff file -: stdin is not available")
            buffer = getattr(stream, "buffer", None)
            # a real stdin has a byte buffer; a replaced one (StringIO) only gives text
            if buffer is not None:
                return bounded_read(buffer, limit, what)
            text = stream.read() if limit is None else stream.read(limit + 1)
            if limit is not None and len(text.encode("utf-8", "surrogatepass")) > limit:
                raise too_large(what, limit)
            return text
        with open(path, "rb") as f:
            return bounded_read(f, limit, what)
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


def git_diff(base: str, cwd: str | os.PathLike[str], limit: int | None = None) -> str:
    """The diff of HEAD against its merge base with `base` (`git diff base...HEAD`); over `limit` bytes: too large."""
    return decode(_git_diff_bytes(base, cwd, limit))


def git_diff_text(base: str, cwd: str | os.PathLike[str], limit: int | None = None) -> DiffText:
    """`git_diff`'s text as pieces, each decoded alone (`DiffText`): what the gate plans from."""
    return DiffText.decode(_git_diff_bytes(base, cwd, limit))


def _git_diff_bytes(base: str, cwd: str | os.PathLike[str], limit: int | None) -> bytes:
    """git's output for `git_diff`; a failure is one `DiffError` line."""
    if not base or base.startswith("-") or "\0" in base or base != base.strip():
        # a leading "-" would be read by git as an option, not a revision
        raise DiffError(f"invalid git ref {one_line(repr(base))}")
    if not os.path.isdir(cwd):
        raise DiffError(f"cannot run git in {os.fspath(cwd)}: no such directory")
    args = ["-c", "core.quotepath=off", "diff", *GIT_DIFF_FLAGS, f"{base}...HEAD", "--"]
    returncode, out, err = _git_output(args, cwd, limit, f"git diff {one_line(base)}...HEAD")
    if returncode == 0:
        return out
    reason = _first_line(err)
    # tell the usual failures apart without parsing git's (translated) messages
    if _git(["rev-parse", "--git-dir"], cwd).returncode != 0:
        raise DiffError(f"not a git repository: {os.fspath(cwd)}")
    if _git(["rev-parse", "--verify", "--quiet", f"{base}^{{commit}}"], cwd).returncode != 0:
        raise DiffError(f"unknown git ref '{one_line(base)}': {reason}")
    raise DiffError(f"git diff {one_line(base)}...HEAD failed: {reason}")


def _git_output(args: list[str], cwd: str | os.PathLike[str], limit: int | None, what: str) -> tuple[int, bytes, bytes]:
    """(exit status, stdout, stderr) of git, its output read with a bound: over `limit` git is stopped."""
    # stderr to a file, not a pipe: git blocked on a full stderr pipe while we read stdout would hang
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(["git", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=err)
        except FileNotFoundError:
            raise DiffError("git is not installed or not on PATH") from None
        except OSError as exc:
            raise DiffError(f"cannot run git in {os.fspath(cwd)}: {exc.strerror or exc}") from None
        assert proc.stdout is not None
        with proc, proc.stdout:
            try:
                out = bounded_read(proc.stdout, limit, what)
            except DiffTooLarge:
                proc.kill()
                raise
        err.seek(0)
        return proc.returncode, out, err.read(64 * 1024)


def diff_sha256(text: str | DiffText) -> str:
    """Hex sha256 of the diff text encoded as UTF-8."""
    if isinstance(text, DiffText):
        return text.sha256
    # surrogatepass: hashing must never fail, even on text that did not come from decode
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
