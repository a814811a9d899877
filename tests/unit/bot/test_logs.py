"""bot.logs: JSON lines, redaction in both formats, library chatter at DEBUG."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot import logs

SECRET = "s3cret-signing-value"
TOKEN = "xoxb-123-456-abcDEF"


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def emit_all(fmt: str, level: str = "INFO") -> str:
    stream = io.StringIO()
    logs.configure(level, fmt, [SECRET], stream=stream)
    log = logging.getLogger("taskbot.test")
    log.info("posted with %s", TOKEN, extra={"task_id": 7, "header": f"Bearer {TOKEN}"})
    try:
        raise RuntimeError(f"signing secret was {SECRET}")
    except RuntimeError:
        log.exception("failed")
    logging.getLogger("apscheduler.executors.default").info('Running job "tick"')
    logging.getLogger("alembic.runtime.plugins").info("setup plugin x")
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    logging.getLogger("alembic.runtime.migration").info("Running upgrade 0001 -> 0002")
    logging.getLogger("apscheduler.scheduler").warning("Run time of job was missed")
    return stream.getvalue()


@pytest.mark.usefixtures("restore_root")
def test_json_lines_carry_the_fields_and_no_secret() -> None:
    out = emit_all("json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["message"] for r in lines] == [
        "posted with (redacted)",
        "failed",
        "Running upgrade 0001 -> 0002",
        "Run time of job was missed",
    ]
    first = lines[0]
    assert set(first) >= {"timestamp", "level", "logger", "message", "task_id"}
    assert first["level"] == "INFO" and first["logger"] == "taskbot.test"
    assert first["task_id"] == 7 and first["header"] == "Bearer (redacted)"
    assert "RuntimeError" in lines[1]["exception"]
    assert TOKEN not in out and SECRET not in out


@pytest.mark.usefixtures("restore_root")
def test_text_lines_redact_tracebacks_too() -> None:
    out = emit_all("text")
    assert "RuntimeError: signing secret was (redacted)" in out
    assert TOKEN not in out and SECRET not in out
    assert "Running job" not in out and "setup plugin" not in out and "Context impl" not in out
    assert "Running upgrade 0001 -> 0002" in out and "WARNING apscheduler.scheduler" in out


@pytest.mark.usefixtures("restore_root")
def test_library_chatter_is_shown_at_debug_as_debug() -> None:
    out = emit_all("json", level="DEBUG")
    levels = {r["message"]: r["level"] for r in map(json.loads, out.splitlines())}
    assert levels['Running job "tick"'] == "DEBUG"
    assert levels["setup plugin x"] == "DEBUG"
    assert levels["Context impl SQLiteImpl."] == "DEBUG"
    assert levels["Running upgrade 0001 -> 0002"] == "INFO"
