"""Message Batches as the stub keeps them: every request is answered when the batch is created,
and the batch reports in_progress for its first polls, then ended with one result per request."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from .httpd import error_payload
from .ratelimit import rfc3339
from .replies import Rendered, new_id


@dataclass
class Batch:
    id: str
    created_at: datetime
    lines: list[dict[str, Any]]
    polls: int = 0
    ended_at: datetime | None = None

    def counts(self) -> dict[str, int]:
        if self.ended_at is None:
            return {"processing": len(self.lines), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        kinds = [line["result"]["type"] for line in self.lines]
        return {
            "processing": 0,
            "succeeded": kinds.count("succeeded"),
            "errored": kinds.count("errored"),
            "canceled": 0,
            "expired": 0,
        }

    def json(self, results_url: str | None) -> dict[str, Any]:
        """The batch as the API shows it; `results_url` is None until it has ended."""
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": "in_progress" if self.ended_at is None else "ended",
            "request_counts": self.counts(),
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.created_at + timedelta(hours=24)),
            "ended_at": rfc3339(self.ended_at) if self.ended_at else None,
            "cancel_initiated_at": None,
            "archived_at": None,
            "results_url": results_url,
        }

    def results(self) -> bytes:
        """The results file: JSONL, one line per request."""
        return "".join(json.dumps(line) + "\n" for line in self.lines).encode()


def requests_problem(requests: Any) -> str | None:
    """Why the API would refuse a batch with these `requests`, or None."""
    if not isinstance(requests, list) or not requests:
        return "requests: must be a non-empty list"
    ids = [r.get("custom_id") if isinstance(r, Mapping) else None for r in requests]
    if not all(isinstance(i, str) and i for i in ids) or len(set(ids)) != len(ids):
        return "requests: every custom_id must be a unique non-empty string"
    if not all(isinstance(r.get("params"), Mapping) for r in requests):
        return "requests: every request needs a params object"
    return None


def result_line(custom_id: str, rendered: Rendered, message: dict[str, Any] | None) -> dict[str, Any]:
    """One line of the results: the message, or an `errored` result for a fault."""
    if message is not None:
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}
    if rendered.kind == "error":
        error_type, text = rendered.error_type, rendered.error_message
    else:
        error_type, text = "api_error", f"stub: a {rendered.kind} reply has no batch equivalent"
    return {
        "custom_id": custom_id,
        "result": {"type": "errored", "error": error_payload(error_type, text, new_id("req"))},
    }


class Batches:
    """Every batch created so far, safe to use from the server's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Batch] = {}

    def add(self, batch: Batch) -> None:
        with self._lock:
            self._by_id[batch.id] = batch

    def get(self, batch_id: str) -> Batch | None:
        with self._lock:
            return self._by_id.get(batch_id)

    def poll(self, batch_id: str, polls_before_done: int) -> Batch | None:
        """The batch, counting one status poll: it ends on the poll after `polls_before_done`."""
        with self._lock:
            batch = self._by_id.get(batch_id)
            if batch is not None:
                batch.polls += 1
                if batch.polls > polls_before_done and batch.ended_at is None:
                    batch.ended_at = datetime.now(timezone.utc)
            return batch

    def newest_first(self) -> list[Batch]:
        with self._lock:
            return list(reversed(self._by_id.values()))
