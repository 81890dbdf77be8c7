"""The one atomic writer: reports, the vote cache and the calibration plot all go through it.

It lives in core because the vote cache does, and imports point down only.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | os.PathLike[str], fill: Callable[[str], bool | None], *, mode: int | None = None) -> bool:
    """Let `fill` write a temporary file beside `path`, then move it into place in one step.

    A reader sees the old file or the new one, never half of one. The file keeps the old
    file's mode, else `mode`, else 0644 (mkstemp makes it 0600; reports are read by other tools).
    When `fill` returns False nothing is moved and the result is False.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        keep = target.stat().st_mode & 0o777 if target.exists() else None
        if fill(tmp) is False:
            return False
        os.chmod(tmp, keep if keep is not None else (mode if mode is not None else 0o644))
        os.replace(tmp, target)
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike[str], text: str, *, mode: int | None = None) -> None:
    """Write UTF-8 text atomically (see write_atomic)."""

    def fill(tmp: str) -> None:
        # errors="replace": a lone surrogate from some odd input must not lose the whole report.
        with open(tmp, "w", encoding="utf-8", errors="replace", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    write_atomic(path, fill, mode=mode)
