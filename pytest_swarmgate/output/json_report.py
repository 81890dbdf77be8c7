"""The JSON report: the whole RunResult, nothing lost, plus the gate, totals and versions. Pure.

`report["run"]` is `RunResult.to_dict()`, so `RunResult.from_dict(report["run"])` gives the
run back; everything else at the top level is derived from it for readers (jq, dashboards).
The shape is pinned by the JSON Schema shipped in `schemas/` (see `schema_path()`).
"""

from __future__ import annotations

import json
import os
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from ..core.decision import run_passes, status
from ..core.model import RunResult, SectionResult
from ..core.write import write_text_atomic

if TYPE_CHECKING:
    from importlib.abc import Traversable  # importlib.resources.abc is 3.11+

SCHEMA_ID = "https://pytest-swarmgate.invalid/schemas/swarmgate-report-1.json"
SCHEMA_VERSION = 1
SCHEMA_FILE = "swarmgate-report-1.json"


def schema_path() -> Traversable:
    """The packaged JSON Schema of the report (a real file path for any normal install)."""
    return files("pytest_swarmgate") / "schemas" / SCHEMA_FILE


def load_schema() -> dict[str, Any]:
    """The report's JSON Schema as a dict."""
    return json.loads(schema_path().read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def json_report(
    run: RunResult,
    *,
    started_at: str,
    plugin_version: str,
    sdk_version: str | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The full report of one run as a JSON-safe dict that validates against `load_schema()`."""
    return {
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "generator": {"name": "pytest-swarmgate", "version": plugin_version, "anthropic_sdk": sdk_version},
        "status": {
            "completed": run.stopped is None,
            "stopped": run.stopped.to_dict() if run.stopped is not None else None,
            "line": run.stopped.line() if run.stopped is not None else None,
        },
        "gate": _gate(run),
        "outcomes": [_outcome(r) for r in run.results],
        "totals": _totals(run),
        "timings": _timings(run, started_at),
        "run": run.to_dict(),
        "extra": dict(extra or {}),
    }


def _gate(run: RunResult) -> dict[str, Any]:
    return {"outcome": status(run), "passed": run_passes(run), **run.gate.to_dict(), "sections": dict(run.counts)}


def _outcome(result: SectionResult) -> dict[str, Any]:
    return {
        "section_id": result.section.id,
        "path": result.section.path,
        "outcome": result.outcome,
        "tally": result.tally(),
        "safe": result.safe,
        "unsafe": result.unsafe,
        "error": result.errors,
        "dissent": [v.voter_id for v in result.dissent],
    }


def _totals(run: RunResult) -> dict[str, Any]:
    usage = run.usage
    return {
        "sections": len(run.results),
        "not_reviewed": len(run.not_reviewed),
        "votes": len(run.votes),
        "calls": run.calls,
        "cached_votes": run.cached_votes,
        "error_votes": sum(v.verdict == "ERROR" for v in run.votes),
        "findings": len(run.findings),
        "tokens": {**usage.to_dict(), "total": usage.total},
    }


def _timings(run: RunResult, started_at: str) -> dict[str, Any]:
    # Cached votes cost no time this run: their latency is the original call's.
    latencies = [v.latency_s for v in run.votes if not v.cached]
    return {
        "started_at": started_at,
        "wall_time_s": run.wall_time_s,
        "call_latency_s_sum": sum(latencies),
        "call_latency_s_max": max(latencies, default=0.0),
    }


def write_json(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    """Write a report made by `json_report` to `path`, atomically."""
    write_text_atomic(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
