"""No token, signing secret or rejected body reaches a log."""

from __future__ import annotations

import io
import logging

from bot.log_safety import RedactSecrets


def emit(redact: RedactSecrets, msg: str, *args: object) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(redact)
    logger = logging.getLogger("test.log_safety")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(msg, *args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_tokens_and_configured_secrets_are_redacted() -> None:
    redact = RedactSecrets(["s3cret-signing-value"])
    out = emit(
        redact,
        "headers %s secret %s wss %s",
        {"Authorization": "Bearer xoxb-123-456-abcDEF"},
        "s3cret-signing-value",
        "wss://wss.slack.com/link/?ticket=abc-123&app_id=A1 xapp-1-A1-999-xyz",
    )
    for leaked in ("xoxb-123", "s3cret-signing-value", "ticket=abc-123", "xapp-1-A1"):
        assert leaked not in out
    assert out.count("(redacted)") == 4


def test_a_rejected_request_is_logged_without_its_body() -> None:
    out = emit(
        RedactSecrets(),
        "Invalid request signature detected (signature: v0=abc, timestamp: 1, body: text=hi)",
    )
    assert "withheld" in out and "v0=abc" not in out and "text=hi" not in out
