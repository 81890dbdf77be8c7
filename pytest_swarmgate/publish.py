"""Write the CI outputs of one run from the same votes: JSON, SARIF, GitHub annotations and step summary.

The I/O edge of the report modules, which stay pure.
"""

from __future__ import annotations

from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Mapping

from . import __version__
from .github import github_annotations, step_summary, write_step_summary
from .model import RunResult
from .report_json import json_report, write_json
from .sarif import sarif_report, write_sarif


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sdk_version() -> str | None:
    try:
        return metadata.version("anthropic")
    except metadata.PackageNotFoundError:
        return None


def write_reports(
    run: RunResult,
    *,
    base: Path,
    json_path: str | None,
    sarif_path: str | None,
    started_at: str,
    on_inconclusive: str,
) -> list[str]:
    """Write the requested report files; returns one line per file written."""
    written = []
    if json_path:
        path = base / json_path
        write_json(path, json_report(run, started_at=started_at, plugin_version=__version__,
                                     sdk_version=sdk_version(), on_inconclusive=on_inconclusive))
        written.append(f"swarmgate: JSON report written to {path}")
    if sarif_path:
        path = base / sarif_path
        write_sarif(path, sarif_report(run, plugin_version=__version__))
        written.append(f"swarmgate: SARIF written to {path}")
    return written


def github_outputs(run: RunResult, *, env: Mapping[str, str], limit: int, on_inconclusive: str) -> list[str]:
    """In GitHub Actions: the annotation commands to print, after appending the step summary."""
    if env.get("GITHUB_ACTIONS") != "true":
        return []
    summary_path = env.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        write_step_summary(summary_path, step_summary(run, on_inconclusive=on_inconclusive))
    return github_annotations(run, limit=limit)


__all__ = ["github_outputs", "now_utc", "write_reports"]
