"""Write the CI outputs of one run from the same votes: JSON, SARIF, GitHub annotations and step summary.

The I/O edge of the report modules, which stay pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from .. import __version__
from ..core.model import RunResult
from .github import github_annotations, step_summary, write_step_summary
from .json_report import json_report, write_json
from .sarif import sarif_report, write_sarif


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sdk_version() -> str | None:
    try:
        return metadata.version("anthropic")
    except metadata.PackageNotFoundError:
        return None


class Published:
    """Lines to show about the outputs, and whether any of them could not be written."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.failed = False

    def attempt(self, what: str, path: Path | str, write: Callable[[], None]) -> None:
        """Write one output; a failure is one line and does not stop the others."""
        try:
            write()
        except OSError as exc:
            self.failed = True
            self.lines.append(f"swarmgate: could not write {what} to {path}: {exc.strerror or exc}")
        else:
            self.lines.append(f"swarmgate: {what} written to {path}")


def write_reports(
    run: RunResult,
    *,
    base: Path,
    json_path: str | None,
    sarif_path: str | None,
    started_at: str,
) -> Published:
    """Write the requested report files, each independently of the others."""
    out = Published()
    if json_path:
        report = json_report(run, started_at=started_at, plugin_version=__version__, sdk_version=sdk_version())
        out.attempt("JSON report", base / json_path, lambda: write_json(base / json_path, report))
    if sarif_path:
        sarif = sarif_report(run, plugin_version=__version__)
        out.attempt("SARIF", base / sarif_path, lambda: write_sarif(base / sarif_path, sarif))
    return out


def github_outputs(run: RunResult, *, env: Mapping[str, str], limit: int, out: Published) -> list[str]:
    """In GitHub Actions: the annotation commands to print, after appending the step summary."""
    if env.get("GITHUB_ACTIONS") != "true":
        return []
    summary_path = env.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        summary = step_summary(run)
        out.attempt("step summary", summary_path, lambda: write_step_summary(summary_path, summary))
    return github_annotations(run, limit=limit)


__all__ = ["Published", "github_outputs", "now_utc", "write_reports"]
