"""Keeps tokens, signing secrets and rejected request bodies out of the logs."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

#: Slack tokens and Socket Mode tickets, whatever configuration they came from
_TOKENS = re.compile(r"\b(?:xox[abposr]|xapp)-[A-Za-z0-9-]+|ticket=[A-Za-z0-9-]+")
_REJECTED = "Invalid request signature detected"


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 8]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = message
        if clean.startswith(_REJECTED):
            clean = f"{_REJECTED} (signature, timestamp and body withheld)"
        clean = self.redact(clean)
        if clean != message:
            record.msg, record.args = clean, None
        return True

    def redact(self, text: str) -> str:
        clean = _TOKENS.sub("(redacted)", text)
        for secret in self._secrets:
            clean = clean.replace(secret, "(redacted)")
        return clean


def install(secrets: Iterable[str]) -> RedactSecrets:
    """Redact on every handler of the root logger (where all records end up)."""
    redact = RedactSecrets(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)
    return redact


def bolt_logger() -> logging.Logger:
    """The logger to give Bolt. Bolt logs a rejected request's signature and whole body
    at INFO, and copies this logger's level onto its middleware loggers."""
    logger = logging.getLogger("slack_bolt.taskbot")
    logger.setLevel(logging.WARNING)
    return logger
