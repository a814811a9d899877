"""Log set-up for the server and the console.

Text or one JSON object per line (LOG_FORMAT), secrets redacted in both, and the
libraries' routine chatter (APScheduler ticks, Alembic's set-up lines) moved to
DEBUG so that at INFO every line is about something that happened.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from bot.log_safety import install as install_redaction

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: attributes every LogRecord has; anything else on a record came from `extra=`
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """timestamp, level, logger, message, then the record's `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class RedactingFormatter(logging.Formatter):
    """Redacts the finished line, so tracebacks and extra fields are covered too."""

    def __init__(self, inner: logging.Formatter, redact: Callable[[str], str]) -> None:
        super().__init__()
        self._inner = inner
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact(self._inner.format(record))


class Demote(logging.Filter):
    """Re-levels a library logger's INFO records to DEBUG, except those `keep` accepts."""

    def __init__(self, keep: Callable[[logging.LogRecord], bool] = lambda _r: False) -> None:
        super().__init__()
        self._keep = keep

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or self._keep(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def _alembic_step(record: logging.LogRecord) -> bool:
    """ "Running upgrade 0001 -> 0002" is a schema change an operator wants to see."""
    return str(record.msg).startswith("Running ")


#: logger name -> which of its INFO records stay INFO
DEMOTED: dict[str, Callable[[logging.LogRecord], bool]] = {
    "apscheduler.scheduler": lambda _r: False,
    "apscheduler.executors.default": lambda _r: False,
    "alembic.runtime.migration": _alembic_step,
    "alembic.runtime.plugins": lambda _r: False,
}


def demote_library_chatter() -> None:
    for name, keep in DEMOTED.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, Demote) for f in logger.filters):
            logger.addFilter(Demote(keep))


def configure(level: str, fmt: str, secrets: Iterable[str], stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers with one stream handler in `fmt` ("text"/"json")."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    root.addHandler(handler)
    root.setLevel(level.upper())
    redaction = install_redaction(secrets)
    inner = JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(RedactingFormatter(inner, redaction.redact))
    demote_library_chatter()
