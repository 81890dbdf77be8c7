"""The SDK's and httpx's own log records: one more channel, redacted and escaped like the rest.

`ANTHROPIC_LOG=debug` (or a job's own logging set-up) makes the SDK and httpx log every
request: the URL with a proxy password in it, the headers, and the body - the diff, with
whatever workflow commands a PR wrote into it. While a review runs, every record of those
loggers is formatted when it is made and stored as redacted, one-line, escaped text, so no
handler (pytest's log capture, `basicConfig`, a job's own) can show what the rest of the
gate's output never shows.
"""

from __future__ import annotations

import logging
from typing import Any

from ..core.redact import Redactor
from .escape import terminal

# By prefix: the SDK may log through a renamed HTTP stack (`httpx2`, `httpcore2` in anthropic 2.x).
LOGGERS = ("anthropic", "httpx", "httpcore")


class LogGuard:
    """Swaps in a log record factory that cleans the records of `LOGGERS`; `remove` restores the old one."""

    def __init__(self, redact: Redactor) -> None:
        self.redact = redact
        self._previous = logging.getLogRecordFactory()

    def install(self) -> LogGuard:
        self._previous = logging.getLogRecordFactory()
        logging.setLogRecordFactory(self._make)
        return self

    def remove(self) -> None:
        # Only undo our own: another plugin may have wrapped ours since, and keeps its wrapper.
        if logging.getLogRecordFactory() == self._make:
            logging.setLogRecordFactory(self._previous)

    def _make(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self._previous(*args, **kwargs)
        if record.name.startswith(LOGGERS):
            self.clean(record)
        return record

    def clean(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except (TypeError, ValueError) as exc:  # the record's own arguments do not fit its format
            text = f"{record.msg!r} (log record not formatted: {exc})"
        record.msg, record.args = terminal(self.redact(text)), None
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            # A traceback is formatted by the handler, past this point: keep its last line only, cleaned.
            record.msg += " | " + terminal(self.redact(f"{type(error).__name__}: {error}"))
            record.exc_info, record.exc_text = None, None
